//! ppm-server: not implemented yet.

fn main() {
    eprintln!("ppm-server is not implemented yet; see the README for the library crates");
    std::process::exit(2);
}
