//! The dashboard's files, embedded at build time (see `build.rs`), served on
//! the API listener for every path outside `/api`.
//!
//! - `assets/*` files have content hashes in their names: cached for a year
//!   as `immutable`.
//! - Everything else (`index.html`, icons) is `no-cache` with an `ETag`, so
//!   browsers revalidate and get `304 Not Modified` when nothing changed.
//! - Any other path without a file extension answers `index.html` (the app
//!   routes in the browser); a missing file with an extension is a 404.
//! - When the binary was built without the dashboard, every page explains
//!   how to build it.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path relative to the dashboard root, e.g. `assets/index-3f2a.js`.
    pub path: &'static str,
    /// Contents.
    pub body: &'static [u8],
    /// Strong ETag, quoted.
    pub etag: &'static str,
}

mod generated {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));
}

pub use generated::{BUILT, FILES};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";
/// The app loads only its own files and talks only to its own origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ppm: dashboard not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#1f2937}code,pre{background:#f3f4f6;border-radius:4px;padding:.1rem .3rem}pre{padding:.75rem;overflow:auto}</style>
</head><body>
<h1>The dashboard was not built into this binary</h1>
<p>ppm-server is running and its REST API is available under <code>/api</code>
(described by <a href="/api/openapi.json"><code>/api/openapi.json</code></a>), but this
build of the binary has no dashboard: npm was not found (or could not install
the dashboard's packages) when it was compiled, or <code>PPM_DASHBOARD=skip</code> was set.</p>
<p>To build it, install Node.js 20.19 or newer with npm, then rebuild from the repository:</p>
<pre>apt-get install -y nodejs npm   # or any Node.js >= 20.19
cargo run --release -p ppm-server</pre>
<p>The build runs <code>npm ci</code> and <code>npm run build</code> in
<code>ppm-server/dashboard</code> and embeds the result.</p>
</body></html>
"#;

/// Finds an embedded file by its path (without the leading `/`).
pub fn find(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.path == path)
}

/// Answers a request outside `/api`.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if !BUILT {
        return page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            NO_CACHE,
            None,
            NOT_BUILT.as_bytes(),
            method,
        );
    }
    let rel = path.trim_start_matches('/');
    let (asset, status) = match find(rel) {
        Some(a) if !rel.is_empty() => (a, StatusCode::OK),
        _ => {
            let last = rel.rsplit('/').next().unwrap_or("");
            if rel.starts_with("assets/") || last.contains('.') {
                return (StatusCode::NOT_FOUND, "not found\n").into_response();
            }
            match find("index.html") {
                Some(index) => (index, StatusCode::OK),
                None => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
            }
        }
    };
    let cache = if asset.path.starts_with("assets/") {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == asset.etag
        });
    if fresh {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        let h = r.headers_mut();
        h.insert(header::ETAG, HeaderValue::from_static(asset.etag));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        return r;
    }
    page(
        status,
        content_type(asset.path),
        cache,
        Some(asset.etag),
        asset.body,
        method,
    )
}

fn page(
    status: StatusCode,
    ctype: &'static str,
    cache: &'static str,
    etag: Option<&'static str>,
    body: &'static [u8],
    method: &Method,
) -> Response {
    let len = body.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(etag) = etag {
        h.insert(header::ETAG, HeaderValue::from_static(etag));
    }
    if ctype.starts_with("text/html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    r
}

/// The media type of an embedded file, by extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}
