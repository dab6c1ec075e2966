//! `ppm-server`: run `ppm-server --help` for the settings.

use std::process::ExitCode;

use clap::Parser;
use ppm_server::settings::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let settings = Settings::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Pingora logs through the `log` crate; tracing-subscriber's log bridge
    // (the tracing-log feature) carries it into the same output.
    let init = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = init {
        eprintln!("ppm-server: could not set up logging: {e}");
        return ExitCode::from(1);
    }
    match ppm_server::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what failed, never a panic.
            eprintln!("ppm-server: {e:#}");
            tracing::error!("startup failed: {e:#}");
            ExitCode::from(1)
        }
    }
}
