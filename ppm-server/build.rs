//! Builds the dashboard (`dashboard/`, React + Vite) and generates the table
//! of its files that `src/dashboard.rs` embeds with `include_bytes!`.
//!
//! - The build runs when the dashboard's sources change (Cargo's
//!   `rerun-if-changed`): `npm ci` when `node_modules` is missing or older
//!   than `package-lock.json`, then `npm run build` into `OUT_DIR`. Built
//!   files never land in the source tree.
//! - Without npm (or when `npm ci` cannot reach the registry) the build still
//!   succeeds: the binary then serves a page explaining how to build the
//!   dashboard, and Cargo prints a warning. `PPM_DASHBOARD=skip` skips the
//!   dashboard on purpose; `NPM` names another npm executable.
//! - A dashboard whose sources fail to type-check or build fails the build:
//!   that is a bug to fix, not something to hide.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// Inputs of the dashboard build, relative to `dashboard/`.
const SOURCES: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn main() {
    if let Err(e) = run() {
        eprintln!("building the dashboard failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("no OUT_DIR")?);
    let dash = manifest.join("dashboard");
    for s in SOURCES {
        println!("cargo::rerun-if-changed=dashboard/{s}");
    }
    println!("cargo::rerun-if-env-changed=PPM_DASHBOARD");
    println!("cargo::rerun-if-env-changed=NPM");

    let dist = out.join("dashboard-dist");
    let built = if env::var("PPM_DASHBOARD").as_deref() == Ok("skip") {
        println!("cargo::warning=PPM_DASHBOARD=skip: the dashboard is not built; ppm-server serves a page saying so");
        false
    } else {
        match build(&dash, &dist)? {
            Ok(()) => true,
            Err(why) => {
                println!("cargo::warning=the dashboard was not built: {why}. ppm-server will serve a page saying so; install Node.js (>= 20.19) and npm, then build again");
                // A path that never exists makes Cargo run this script on
                // every build, so the dashboard is built as soon as npm is
                // there.
                println!(
                    "cargo::rerun-if-changed={}",
                    out.join("dashboard-not-built").display()
                );
                false
            }
        }
    };

    let mut files = Vec::new();
    if built {
        collect(&dist, &dist, &mut files)?;
        files.sort();
    }
    let mut code = String::new();
    let _ = writeln!(
        code,
        "/// Whether the dashboard was built into this binary."
    );
    let _ = writeln!(
        code,
        "pub const BUILT: bool = {};",
        built && !files.is_empty()
    );
    let _ = writeln!(code, "/// The dashboard's files.");
    let _ = writeln!(code, "pub static FILES: &[Asset] = &[");
    for (rel, abs) in &files {
        let bytes = fs::read(abs).map_err(|e| format!("{}: {e}", abs.display()))?;
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let _ = writeln!(
            code,
            "    Asset {{ path: {rel:?}, body: include_bytes!({abs:?}), etag: \"\\\"{:016x}\\\"\" }},",
            h.finish(),
            abs = abs.display().to_string(),
        );
    }
    let _ = writeln!(code, "];");
    fs::write(out.join("dashboard_assets.rs"), code)
        .map_err(|e| format!("writing the asset table: {e}"))
}

/// Runs npm. The outer error fails the Cargo build; the inner one means the
/// dashboard could not be built here (no npm, no registry).
fn build(dash: &Path, dist: &Path) -> Result<Result<(), String>, String> {
    if !dash.join("package.json").exists() {
        return Ok(Err(format!("{} has no package.json", dash.display())));
    }
    let npm = env::var("NPM").unwrap_or_else(|_| "npm".to_string());
    match Command::new(&npm).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Ok(Err(format!("`{npm}` was not found"))),
    }
    let lock = dash.join("package-lock.json");
    let installed = dash.join("node_modules").join(".package-lock.json");
    if !newer_or_same(&installed, &lock) {
        let status = Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dash)
            .status()
            .map_err(|e| format!("running `npm ci`: {e}"))?;
        if !status.success() {
            return Ok(Err(format!(
                "`npm ci` in {} failed ({status})",
                dash.display()
            )));
        }
    }
    let status = Command::new(&npm)
        .args(["run", "build", "--", "--outDir"])
        .arg(dist)
        .arg("--emptyOutDir")
        .current_dir(dash)
        .status()
        .map_err(|e| format!("running `npm run build`: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`npm run build` in {} failed ({status}); see the output above",
            dash.display()
        ));
    }
    Ok(Ok(()))
}

fn newer_or_same(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(a), m(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((rel, path));
        }
    }
    Ok(())
}
