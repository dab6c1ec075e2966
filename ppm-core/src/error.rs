//! Control-plane errors: config validation and store access.
//!
//! The request path uses Pingora's own `Error` type; these are for loading,
//! validating and compiling configuration.

use std::fmt;

/// A boxed error from a backend (a database driver, a file system...), kept
/// as a source so backend types never appear in ppm-core signatures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One problem in a config, located by a field path such as
/// `proxy_hosts[3].upstreams[0].port`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Where the problem is, in the stored model's field names.
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
}

impl FieldError {
    /// A new error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The problems, in the order they were found.
    pub errors: Vec<FieldError>,
}

impl ConfigError {
    /// Wraps a list of field errors.
    pub fn new(errors: Vec<FieldError>) -> Self {
        ConfigError { errors }
    }

    /// A single field error.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            errors: vec![FieldError::new(path, message)],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("invalid config"),
            [one] => write!(f, "invalid config: {one}"),
            many => {
                write!(f, "invalid config ({} errors): ", many.len())?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

/// A store could not load its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, database, network).
    #[error("config store backend failed")]
    Backend(#[source] BoxError),
    /// The backend is unreachable for now; the caller should retry later.
    #[error("config store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be turned into a config.
    #[error("stored config is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        StoreError::Backend(err.into())
    }
}

/// Building an engine failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The builder was given no store.
    #[error("no config store was set on the engine builder")]
    NoStore,
    /// The first load failed.
    #[error("loading the initial config failed")]
    Store(#[from] StoreError),
    /// The initial config is invalid.
    #[error("the initial config is invalid")]
    Config(#[from] ConfigError),
    /// The stream runtime could not start (no tokio runtime to run on).
    #[error("the stream runtime could not start")]
    Streams(#[source] std::io::Error),
}

/// A reload did not apply; the previous config keeps serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The store could not be read.
    #[error("loading the config failed")]
    Store(#[from] StoreError),
    /// The loaded config is invalid.
    #[error("the new config is invalid; the previous one keeps serving")]
    Config(#[from] ConfigError),
    /// The engine's reload task has stopped.
    #[error("the engine's reload task is not running")]
    Stopped,
}

impl ReloadError {
    /// The field errors, when the config was invalid.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ReloadError::Config(c) => &c.errors,
            _ => &[],
        }
    }
}
