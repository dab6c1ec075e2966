//! Traffic statistics, the log viewer and `/metrics`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ppm_core::config::Id;
use ppm_core::stats::Counts;
use ppm_store::stats::{
    sum_series, Resolution, SeriesPoint, SCOPE_HOST, SCOPE_STREAM, SCOPE_UPSTREAM,
};
use serde::{Deserialize, Serialize};

use super::{Access, ApiError, ApiResult, AppState, Auth, PathParam, QueryParams};
use crate::logs::{LogEntry, LogQuery};
use crate::stats::{now_secs, ClusterTotals, RollupResult, StatsService};

/// Most points one series answer holds.
pub const MAX_POINTS: i64 = 2000;

/// `GET /api/stats/summary` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// Hosts in each top list (default 10, at most 100).
    #[schemars(range(min = 0, max = 100))]
    pub top: Option<usize>,
}

/// Rates over the last minute or so.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Rates {
    /// Seconds the rates are measured over (0 right after startup).
    pub window_seconds: f64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Failed requests (no response or 5xx) per second.
    pub errors_per_second: f64,
    /// Request body bytes per second.
    pub bytes_in_per_second: f64,
    /// Response body bytes per second.
    pub bytes_out_per_second: f64,
    /// Mean request duration over the window, milliseconds.
    pub mean_latency_ms: f64,
}

/// A host in a top list.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TopHost {
    /// `proxy`, `redirection`, `dead`, `default` or `unrouted`.
    pub kind: String,
    /// Store id (0 for `default` and `unrouted`).
    pub id: Id,
    /// First domain name (empty for `default` and `unrouted`).
    pub name: String,
    /// Requests since the statistics began.
    pub requests: u64,
    /// Failed requests (no response or 5xx).
    pub errors: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
}

/// The access log's counters.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AccessLogStatus {
    /// Whether requests are logged.
    pub enabled: bool,
    /// Lines written since startup.
    pub written: u64,
    /// Records dropped since startup because the buffer was full.
    pub dropped: u64,
}

/// One node's share of the totals in `GET /api/stats/summary`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NodeTotalsView {
    /// The node's id (empty for counts recorded before statistics were
    /// kept per node).
    pub node_id: String,
    /// Whether this is the node that answered.
    pub this_node: bool,
    /// The node's last rollup, unix seconds: its counts up to then are
    /// included (this node's are included up to now). `null` for this node
    /// before its first rollup.
    pub last_rollup: Option<i64>,
    /// Its HTTP totals, over every host.
    pub totals: Counts,
    /// Its stream totals, over every stream.
    pub streams: Counts,
}

/// `GET /api/stats/summary`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// HTTP totals since the statistics began, over every host and every
    /// node sharing the database: each node's counts as of its last rollup,
    /// this node's up to now. The sum of `nodes[].totals`.
    pub totals: Counts,
    /// This node's HTTP counters since its process started.
    pub since_start: Counts,
    /// HTTP requests in flight on this node.
    pub active_requests: u64,
    /// This node's rates over the last minute or so.
    pub rates: Rates,
    /// Seconds since this node's process started.
    pub uptime_seconds: u64,
    /// Hosts with the most requests (totals over every node).
    pub top_hosts_by_requests: Vec<TopHost>,
    /// Hosts with the most failed requests (totals over every node), only
    /// those with any.
    pub top_hosts_by_errors: Vec<TopHost>,
    /// Stream totals, summed over every stream and every node. The sum of
    /// `nodes[].streams`.
    pub streams: Counts,
    /// This node's access log.
    pub access_log: AccessLogStatus,
    /// Whether the time series (`/api/stats/{hosts,upstreams,streams}/…`)
    /// are kept: always true, on every backend.
    pub series_available: bool,
    /// The id of the node that answered.
    pub node_id: String,
    /// Each node's share of `totals` and `streams`, by node id.
    pub nodes: Vec<NodeTotalsView>,
}

fn host_names(service: &StatsService) -> HashMap<String, String> {
    service
        .engine()
        .stats()
        .hosts()
        .into_iter()
        .map(|h| (format!("{}:{}", h.key.kind, h.key.id), h.name))
        .collect()
}

