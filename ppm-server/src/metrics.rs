//! `GET /metrics`: the engine's counters in the Prometheus/OpenMetrics text
//! format, encoded by `prometheus-client` from snapshots taken at scrape
//! time (the request path only bumps atomics).
//!
//! Metric names are stable; labels: `host`, `kind`, `host_id` for hosts,
//! `upstream` (`host:port` as configured), `status_class` (`1xx`..`5xx`,
//! `none` when no response was sent), `code`, `stream_id`,
//! `certificate_id`. Counters end in `_total`.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use ppm_core::stats::{HistogramSnapshot, HttpSnapshot, COMMON_CODES, LATENCY_BUCKETS_MS};

use crate::logs::WriterStats;
use crate::stats::{now_secs, StatsService};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// The collector behind `/metrics`.
pub struct Metrics {
    stats: Arc<StatsService>,
    log: Option<Arc<WriterStats>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A registry holding the ppm collector.
pub fn registry(stats: Arc<StatsService>, log: Option<Arc<WriterStats>>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Metrics { stats, log }));
    r
}

/// Encodes `registry` in the text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 << 10);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

fn counters<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (&'a Labels, u64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            return ConstCounter::new(v).encode(m);
        }
        ConstCounter::new(v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges<'a, V: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (&'a Labels, V)>,
) -> std::fmt::Result
where
    ConstGauge<V>: EncodeMetric,
{
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        // A metric without labels is one sample without braces.
        if labels.is_empty() {
            return ConstGauge::new(v).encode(m);
        }
        ConstGauge::new(v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (&'a Labels, &'a HistogramSnapshot)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_MS
            .iter()
            .map(|&b| b as f64 / 1000.0)
            .chain(std::iter::once(f64::MAX))
            .zip(h.buckets.iter().copied())
            .collect();
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum_us as f64 / 1e6,
            h.count(),
            &buckets,
            None,
        )?;
    }
    Ok(())
}

fn with(labels: &Labels, k: &'static str, v: impl Into<String>) -> Labels {
    let mut l = labels.clone();
    l.push((k, v.into()));
    l
}

const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

fn classes(s: &HttpSnapshot) -> [u64; 6] {
    let c = &s.counts;
    [
        c.no_response,
        c.status_1xx,
        c.status_2xx,
        c.status_3xx,
        c.status_4xx,
        c.status_5xx,
    ]
}

