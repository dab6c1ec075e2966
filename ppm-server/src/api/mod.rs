//! The REST API under `/api`.

pub mod access;
pub mod certificates;
pub mod error;
pub mod openapi;
mod resources;
mod routes;
pub mod stats;
mod streams;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::Router;
use ppm_core::engine::EngineHandle;
use ppm_core::forwarded::TrustedProxies;
use ppm_store::AnyStore;
use serde::de::DeserializeOwned;

pub use access::{Access, Auth, Role};
pub use error::{ApiError, ApiResult};

use crate::auth::Jwt;
use crate::throttle::LoginThrottle;

/// Largest request body the API reads.
pub const MAX_BODY: usize = 4 << 20;

/// Everything handlers share.
pub struct State {
    /// The config and account store.
    pub store: Arc<AnyStore>,
    /// The running engine.
    pub engine: EngineHandle,
    /// Session token signer.
    pub jwt: Jwt,
    /// Session lifetime in seconds.
    pub session_ttl: i64,
    /// Ports ppm-server listens on itself.
    pub own_ports: Vec<u16>,
    /// Proxies in front of the API whose X-Forwarded-For is believed.
    pub trusted: TrustedProxies,
    /// Failed-login backoff.
    pub throttle: LoginThrottle,
    /// Serialises config writes so a change is checked against the config
    /// it will be applied to (shared with the ACME manager).
    pub write_lock: Arc<tokio::sync::Mutex<()>>,
    /// The ACME manager.
    pub acme: Arc<crate::acme::AcmeManager>,
    /// Traffic statistics and their time series.
    pub stats: Arc<crate::stats::StatsService>,
    /// The `/metrics` registry.
    pub metrics: Arc<prometheus_client::registry::Registry>,
    /// Serve `/metrics` without authentication.
    pub metrics_public: bool,
    /// A bearer token that may scrape `/metrics`.
    pub metrics_token: Option<String>,
    /// The access and error logs, when the access log is on.
    pub log_files: Option<crate::logs::LogFiles>,
    /// The log writer's counters.
    pub log_writer: Option<Arc<crate::logs::WriterStats>>,
    /// This node in the cluster.
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// Shared state handle.
pub type AppState = Arc<State>;

/// The API router.
pub fn router(state: AppState) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            report_nodes_applied,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Adds `x-ppm-nodes-applied: applied/live` to the answer of a request
/// that committed a config revision: of the live nodes, how many serve it
/// when the answer is sent (this node always does: writes answer after the
/// local node applied them).
async fn report_nodes_applied(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut resp, committed) = crate::cluster::track_committed(next.run(req)).await;
    if let Some(revision) = committed.filter(|_| resp.status().is_success()) {
        if let Some((applied, live)) = state.cluster.applied(revision).await {
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!("{applied}/{live}")) {
                resp.headers_mut()
                    .insert(crate::cluster::NODES_APPLIED_HEADER, v);
            }
        }
    }
    resp
}

/// The client's IP: the TCP peer, or from X-Forwarded-For through trusted
/// proxies.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let xff = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes());
        Ok(ClientIp(state.trusted.client_ip(peer, xff)))
    }
}

/// A JSON body parsed strictly: unknown fields are rejected and every error
/// names the field path.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let ct_ok = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !ct_ok {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        // serde accepts structs written as arrays; the API speaks objects.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let mut e = ApiError::field("", "the body must be a JSON object");
            e.status = axum::http::StatusCode::BAD_REQUEST;
            e.code = "bad_json";
            return Err(e);
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, turning serde's error into a field error.
///
/// Syntax errors are 400 `bad_json` and keep serde's line and column; data
/// errors are 422 `invalid` and name the field instead: a missing field is
/// reported at its own path (`upstreams[0].port: is required`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // `.` is the root, `?` a place serde_path_to_error could not name.
        let path = match path.as_str() {
            "." | "?" => String::new(),
            _ => path,
        };
        let full = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            let mut err = ApiError::field(path, full);
            err.status = axum::http::StatusCode::BAD_REQUEST;
            err.code = "bad_json";
            return err;
        }
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let message = full.strip_suffix(&position).unwrap_or(&full);
        match message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            Some(name) if path.is_empty() => ApiError::field(name, "is required"),
            Some(name) => ApiError::field(format!("{path}.{name}"), "is required"),
            None => ApiError::field(path, message),
        }
    })
}