/// `GET /api/stats/summary`: totals, rates and top hosts now.
pub(super) async fn summary(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<SummaryQuery>,
) -> ApiResult<Json<Summary>> {
    auth.require("stats", Access::Read)?;
    let top = q.top.unwrap_or(10).min(100);
    let s = &state.stats;
    let current = s.current();
    let cluster: ClusterTotals = s.cluster_totals().await?;
    let totals = &cluster.series;
    let since_start = StatsService::host_sum(&current);
    let engine_stats = s.engine().stats();
    let active_requests = engine_stats.hosts().iter().map(|h| h.stats.active).sum();
    let (window, delta) = s.rates();
    let per = |v: u64| if window > 0.0 { v as f64 / window } else { 0.0 };
    let rates = Rates {
        window_seconds: (window * 10.0).round() / 10.0,
        requests_per_second: per(delta.requests),
        errors_per_second: per(delta.errors()),
        bytes_in_per_second: per(delta.bytes_in),
        bytes_out_per_second: per(delta.bytes_out),
        mean_latency_ms: if delta.duration_count > 0 {
            delta.duration_us_sum as f64 / delta.duration_count as f64 / 1000.0
        } else {
            0.0
        },
    };
    // Hosts in the config now (the unrouted bucket too), with their totals.
    let names = host_names(s);
    let mut hosts: Vec<TopHost> = names
        .iter()
        .filter_map(|(key, name)| {
            let c = totals.get(&(SCOPE_HOST, key.clone()))?;
            let (kind, id) = key.split_once(':')?;
            Some(TopHost {
                kind: kind.to_string(),
                id: id.parse().unwrap_or(0),
                name: name.clone(),
                requests: c.requests,
                errors: c.errors(),
                bytes_out: c.bytes_out,
            })
        })
        .filter(|h| h.requests > 0)
        .collect();
    hosts.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.name.cmp(&b.name)));
    let mut by_errors: Vec<TopHost> = hosts.iter().filter(|h| h.errors > 0).cloned().collect();
    by_errors.sort_by(|a, b| b.errors.cmp(&a.errors).then(a.name.cmp(&b.name)));
    hosts.truncate(top);
    by_errors.truncate(top);
    let streams = totals
        .iter()
        .filter(|((scope, _), _)| *scope == SCOPE_STREAM)
        .fold(Counts::default(), |a, (_, c)| a.plus(c));
    let nodes = cluster
        .nodes
        .iter()
        .map(|n| NodeTotalsView {
            node_id: n.node_id.clone(),
            this_node: n.this_node,
            last_rollup: n.last_rollup,
            totals: n.http,
            streams: n.streams,
        })
        .collect();
    let access_log = match engine_stats.access_log() {
        Some(log) => AccessLogStatus {
            enabled: true,
            written: state
                .log_writer
                .as_ref()
                .map_or(0, |w| w.written.load(std::sync::atomic::Ordering::Relaxed)),
            dropped: log.dropped(),
        },
        None => AccessLogStatus {
            enabled: false,
            written: 0,
            dropped: 0,
        },
    };
    Ok(Json(Summary {
        totals: StatsService::host_sum(totals),
        since_start,
        active_requests,
        rates,
        uptime_seconds: engine_stats.started().elapsed().as_secs(),
        top_hosts_by_requests: hosts,
        top_hosts_by_errors: by_errors,
        streams,
        access_log,
        series_available: true,
        node_id: s.node_id().to_owned(),
        nodes,
    }))
}

/// Query of the series endpoints.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// Start, unix seconds (default: one hour before `to`).
    pub from: Option<i64>,
    /// End (exclusive), unix seconds (default: now).
    pub to: Option<i64>,
    /// Bucket length in seconds, a multiple of 60 (default 60; a multiple
    /// of 3600 reads hourly rows, as does a range older than the minute
    /// retention). At most 2000 buckets.
    pub step: Option<i64>,
    /// Host kind for `/api/stats/hosts/{id}`: `proxy` (default),
    /// `redirection`, `dead`, or `default` (id 0).
    pub kind: Option<String>,
    /// Only this node's points (an id as `nodes[].node_id` shows it; empty
    /// for counts recorded before statistics were kept per node). Default:
    /// the sum over every node.
    pub node: Option<String>,
}