/// Reads `/proc/self` (Linux): CPU seconds, resident bytes, open fds,
/// threads.
fn process() -> Option<(f64, u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which ends at the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the full line (11 and 12 here),
    // in clock ticks of 1/100 s (USER_HZ on Linux).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((ticks as f64 / 100.0, rss_kb * 1024, fds, threads))
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let engine = self.stats.engine();
        let stats = engine.stats();

        // Build, process, config.
        let build: Labels = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
        gauges(
            &mut enc,
            "ppm_build_info",
            "Build information; the value is 1",
            [(&build, 1i64)],
        )?;
        let none: Labels = Vec::new();
        let started = std::time::SystemTime::now()
            .checked_sub(stats.started().elapsed())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        gauges(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process, unix seconds",
            [(&none, started)],
        )?;
        if let Some((cpu, rss, fds, threads)) = process() {
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
            gauges(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                [(&none, rss)],
            )?;
            gauges(
                &mut enc,
                "process_open_fds",
                "Open file descriptors",
                [(&none, fds)],
            )?;
            gauges(
                &mut enc,
                "process_threads",
                "OS threads",
                [(&none, threads)],
            )?;
        }
        gauges(
            &mut enc,
            "ppm_config_revision",
            "Config revision serving",
            [(&none, engine.revision())],
        )?;

        // Hosts.
        let hosts: Vec<(Labels, HttpSnapshot)> = stats
            .hosts()
            .into_iter()
            .map(|h| {
                let name = if h.name.is_empty() {
                    h.key.kind.to_string()
                } else {
                    h.name
                };
                (
                    vec![
                        ("host", name),
                        ("kind", h.key.kind.to_string()),
                        ("host_id", h.key.id.to_string()),
                    ],
                    h.stats,
                )
            })
            .collect();
        counters(
            &mut enc,
            "ppm_http_requests",
            "HTTP requests received, by host",
            hosts.iter().map(|(l, s)| (l, s.counts.requests)),
        )?;
        let by_class: Vec<(Labels, u64)> = hosts
            .iter()
            .flat_map(|(l, s)| {
                CLASSES
                    .iter()
                    .zip(classes(s))
                    .map(|(c, v)| (with(l, "status_class", *c), v))
            })
            .collect();
        counters(
            &mut enc,
            "ppm_http_responses",
            "HTTP responses by status class (none: no response was sent)",
            by_class.iter().map(|(l, v)| (l, *v)),
        )?;
        let by_code: Vec<(Labels, u64)> = hosts
            .iter()
            .flat_map(|(l, s)| {
                COMMON_CODES
                    .iter()
                    .zip(s.codes)
                    .filter(|(_, v)| *v > 0)
                    .map(|(c, v)| (with(l, "code", c.to_string()), v))
            })
            .collect();
        counters(
            &mut enc,
            "ppm_http_responses_by_code",
            "HTTP responses for common status codes",
            by_code.iter().map(|(l, v)| (l, *v)),
        )?;
        counters(
            &mut enc,
            "ppm_http_request_body_bytes",
            "Request body bytes read from clients",
            hosts.iter().map(|(l, s)| (l, s.counts.bytes_in)),
        )?;
        counters(
            &mut enc,
            "ppm_http_response_body_bytes",
            "Response body bytes sent to clients",
            hosts.iter().map(|(l, s)| (l, s.counts.bytes_out)),
        )?;
        gauges(
            &mut enc,
            "ppm_http_active_requests",
            "HTTP requests in flight",
            hosts.iter().map(|(l, s)| (l, s.active)),
        )?;
        counters(
            &mut enc,
            "ppm_http_upstream_errors",
            "Upstream failures (connect, TLS, read, write, timeout) of a host's requests",
            hosts.iter().map(|(l, s)| (l, s.counts.upstream_errors)),
        )?;
        counters(
            &mut enc,
            "ppm_http_retries",
            "Requests retried on another upstream",
            hosts.iter().map(|(l, s)| (l, s.counts.retries)),
        )?;
        histograms(
            &mut enc,
            "ppm_http_request_duration_seconds",
            "Time from the request head to the end of the response",
            hosts.iter().map(|(l, s)| (l, &s.latency)),
        )?;
        histograms(
            &mut enc,
            "ppm_http_upstream_duration_seconds",
            "Time from choosing an upstream to its response header",
            hosts.iter().map(|(l, s)| (l, &s.upstream_latency)),
        )?;

        // Upstreams.
        let ups: Vec<(Labels, HttpSnapshot)> = stats
            .upstreams()
            .into_iter()
            .map(|u| (vec![("upstream", u.upstream)], u.stats))
            .collect();
        counters(
            &mut enc,
            "ppm_upstream_requests",
            "Requests sent to an upstream (each attempt)",
            ups.iter().map(|(l, s)| (l, s.counts.requests)),
        )?;
        let up_class: Vec<(Labels, u64)> = ups
            .iter()
            .flat_map(|(l, s)| {
                CLASSES
                    .iter()
                    .zip(classes(s))
                    .skip(1)
                    .map(|(c, v)| (with(l, "status_class", *c), v))
            })
            .collect();
        counters(
            &mut enc,
            "ppm_upstream_responses",
            "Responses from an upstream, by status class",
            up_class.iter().map(|(l, v)| (l, *v)),
        )?;
        counters(
            &mut enc,
            "ppm_upstream_errors",
            "Failures talking to an upstream (connect, TLS, read, write, timeout)",
            ups.iter().map(|(l, s)| (l, s.counts.upstream_errors)),
        )?;
        counters(
            &mut enc,
            "ppm_upstream_response_body_bytes",
            "Response body bytes relayed from an upstream",
            ups.iter().map(|(l, s)| (l, s.counts.bytes_out)),
        )?;
        histograms(
            &mut enc,
            "ppm_upstream_duration_seconds",
            "Time from choosing the upstream to its response header",
            ups.iter().map(|(l, s)| (l, &s.upstream_latency)),
        )?;
        let mut health: HashMap<String, (bool, usize)> = HashMap::new();
        for g in engine.upstream_health() {
            for m in g.upstreams {
                let label = ppm_core::stats::upstream_label(&m.host, m.addr);
                let up = m.healthy && !m.passive_down;
                let e = health.entry(label).or_insert((true, 0));
                e.0 &= up;
                e.1 += m.active_requests;
            }
        }
        let mut health: Vec<(Labels, (bool, usize))> = health
            .into_iter()
            .map(|(k, v)| (vec![("upstream", k)], v))
            .collect();
        health.sort_by(|a, b| a.0.cmp(&b.0));
        gauges(
            &mut enc,
            "ppm_upstream_up",
            "1 when the upstream passes its health checks and is not skipped after failures",
            health.iter().map(|(l, (up, _))| (l, i64::from(*up))),
        )?;
        gauges(
            &mut enc,
            "ppm_upstream_active_requests",
            "Requests in flight to an upstream",
            health.iter().map(|(l, (_, a))| (l, *a as u64)),
        )?;

        // Streams.
        let streams: Vec<(Labels, ppm_core::stream::StreamStats)> = engine
            .stream_stats()
            .into_iter()
            .map(|s| (vec![("stream_id", s.stream_id.to_string())], s))
            .collect();
        counters(
            &mut enc,
            "ppm_stream_connections",
            "TCP connections accepted and UDP sessions created",
            streams.iter().map(|(l, s)| (l, s.connections)),
        )?;
        gauges(
            &mut enc,
            "ppm_stream_active_connections",
            "TCP connections and UDP sessions open",
            streams.iter().map(|(l, s)| (l, s.active)),
        )?;
        counters(
            &mut enc,
            "ppm_stream_received_bytes",
            "Bytes from clients relayed to upstreams",
            streams.iter().map(|(l, s)| (l, s.bytes_in)),
        )?;
        counters(
            &mut enc,
            "ppm_stream_sent_bytes",
            "Bytes from upstreams relayed to clients",
            streams.iter().map(|(l, s)| (l, s.bytes_out)),
        )?;
        counters(
            &mut enc,
            "ppm_stream_errors",
            "Stream connections that ended in an error",
            streams.iter().map(|(l, s)| (l, s.errors)),
        )?;
        counters(
            &mut enc,
            "ppm_stream_upstream_connect_failures",
            "Failed connects from a stream to its upstreams",
            streams
                .iter()
                .map(|(l, s)| (l, s.upstream_connect_failures)),
        )?;
        counters(
            &mut enc,
            "ppm_stream_denied",
            "Stream connections refused by the access list",
            streams.iter().map(|(l, s)| (l, s.denied)),
        )?;

        // Certificates.
        let cfg = engine.current();
        let now = now_secs();
        let certs: Vec<(Labels, f64)> = cfg
            .certificates()
            .iter()
            .map(|c| {
                let name = cfg
                    .source()
                    .certificates
                    .iter()
                    .find(|x| x.id == c.id())
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                (
                    vec![("certificate_id", c.id().to_string()), ("name", name)],
                    (c.not_after() - now) as f64 / 86_400.0,
                )
            })
            .collect();
        gauges(
            &mut enc,
            "ppm_certificate_expiry_days",
            "Days until the certificate expires (negative: expired)",
            certs.iter().map(|(l, d)| (l, *d)),
        )?;

        // Access log.
        if let Some(log) = stats.access_log() {
            let w = self.log.as_ref();
            let rows: Vec<(Labels, u64)> = vec![
                (
                    vec![("result", "written".to_string())],
                    w.map_or(0, |w| w.written.load(std::sync::atomic::Ordering::Relaxed)),
                ),
                (vec![("result", "dropped".to_string())], log.dropped()),
                (
                    vec![("result", "failed".to_string())],
                    w.map_or(0, |w| w.failed.load(std::sync::atomic::Ordering::Relaxed)),
                ),
            ];
            counters(
                &mut enc,
                "ppm_access_log_records",
                "Access log records: written, dropped (the buffer was full) or failed (I/O)",
                rows.iter().map(|(l, v)| (l, *v)),
            )?;
        }
        Ok(())
    }
}