/// A path parameter whose rejection is a JSON error naming the parameter.
pub struct PathParam<T>(pub T);

impl<T> FromRequestParts<AppState> for PathParam<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let e = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => return Ok(PathParam(v)),
            Err(e) => e,
        };
        let (key, value, expected) = match &e {
            PathRejection::FailedToDeserializePathParams(d) => match d.kind() {
                ErrorKind::ParseErrorAtKey {
                    key,
                    value,
                    expected_type,
                } => (Some(key.clone()), value.clone(), *expected_type),
                ErrorKind::ParseError {
                    value,
                    expected_type,
                }
                | ErrorKind::ParseErrorAtIndex {
                    value,
                    expected_type,
                    ..
                } => {
                    // Name the parameter that holds the bad value.
                    let key = axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .ok()
                        .and_then(|raw| {
                            raw.iter()
                                .find(|(_, v)| *v == value.as_str())
                                .map(|(k, _)| k.to_string())
                        });
                    (key, value.clone(), *expected_type)
                }
                _ => (None, String::new(), ""),
            },
            _ => (None, String::new(), ""),
        };
        let mut err = match key {
            Some(key) if !expected.is_empty() => {
                let what = match expected {
                    "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => {
                        "an integer".to_string()
                    }
                    other => format!("a {other}"),
                };
                ApiError::field(key, format!("`{value}` is not {what}"))
            }
            _ => ApiError::field("path", e.body_text()),
        };
        err.status = axum::http::StatusCode::BAD_REQUEST;
        Err(err)
    }
}

/// Query parameters whose rejection is a JSON error naming the parameter.
pub struct QueryParams<T>(pub T);

impl<T> FromRequestParts<AppState> for QueryParams<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(e) => {
                let text = e.body_text();
                let (path, message) = query_error(&text);
                let mut err = ApiError::field(path, message);
                err.status = axum::http::StatusCode::BAD_REQUEST;
                Err(err)
            }
        }
    }
}

/// Splits axum's query rejection text (`Failed to deserialize query string:
/// limit: invalid digit found in string`) into the parameter and what is
/// wrong with it; `query` and the whole text when it names no parameter.
fn query_error(text: &str) -> (&str, &str) {
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    match detail.split_once(": ") {
        Some((name, message))
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            (name, message)
        }
        _ => ("query", detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Up {
        host: String,
        port: u16,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Host {
        name: String,
        #[serde(default)]
        upstreams: Vec<Up>,
    }

    fn error(body: &str) -> (u16, &'static str, String, String) {
        let e = parse_json::<Host>(body.as_bytes()).unwrap_err();
        let f = &e.fields[0];
        (e.status.as_u16(), e.code, f.path.clone(), f.message.clone())
    }

    #[test]
    fn a_missing_field_is_named_at_its_own_path() {
        assert_eq!(
            error("{}"),
            (422, "invalid", "name".into(), "is required".into())
        );
        assert_eq!(
            error(r#"{"name": "a", "upstreams": [{"host": "h", "port": 1}, {"host": "h"}]}"#),
            (
                422,
                "invalid",
                "upstreams[1].port".into(),
                "is required".into()
            )
        );
    }

    #[test]
    fn data_errors_name_the_field_without_a_position() {
        let (status, code, path, message) =
            error(r#"{"name": "a", "upstreams": [{"host": "h", "port": 70000}]}"#);
        assert_eq!(
            (status, code, path.as_str()),
            (422, "invalid", "upstreams[0].port")
        );
        assert!(message.contains("70000"), "{message}");
        assert!(!message.contains("line"), "{message}");
        let (_, _, path, message) = error(r#"{"name": "a", "bogus": 1}"#);
        assert_eq!(path, "bogus");
        assert!(message.starts_with("unknown field `bogus`"), "{message}");
    }

    #[test]
    fn syntax_errors_are_bad_json_with_their_position() {
        let (status, code, path, message) = error(r#"{"name": "a""#);
        assert_eq!((status, code, path.as_str()), (400, "bad_json", ""));
        assert!(message.contains("line 1 column"), "{message}");
    }

    #[test]
    fn query_errors_name_the_parameter() {
        assert_eq!(
            query_error("Failed to deserialize query string: limit: invalid digit found in string"),
            ("limit", "invalid digit found in string")
        );
        assert_eq!(
            query_error("Failed to deserialize query string: unknown field `x`, expected `limit`"),
            ("query", "unknown field `x`, expected `limit`")
        );
    }
}
