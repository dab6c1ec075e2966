//! Rate limits: requests per window and requests in flight, per key.
//!
//! [`RateLimit`] counts requests by a key (the client IP, a header or a
//! cookie; requests without the header or cookie count by client IP) and
//! answers `429 Too Many Requests` with `Retry-After` when a key goes over
//! `requests` in the current window of `window_secs`, or has more than
//! `max_in_flight` requests being served at once.
//!
//! Memory is bounded whatever the number of keys: counts live in fixed-size
//! count-min sketches (4 rows of [`SKETCH_WIDTH`] counters, 64 KiB per
//! filter for windows and as much again for in-flight counts), hashed with
//! random per-filter keys. A sketch may over-count, never under-count: under
//! a flood of distinct keys, a client can be limited early, but a limit is
//! never missed.
//!
//! Windows are fixed (aligned to the filter's creation), so a client gets
//! `requests` per window and learns from `Retry-After` when the next window
//! starts. Counters belong to the filter instance: a global filter counts
//! across every host, a host filter across the host and those of its
//! locations without their own, and a config reload starts them afresh.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pingora_limits::estimator::Estimator;
use ppm_core::config::HashKey;
use ppm_core::filter::{
    kinds, priority, Filter, FilterAction, FilterRegistry, FilterResponse, Phases, RequestCtx,
};
use ppm_core::http::{header, HeaderValue, RequestHeader};
use serde::Deserialize;

use crate::util::cookie;

/// Counters per sketch row.
pub const SKETCH_WIDTH: usize = 2048;
const SKETCH_ROWS: usize = 4;

/// Longest window, in seconds (a day).
pub const MAX_WINDOW_SECS: u64 = 86_400;

fn one() -> u64 {
    1
}

/// Config of the `rate_limit` kind.
///
/// ```json
/// {"key": {"source": "header", "name": "X-Api-Key"},
///  "requests": 100, "window_secs": 60, "max_in_flight": 10}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// What requests are counted by: `{"source": "client_ip"}` (the
    /// default), `{"source": "header", "name": ...}` or
    /// `{"source": "cookie", "name": ...}`.
    #[serde(default)]
    pub key: HashKey,
    /// Requests allowed per key and window; `None` for no rate limit.
    #[serde(default)]
    pub requests: Option<u64>,
    /// The window, in seconds (1 to 86400, default 1).
    #[serde(default = "one")]
    pub window_secs: u64,
    /// Requests of one key served at once; `None` for no limit.
    #[serde(default)]
    pub max_in_flight: Option<u64>,
}

