#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The dashboard: how the embedded files are served, its Vitest suite, and
//! the end-to-end test in Debian's Chromium against this crate's binary
//! (`dashboard/e2e/run.mjs`: a real ppm-server on ephemeral ports with a
//! temporary data dir and a real upstream).
//!
//! A binary built without the dashboard (no npm) fails these tests with a
//! message saying why, unless `PPM_DASHBOARD=skip` says that was meant.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::to_bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ppm_server::dashboard;

fn dashboard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard")
}

/// Whether to skip: the dashboard was left out on purpose.
fn skipped() -> bool {
    if dashboard::BUILT {
        return false;
    }
    if std::env::var("PPM_DASHBOARD").as_deref() == Ok("skip") {
        eprintln!("PPM_DASHBOARD=skip: the dashboard tests are skipped");
        return true;
    }
    panic!(
        "the dashboard was not built into ppm-server (see the build warning: is npm installed?); \
         install Node.js >= 20.19 with npm and build again, or set PPM_DASHBOARD=skip"
    );
}

async fn body(r: Response) -> String {
    String::from_utf8(to_bytes(r.into_body(), 1 << 24).await.unwrap().to_vec()).unwrap()
}

fn get(path: &str) -> Response {
    dashboard::serve(&Method::GET, path, &HeaderMap::new())
}

#[tokio::test]
async fn serves_files_with_cache_headers_and_spa_fallback() {
    if !dashboard::BUILT {
        // The placeholder page explains how to build the dashboard.
        let r = get("/proxy-hosts");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body(r).await.contains("npm"));
        if skipped() {
            return;
        }
    }
    // index.html: revalidated every time, with an ETag and a strict CSP.
    let r = get("/");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let etag = r.headers()[header::ETAG].clone();
    let index = body(r).await;
    assert!(index.contains("<div id=\"root\">"));

    // A matching If-None-Match answers 304 with no body.
    let mut h = HeaderMap::new();
    h.insert(header::IF_NONE_MATCH, etag.clone());
    let r = dashboard::serve(&Method::GET, "/index.html", &h);
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(body(r).await.is_empty());
    h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
    assert_eq!(
        dashboard::serve(&Method::GET, "/", &h).status(),
        StatusCode::OK
    );

    // Hashed assets are immutable, with their media type.
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html names its script");
    assert!(script.starts_with("/assets/"), "{script}");
    let r = get(script);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(r.headers().get(header::CONTENT_SECURITY_POLICY).is_none());

    // App routes get index.html; missing files do not.
    for path in ["/proxy-hosts", "/proxy-hosts/12", "/history/3"] {
        let r = get(path);
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(body(r).await, index, "{path}");
    }
    for path in ["/assets/missing.js", "/favicon.png", "/x/y.css"] {
        assert_eq!(get(path).status(), StatusCode::NOT_FOUND, "{path}");
    }
    // HEAD has the length but no body; other methods are refused.
    let r = dashboard::serve(&Method::HEAD, "/", &HeaderMap::new());
    assert_eq!(
        r.headers()[header::CONTENT_LENGTH].to_str().unwrap(),
        index.len().to_string()
    );
    assert!(body(r).await.is_empty());
    let r = dashboard::serve(&Method::POST, "/", &HeaderMap::new());
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .current_dir(dashboard_dir())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "{what} failed ({})", out.status);
}

#[test]
fn vitest_unit_and_component_tests() {
    if skipped() {
        return;
    }
    run(
        Command::new("npm").args(["test", "--silent", "--", "--reporter=dot"]),
        "vitest (npm test in ppm-server/dashboard)",
    );
}

#[test]
fn browser_end_to_end() {
    if skipped() {
        return;
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install -y chromium (or set CHROMIUM)"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    run(
        Command::new("node")
            .arg("e2e/run.mjs")
            .env("PPM_BIN", env!("CARGO_BIN_EXE_ppm-server"))
            .env("CHROMIUM", &chromium)
            .env("SCREENSHOT_DIR", &shots),
        "the browser end-to-end test (node e2e/run.mjs)",
    );
    println!("screenshots: {}", shots.display());
}