/// One node's share of a series.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SeriesNode {
    /// The node's id (empty for counts recorded before statistics were
    /// kept per node).
    pub node_id: String,
    /// Whether this is the node that answered.
    pub this_node: bool,
    /// Its counters over the whole range (the sum of its buckets).
    pub totals: Counts,
}

/// A series ready for a chart: one point per bucket, empty buckets zero.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Series {
    /// `host`, `upstream` or `stream`.
    pub scope: String,
    /// The series within the scope: `proxy:3`, `10.0.0.2:8080`, `7`.
    pub key: String,
    /// `minute` or `hour`: which rows were read.
    pub resolution: String,
    /// Start of the first bucket, unix seconds.
    pub from: i64,
    /// End of the range (exclusive), unix seconds.
    pub to: i64,
    /// Bucket length, seconds.
    pub step: i64,
    /// The buckets, summed over every node (or only `node`'s). Counters
    /// reach the series at each node's rollup (`--stats-interval`), not
    /// live.
    pub points: Vec<SeriesPoint>,
    /// The node the points are limited to (`?node=`); `null` for the sum
    /// over every node.
    pub node: Option<String>,
    /// Each node with counts in the range, by id, with its share of the
    /// whole range; their sum is the sum of the points over every node.
    pub nodes: Vec<SeriesNode>,
}

async fn series(
    state: &AppState,
    scope: &'static str,
    key: String,
    q: SeriesQuery,
) -> ApiResult<Json<Series>> {
    let store = state.stats.series_store();
    let now = now_secs();
    let to = q.to.unwrap_or(now + 1);
    let from = q.from.unwrap_or(to - 3600);
    let mut step = q.step.unwrap_or(60);
    if step < 60 || step % 60 != 0 {
        return Err(ApiError::field("step", "must be a positive multiple of 60"));
    }
    if from >= to {
        return Err(ApiError::field("from", "must be before to"));
    }
    let minute_floor = now - state.stats.retention().minute_secs;
    let resolution = if step % 3600 == 0 || from < minute_floor {
        step = (step + 3599) / 3600 * 3600;
        Resolution::Hour
    } else {
        Resolution::Minute
    };
    if (to - from) / step > MAX_POINTS {
        return Err(ApiError::field(
            "step",
            format!("the range holds more than {MAX_POINTS} buckets of this step"),
        ));
    }
    let by_node = store
        .series_by_node(scope, &key, resolution, from, to, step)
        .await?;
    let points = match &q.node {
        Some(node) => sum_series(
            &by_node
                .iter()
                .filter(|n| &n.node_id == node)
                .cloned()
                .collect::<Vec<_>>(),
            from,
            to,
            step,
        ),
        None => sum_series(&by_node, from, to, step),
    };
    let this = state.stats.node_id();
    let nodes = by_node
        .into_iter()
        .map(|n| SeriesNode {
            this_node: n.node_id == this,
            totals: n
                .points
                .iter()
                .fold(Counts::default(), |a, p| a.plus(&p.counts)),
            node_id: n.node_id,
        })
        .collect();
    Ok(Json(Series {
        scope: scope.to_string(),
        key,
        resolution: match resolution {
            Resolution::Hour => "hour",
            _ => "minute",
        }
        .into(),
        from: points.first().map_or(from, |p| p.t),
        to,
        step,
        points,
        node: q.node,
        nodes,
    }))
}

