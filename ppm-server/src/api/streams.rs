//! Stream listeners in the API: the listeners a change adds are bound before
//! the change is committed (so a taken or privileged port is a clean 409 or
//! 422 and nothing is stored), and `GET /api/streams/status` reports them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ppm_core::config::Config;
use ppm_core::error::FieldError;
use ppm_core::stream::{BindErrorKind, BindFailure, Reservation, StreamStatus};

use super::{Access, ApiError, ApiResult, AppState, Auth};

/// Binds the listeners `candidate` adds. Hold the reservation until the
/// engine has applied the committed change. Field paths are
/// `streams[i].incoming_port` (or `.bind_address`), indexes into
/// `candidate.streams`.
pub(super) fn reserve(state: &AppState, candidate: &Config) -> ApiResult<Reservation> {
    state
        .engine
        .streams()
        .reserve(candidate)
        .map_err(bind_error)
}

/// The streams of `config` alone: all [`reserve`] reads, cheap to keep
/// while the full config is handed to the compiler.
pub(super) fn streams_of(config: &Config) -> Config {
    let mut c = Config::new();
    c.streams = config.streams.clone();
    c
}

fn bind_error(failures: Vec<BindFailure>) -> ApiError {
    let in_use = failures
        .iter()
        .any(|f| f.kind == BindErrorKind::AddressInUse);
    let fields = failures
        .iter()
        .map(|f| {
            FieldError::new(
                format!("streams[{}].{}", f.index, f.field()),
                f.message.clone(),
            )
        })
        .collect();
    let mut e = ApiError::invalid(fields);
    if in_use {
        // Another program (or another listener) has the port: the request
        // is fine, the machine's state conflicts with it.
        e.status = StatusCode::CONFLICT;
        e.code = "port_in_use";
    } else {
        e.code = "cannot_listen";
    }
    e
}

/// `GET /api/streams/status`: each stream's listeners (bound, or why not)
/// and counters.
pub(super) async fn status(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<StreamStatus>>> {
    auth.require("streams", Access::Read)?;
    Ok(Json(state.engine.streams().status()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppm_core::stream::Transport;

    fn failure(kind: BindErrorKind) -> BindFailure {
        // BindFailure is non-exhaustive: take a real one and set the kind.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let mut c = Config::new();
        c.streams.push(ppm_core::config::Stream {
            id: 1,
            incoming_port: port,
            bind_address: "127.0.0.1".into(),
            upstreams: vec![ppm_core::config::Upstream::new("127.0.0.1", 9)],
            ..Default::default()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let manager = rt
            .block_on(async {
                ppm_core::stream::StreamManager::new(ppm_core::stream::StreamOptions::new())
            })
            .unwrap();
        let mut f = manager.reserve(&c).unwrap_err().remove(0);
        assert_eq!(f.transport, Transport::Tcp);
        f.kind = kind;
        f
    }

    #[test]
    fn a_taken_port_is_a_conflict_and_other_bind_failures_are_unprocessable() {
        let e = bind_error(vec![failure(BindErrorKind::AddressInUse)]);
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "port_in_use"));
        assert_eq!(e.fields[0].path, "streams[0].incoming_port");
        for kind in [
            BindErrorKind::PermissionDenied,
            BindErrorKind::AddressNotAvailable,
            BindErrorKind::Other,
        ] {
            let e = bind_error(vec![failure(kind)]);
            assert_eq!(
                (e.status, e.code),
                (StatusCode::UNPROCESSABLE_ENTITY, "cannot_listen"),
                "{kind:?}"
            );
        }
        let e = bind_error(vec![failure(BindErrorKind::AddressNotAvailable)]);
        assert_eq!(e.fields[0].path, "streams[0].bind_address");
    }
}