impl RateLimitConfig {
    /// `requests` per `window_secs` by client IP.
    pub fn per_ip(requests: u64, window_secs: u64) -> Self {
        RateLimitConfig {
            key: HashKey::ClientIp,
            requests: Some(requests),
            window_secs,
            max_in_flight: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: HashKey) -> Self {
        self.key = key;
        self
    }

    /// Sets the in-flight limit.
    #[must_use]
    pub fn max_in_flight(mut self, max: u64) -> Self {
        self.max_in_flight = Some(max);
        self
    }
}

/// A count-min sketch of per-window counts: each cell packs the window
/// number (high 32 bits) and its count (low 32 bits), so a cell from an
/// older window counts as zero without any reset pass.
struct WindowSketch {
    cells: Box<[AtomicU64]>,
}

impl WindowSketch {
    fn new() -> Self {
        WindowSketch {
            cells: (0..SKETCH_ROWS * SKETCH_WIDTH)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn bump(cell: &AtomicU64, window: u32) -> u32 {
        let mut cur = cell.load(Ordering::Relaxed);
        loop {
            let count = if (cur >> 32) as u32 == window {
                (cur as u32).saturating_add(1)
            } else {
                1
            };
            let new = (u64::from(window) << 32) | u64::from(count);
            match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return count,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Counts one request of `hash` in `window`; returns the estimated count.
    fn observe(&self, hash: u64, window: u32) -> u32 {
        let h1 = hash as u32 as usize;
        let h2 = (hash >> 32) as usize | 1;
        let mut min = u32::MAX;
        for row in 0..SKETCH_ROWS {
            let idx = h1.wrapping_add(row.wrapping_mul(h2)) % SKETCH_WIDTH;
            let c = Self::bump(&self.cells[row * SKETCH_WIDTH + idx], window);
            min = min.min(c);
        }
        min
    }
}

/// Releases an in-flight count when the request is done (dropped with the
/// request context at the latest).
struct InFlightGuard {
    estimator: Arc<Estimator>,
    key: u64,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.estimator.decr(self.key, 1);
    }
}

#[derive(Default)]
struct InFlightGuards(Vec<InFlightGuard>);

/// Limits requests per window and in flight. See the [module docs](self).
pub struct RateLimit {
    key: HashKey,
    requests: Option<u32>,
    window_ms: u64,
    max_in_flight: Option<isize>,
    windows: WindowSketch,
    in_flight: Arc<Estimator>,
    hasher: RandomState,
    start: Instant,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("key", &self.key)
            .field("requests", &self.requests)
            .field("window_ms", &self.window_ms)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl RateLimit {
    /// Checks `config` and builds the filter.
    pub fn new(config: RateLimitConfig) -> Result<Self, String> {
        if config.requests.is_none() && config.max_in_flight.is_none() {
            return Err("set requests, max_in_flight or both".into());
        }
        if !(1..=MAX_WINDOW_SECS).contains(&config.window_secs) {
            return Err(format!("window_secs must be 1 to {MAX_WINDOW_SECS}"));
        }
        let requests = match config.requests {
            Some(0) => return Err("requests must be at least 1".into()),
            Some(n) => Some(u32::try_from(n).map_err(|_| "requests is too large".to_string())?),
            None => None,
        };
        let max_in_flight = match config.max_in_flight {
            Some(0) => return Err("max_in_flight must be at least 1".into()),
            Some(n) => Some(
                isize::try_from(n)
                    .ok()
                    .filter(|n| *n < 1 << 30)
                    .ok_or_else(|| "max_in_flight is too large".to_string())?,
            ),
            None => None,
        };
        match &config.key {
            HashKey::Header(n) => {
                ppm_core::validate::header_name(n).map_err(|m| format!("key.name: {m}"))?
            }
            HashKey::Cookie(n) if n.is_empty() || n.contains([';', '=', ' ']) => {
                return Err("key.name: not a valid cookie name".into())
            }
            _ => {}
        }
        Ok(RateLimit {
            key: config.key,
            requests,
            window_ms: config.window_secs * 1000,
            max_in_flight,
            windows: WindowSketch::new(),
            in_flight: Arc::new(Estimator::new(SKETCH_ROWS, SKETCH_WIDTH)),
            hasher: RandomState::new(),
            start: Instant::now(),
        })
    }

    fn hash_ip(&self, h: &mut impl Hasher, ip: Option<IpAddr>) {
        h.write_u8(0);
        match ip {
            Some(IpAddr::V4(v4)) => h.write(&v4.octets()),
            Some(IpAddr::V6(v6)) => h.write(&v6.octets()),
            None => {}
        }
    }

    /// The counting key of a request.
    fn key_of(&self, req: &RequestHeader, ctx: &RequestCtx) -> u64 {
        let mut h = self.hasher.build_hasher();
        let value = match &self.key {
            HashKey::Header(name) => req.headers.get(name.as_str()).map(|v| v.as_bytes()),
            HashKey::Cookie(name) => cookie(req, name).map(str::as_bytes),
            _ => None,
        };
        match value {
            Some(v) => {
                h.write_u8(1);
                h.write(v);
            }
            None => self.hash_ip(&mut h, ctx.client_ip),
        }
        h.finish()
    }

    fn too_many(retry_after: u64) -> FilterAction {
        FilterAction::Respond(
            FilterResponse::text(429, "too many requests\n")
                .header(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1))),
        )
    }
}

#[ppm_core::async_trait]
impl Filter for RateLimit {
    fn name(&self) -> &str {
        kinds::RATE_LIMIT
    }

    fn phases(&self) -> Phases {
        if self.max_in_flight.is_some() {
            Phases::REQUEST | Phases::LOGGING
        } else {
            Phases::REQUEST
        }
    }

    async fn request_filter(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        let key = self.key_of(req, ctx);
        if let Some(limit) = self.requests {
            let elapsed = self.start.elapsed().as_millis() as u64;
            let window = (elapsed / self.window_ms) as u32;
            if self.windows.observe(key, window) > limit {
                let left_ms = self.window_ms - elapsed % self.window_ms;
                return Ok(Self::too_many(left_ms.div_ceil(1000)));
            }
        }
        if let Some(max) = self.max_in_flight {
            let n = self.in_flight.incr(key, 1);
            let guard = InFlightGuard {
                estimator: self.in_flight.clone(),
                key,
            };
            if n > max {
                drop(guard);
                return Ok(Self::too_many(1));
            }
            match ctx.extensions.get_mut::<InFlightGuards>() {
                Some(g) => g.0.push(guard),
                None => {
                    ctx.extensions.insert(InFlightGuards(vec![guard]));
                }
            }
        }
        Ok(FilterAction::Continue)
    }

    fn logging(&self, _status: u16, ctx: &mut RequestCtx) {
        // Releases every in-flight count of the request (dropping the
        // context would too; this releases them as soon as it is done).
        ctx.extensions.remove::<InFlightGuards>();
    }
}

pub(crate) fn register(registry: &mut FilterRegistry) {
    registry.register_fn(
        kinds::RATE_LIMIT,
        priority::RATE_LIMIT,
        |cfg: RateLimitConfig, _| Ok(Arc::new(RateLimit::new(cfg)?) as Arc<dyn Filter>),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    async fn status(f: &RateLimit, r: &RequestHeader, ctx: &mut RequestCtx) -> u16 {
        match f.request_filter(r, ctx).await.unwrap() {
            FilterAction::Respond(resp) => resp.status.as_u16(),
            _ => 200,
        }
    }

    fn ctx(ip: &str) -> RequestCtx {
        RequestCtx::new(Some(ip.parse().unwrap()))
    }

    #[tokio::test]
    async fn limits_per_window_by_ip() {
        let f = RateLimit::new(RateLimitConfig::per_ip(3, 60)).unwrap();
        let r = req(&[]);
        for _ in 0..3 {
            assert_eq!(status(&f, &r, &mut ctx("192.0.2.1")).await, 200);
        }
        let FilterAction::Respond(resp) =
            f.request_filter(&r, &mut ctx("192.0.2.1")).await.unwrap()
        else {
            panic!("expected 429");
        };
        assert_eq!(resp.status, 429);
        let retry: u64 = resp
            .headers
            .iter()
            .find(|(n, _)| n == header::RETRY_AFTER)
            .unwrap()
            .1
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // Another client is not affected.
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.2")).await, 200);
    }

    #[tokio::test]
    async fn recovers_after_the_window() {
        let f = RateLimit::new(RateLimitConfig::per_ip(1, 1)).unwrap();
        let r = req(&[]);
        // Start at the beginning of a window so both requests share it.
        let into = f.start.elapsed().as_millis() as u64 % 1000;
        if into > 700 {
            tokio::time::sleep(std::time::Duration::from_millis(1000 - into + 10)).await;
        }
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.1")).await, 200);
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.1")).await, 429);
        tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.1")).await, 200);
    }

    #[tokio::test]
    async fn keys_by_header_and_cookie_with_ip_fallback() {
        let f =
            RateLimit::new(RateLimitConfig::per_ip(1, 60).key(HashKey::Header("X-Api-Key".into())))
                .unwrap();
        let a = req(&[("x-api-key", "a")]);
        let b = req(&[("x-api-key", "b")]);
        let none = req(&[]);
        assert_eq!(status(&f, &a, &mut ctx("192.0.2.1")).await, 200);
        assert_eq!(status(&f, &a, &mut ctx("192.0.2.2")).await, 429);
        assert_eq!(status(&f, &b, &mut ctx("192.0.2.1")).await, 200);
        assert_eq!(status(&f, &none, &mut ctx("192.0.2.1")).await, 200);
        assert_eq!(status(&f, &none, &mut ctx("192.0.2.1")).await, 429);

        let f = RateLimit::new(RateLimitConfig::per_ip(1, 60).key(HashKey::Cookie("sid".into())))
            .unwrap();
        let s1 = req(&[("cookie", "theme=dark; sid=one")]);
        let s2 = req(&[("cookie", "sid=two")]);
        assert_eq!(status(&f, &s1, &mut ctx("192.0.2.1")).await, 200);
        assert_eq!(status(&f, &s1, &mut ctx("192.0.2.1")).await, 429);
        assert_eq!(status(&f, &s2, &mut ctx("192.0.2.1")).await, 200);
    }

    #[tokio::test]
    async fn in_flight_is_released_by_logging_or_drop() {
        let f = RateLimit::new(RateLimitConfig {
            key: HashKey::ClientIp,
            requests: None,
            window_secs: 1,
            max_in_flight: Some(2),
        })
        .unwrap();
        assert_eq!(f.phases(), Phases::REQUEST | Phases::LOGGING);
        let r = req(&[]);
        let mut c1 = ctx("192.0.2.1");
        let mut c2 = ctx("192.0.2.1");
        assert_eq!(status(&f, &r, &mut c1).await, 200);
        assert_eq!(status(&f, &r, &mut c2).await, 200);
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.1")).await, 429);
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.9")).await, 200);
        f.logging(200, &mut c1);
        let mut c3 = ctx("192.0.2.1");
        assert_eq!(status(&f, &r, &mut c3).await, 200);
        drop(c2);
        drop(c3);
        assert_eq!(status(&f, &r, &mut ctx("192.0.2.1")).await, 200);
    }

    #[test]
    fn config_checks() {
        let bad = [
            serde_json::json!({}),
            serde_json::json!({"requests": 0}),
            serde_json::json!({"requests": 5, "window_secs": 0}),
            serde_json::json!({"requests": 5, "window_secs": 100000}),
            serde_json::json!({"max_in_flight": 0}),
            serde_json::json!({"requests": 5, "key": {"source": "header", "name": "bad name"}}),
            serde_json::json!({"requests": 5, "key": {"source": "cookie", "name": "a;b"}}),
        ];
        for v in bad {
            let c: RateLimitConfig = serde_json::from_value(v.clone()).unwrap();
            assert!(RateLimit::new(c).is_err(), "{v}");
        }
        assert!(
            serde_json::from_value::<RateLimitConfig>(serde_json::json!({"request": 5})).is_err()
        );
        let c: RateLimitConfig = serde_json::from_value(
            serde_json::json!({"requests": 5, "key": {"source": "client_ip"}}),
        )
        .unwrap();
        assert_eq!(c, RateLimitConfig::per_ip(5, 1));
    }

    #[test]
    fn sketch_memory_is_bounded() {
        let s = WindowSketch::new();
        for k in 0..100_000u64 {
            s.observe(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1);
        }
        assert_eq!(s.cells.len(), SKETCH_ROWS * SKETCH_WIDTH);
        // A new window starts every counter afresh.
        assert_eq!(s.observe(42, 2), 1);
    }
}
