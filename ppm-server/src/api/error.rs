//! The API's one error type: a status, a code, a message and field errors,
//! rendered as `{"error": {"code", "message", "fields": [{"path", "message"}]}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ppm_core::error::{ConfigError, FieldError};
use ppm_store::WriteError;
use serde::Serialize;

/// An error answered to an API client. Internal details are logged, never
/// sent.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
    /// Field problems, with paths relative to the request body.
    pub fields: Vec<FieldError>,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    fields: &'a [FieldError],
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 with one field error.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let message = message.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: if path.is_empty() {
                message.clone()
            } else {
                format!("{path}: {message}")
            },
            fields: vec![FieldError::new(path, message)],
            retry_after: None,
        }
    }

    /// 422 with every field error of `errors`.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => one.to_string(),
            _ => format!("{} fields are invalid", errors.len()),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message,
            fields: errors,
            retry_after: None,
        }
    }

    /// 400: the body could not be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 500, with the cause logged and a generic message sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error in the API");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// Sets the paths of field errors relative to `prefix` (dropping it),
    /// e.g. `proxy_hosts[3].upstreams[0].port` → `upstreams[0].port`.
    #[must_use]
    pub fn relative_to(mut self, prefix: &str) -> Self {
        for f in &mut self.fields {
            if let Some(rest) = f.path.strip_prefix(prefix) {
                f.path = rest.trim_start_matches('.').to_string();
            }
        }
        self.message = match self.fields.as_slice() {
            [one] => one.to_string(),
            [] => self.message,
            many => format!("{} fields are invalid", many.len()),
        };
        self
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::invalid(e.errors)
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Invalid(c) => ApiError::invalid(c.errors),
            WriteError::NotFound { .. } => ApiError::not_found(e.to_string()),
            WriteError::InUse { .. } => ApiError::conflict(e.to_string()),
            WriteError::UnknownRevision(_) => ApiError::not_found(e.to_string()),
            WriteError::Format(_) => ApiError::bad_request(e.to_string()),
            WriteError::NewerSchema { .. } => {
                ApiError::unavailable(format!("this node cannot write, nothing was written: {e}"))
            }
            WriteError::Unavailable(m) => ApiError::unavailable(format!(
                "the config database is unavailable, nothing was written: {m}"
            )),
            other => ApiError::internal(display_chain(&other)),
        }
    }
}

impl From<ppm_core::error::StoreError> for ApiError {
    fn from(e: ppm_core::error::StoreError) -> Self {
        match e {
            ppm_core::error::StoreError::Unavailable(m) => {
                ApiError::unavailable(format!("the config database is unavailable: {m}"))
            }
            e => ApiError::internal(display_chain(&e)),
        }
    }
}

/// An error and its sources on one line, for logs.
pub fn display_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
