//! Conversions between model values and column values.

use ppm_core::error::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::WriteError;

/// The serde name of a unit enum variant (`"http"`, `"prefix"`...).
pub(crate) fn enum_to_str<T: Serialize>(value: &T) -> Result<String, WriteError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(WriteError::Corrupt(
            "a unit enum did not serialize to a string".into(),
        )),
    }
}

/// Parses a unit enum variant from its serde name.
pub(crate) fn enum_from_str<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// JSON text of a value object.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, WriteError> {
    serde_json::to_string(value).map_err(|e| WriteError::Corrupt(e.to_string()))
}

/// Parses a value object from JSON text.
pub(crate) fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Narrows a stored integer to the model's type.
pub(crate) fn narrow<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what}: {v} is out of range")))
}

/// Widens a model integer to a column value; values past `i64::MAX` cannot
/// be stored and are reported on `path`.
pub(crate) fn widen(v: u64, path: &str, errors: &mut Vec<ppm_core::error::FieldError>) -> i64 {
    match i64::try_from(v) {
        Ok(v) => v,
        Err(_) => {
            errors.push(ppm_core::error::FieldError::new(
                path,
                format!("must be at most {}", i64::MAX),
            ));
            0
        }
    }
}

/// The uniqueness key of a served name: its normalised form (lower-case
/// ASCII, punycode), or its lower-case text when it does not parse, so that
/// invalid names still collide with themselves.
pub(crate) fn domain_key(name: &str) -> String {
    ppm_core::validate::domain_name(name).unwrap_or_else(|_| name.to_lowercase())
}