/// `GET /api/stats/hosts/{id}`.
pub(super) async fn host_series(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> ApiResult<Json<Series>> {
    auth.require("stats", Access::Read)?;
    let kind = match q.kind.as_deref().unwrap_or("proxy") {
        k @ ("proxy" | "redirection" | "dead" | "default" | "unrouted") => k,
        _ => {
            return Err(ApiError::field(
                "kind",
                "must be proxy, redirection, dead, default or unrouted",
            ))
        }
    };
    let key = format!("{kind}:{id}");
    series(&state, SCOPE_HOST, key, q).await
}

/// `GET /api/stats/upstreams/{upstream}` (`host:port`, URL-encoded).
pub(super) async fn upstream_series(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(upstream): PathParam<String>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> ApiResult<Json<Series>> {
    auth.require("stats", Access::Read)?;
    if q.kind.is_some() {
        return Err(ApiError::field("kind", "only for hosts"));
    }
    series(&state, SCOPE_UPSTREAM, upstream, q).await
}

/// `GET /api/stats/streams/{id}`.
pub(super) async fn stream_series(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> ApiResult<Json<Series>> {
    auth.require("stats", Access::Read)?;
    if q.kind.is_some() {
        return Err(ApiError::field("kind", "only for hosts"));
    }
    series(&state, SCOPE_STREAM, id.to_string(), q).await
}

/// `POST /api/stats/rollup`: rolls the counters up into the series now.
pub(super) async fn rollup(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<RollupResult>> {
    auth.require("stats", Access::Write)?;
    Ok(Json(state.stats.rollup().await?))
}

/// Query of the log viewer.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only this host (exact, case-insensitive).
    pub host: Option<String>,
    /// `404` (exact), `4` or `4xx` (class), `0` (no response).
    #[schemars(regex(pattern = r"^(0|[1-5]|[1-5]xx|[1-5][0-9][0-9])$"))]
    pub status: Option<String>,
    /// Text anywhere in the line (case-insensitive).
    pub q: Option<String>,
    /// Only entries at or after this time, unix seconds.
    pub since: Option<i64>,
    /// Most entries (default 100, at most 1000).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<usize>,
}

/// Log lines, newest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogPage {
    /// Matching entries, newest first.
    pub entries: Vec<LogEntry>,
    /// Whether the scan stopped at its byte budget (64 MiB) before reaching
    /// the oldest kept line.
    pub truncated: bool,
}

async fn read_log(state: &AppState, errors: bool, q: LogsQuery) -> ApiResult<Json<LogPage>> {
    let Some(files) = state.log_files.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "access_log_off",
            "the access log is off (--access-log off)",
        ));
    };
    if let Some(s) = &q.status {
        let s = s.trim();
        let ok = s == "0"
            || (s.len() == 1 && matches!(s.as_bytes()[0], b'1'..=b'5'))
            || (s.len() == 3
                && (s.ends_with("xx") && matches!(s.as_bytes()[0], b'1'..=b'5')
                    || s.parse::<u16>().is_ok_and(|v| (100..=599).contains(&v))));
        if !ok {
            return Err(ApiError::field("status", "use 404, 4, 4xx or 0"));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1..=1000"));
    }
    let query = LogQuery {
        host: q.host.filter(|h| !h.is_empty()),
        status: q.status.filter(|s| !s.is_empty()),
        q: q.q.filter(|s| !s.is_empty()),
        since: q.since,
        limit,
    };
    let path = if errors { files.errors } else { files.access };
    let keep = files.keep;
    let r = tokio::task::spawn_blocking(move || crate::logs::scan(&path, keep, &query))
        .await
        .map_err(|_| ApiError::internal("the log reader failed"))?
        .map_err(|e| ApiError::internal(format!("reading the log failed: {e}")))?;
    Ok(Json(LogPage {
        entries: r.entries,
        truncated: r.truncated,
    }))
}

/// `GET /api/logs/access`.
pub(super) async fn access_log(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<LogsQuery>,
) -> ApiResult<Json<LogPage>> {
    auth.require("logs", Access::Read)?;
    read_log(&state, false, q).await
}

/// `GET /api/logs/errors`.
pub(super) async fn error_log(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<LogsQuery>,
) -> ApiResult<Json<LogPage>> {
    auth.require("logs", Access::Read)?;
    read_log(&state, true, q).await
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
pub(super) async fn metrics(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> Response {
    if !state.metrics_public {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let by_token = match (&state.metrics_token, bearer) {
            (Some(want), Some(got)) => {
                use subtle::ConstantTimeEq;
                bool::from(want.as_bytes().ct_eq(got.as_bytes()))
            }
            _ => false,
        };
        if !by_token {
            let mut parts = parts;
            let auth =
                match <Auth as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                    &mut parts, &state,
                )
                .await
                {
                    Ok(a) => a,
                    Err(e) => return e.into_response(),
                };
            if let Err(e) = auth.require("metrics", Access::Read) {
                return e.into_response();
            }
        }
    }
    match crate::metrics::render(&state.metrics) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(_) => ApiError::internal("encoding the metrics failed").into_response(),
    }
}
