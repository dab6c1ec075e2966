//! The access and error logs: a writer thread fed by the engine's bounded
//! channel, size-based rotation, and a reader that scans from the end of
//! the files for the log viewer API.
//!
//! `access.log` gets one line per request (JSON or common log format);
//! `error.log` beside it gets the failed ones (no response, 5xx, or a proxy
//! error), always as JSON. A file larger than the size limit is renamed to
//! `.1` (older ones shift to `.2`...; the oldest beyond the kept count is
//! deleted) and a new one started.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ppm_core::stats::AccessRecord;
use serde::Serialize;

use crate::settings::AccessLogFormat;

/// Where and how the logs are written.
#[derive(Debug, Clone)]
pub struct LogFiles {
    /// The access log.
    pub access: PathBuf,
    /// The error log.
    pub errors: PathBuf,
    /// Access log format.
    pub format: AccessLogFormat,
    /// Rotate a file past this many bytes.
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: u32,
}

impl LogFiles {
    /// The logs at `access` (the error log beside it).
    pub fn new(access: PathBuf, format: AccessLogFormat, max_size: u64, keep: u32) -> Self {
        let errors = access.with_file_name("error.log");
        LogFiles {
            access,
            errors,
            format,
            max_size,
            keep,
        }
    }
}

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Lines written to the access log.
    pub written: AtomicU64,
    /// Lines that could not be written (I/O errors).
    pub failed: AtomicU64,
}

struct RotatingFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    size: u64,
    max: u64,
    keep: u32,
}

impl RotatingFile {
    fn open(path: PathBuf, max: u64, keep: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = f.metadata()?.len();
        Ok(RotatingFile {
            path,
            out: Some(BufWriter::with_capacity(64 << 10, f)),
            size,
            max,
            keep,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.max {
            self.rotate()?;
        }
        let out = match &mut self.out {
            Some(o) => o,
            None => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.size = f.metadata()?.len();
                self.out.insert(BufWriter::with_capacity(64 << 10, f))
            }
        };
        out.write_all(line)?;
        out.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut o) = self.out.take() {
            o.flush()?;
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, self.keep));
            for i in (1..self.keep).rev() {
                let from = rotated(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = Some(BufWriter::with_capacity(64 << 10, f));
        self.size = 0;
        Ok(())
    }
}

/// `path.N`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Starts the writer thread. It ends when every sender is gone, after
/// writing what was queued.
pub fn spawn_writer(
    files: LogFiles,
    mut rx: tokio::sync::mpsc::Receiver<AccessRecord>,
) -> std::io::Result<Arc<WriterStats>> {
    let mut access = RotatingFile::open(files.access.clone(), files.max_size, files.keep)?;
    let mut errors = RotatingFile::open(files.errors.clone(), files.max_size, files.keep)?;
    let stats = Arc::new(WriterStats::default());
    let st = stats.clone();
    let format = files.format;
    std::thread::Builder::new()
        .name("ppm-access-log".into())
        .spawn(move || {
            let mut line = String::with_capacity(512);
            while let Some(first) = rx.blocking_recv() {
                let mut next = Some(first);
                // Write what is queued, then flush once: lines reach the file
                // within one batch of the request, without a flush per line.
                while let Some(r) = next.take() {
                    line.clear();
                    let entry = LogEntry::from(&r);
                    match format {
                        AccessLogFormat::Json => json_line(&entry, &mut line),
                        AccessLogFormat::Common => common_line(&entry, &mut line),
                    }
                    match access.write_line(line.as_bytes()) {
                        Ok(()) => st.written.fetch_add(1, Ordering::Relaxed),
                        Err(_) => st.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    if entry.is_error() {
                        line.clear();
                        json_line(&entry, &mut line);
                        if errors.write_line(line.as_bytes()).is_err() {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    next = rx.try_recv().ok();
                }
                if access.flush().is_err() || errors.flush().is_err() {
                    st.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = access.flush();
            let _ = errors.flush();
        })?;
    Ok(stats)
}

/// One log line, as the log viewer API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct LogEntry {
    /// When the response ended, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The client's IP.
    pub client_ip: Option<String>,
    /// The request host.
    pub host: String,
    /// The routed host's kind (`proxy`, `redirection`, `dead`, `default`),
    /// absent before routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The routed host's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<i64>,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Status; 0 when no response was sent.
    pub status: u16,
    /// Request body bytes read.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Request duration, milliseconds.
    pub duration_ms: f64,
    /// Upstream time (to its response header), milliseconds.
    #[serde(default)]
    pub upstream_ms: Option<f64>,
    /// The upstream address.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The filter that answered, if one did.
    #[serde(default)]
    pub filter: Option<String>,
    /// Why the request failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
}

impl LogEntry {
    /// Whether the error log gets this entry too.
    pub fn is_error(&self) -> bool {
        self.status == 0 || self.status >= 500 || self.error.is_some()
    }

    fn unix_secs(&self) -> Option<i64> {
        parse_rfc3339(&self.time)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

impl From<&AccessRecord> for LogEntry {
    fn from(r: &AccessRecord) -> Self {
        LogEntry {
            time: rfc3339(r.time),
            client_ip: r.client_ip.map(|i| i.to_string()),
            host: r.host.clone(),
            kind: r.route.map(|k| k.kind.to_string()),
            host_id: r.route.map(|k| k.id),
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            duration_ms: ms(r.duration),
            upstream_ms: r.upstream_time.map(ms),
            upstream: r.upstream.map(|u| u.to_string()),
            filter: r.filter.clone(),
            error: r.error.clone(),
        }
    }
}

fn json_line(e: &LogEntry, out: &mut String) {
    if let Ok(s) = serde_json::to_string(e) {
        out.push_str(&s);
    }
}

/// `client - - [time] "METHOD path" status bytes` then `key=value` pairs,
/// values quoted when they hold spaces or quotes.
fn common_line(e: &LogEntry, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{} - - [{}] \"{} {}\" {} {}",
        e.client_ip.as_deref().unwrap_or("-"),
        e.time,
        e.method,
        escape(&e.path),
        e.status,
        e.bytes_out
    );
    let _ = write!(
        out,
        " host={} bytes_in={} duration_ms={}",
        quote(&e.host),
        e.bytes_in,
        e.duration_ms
    );
    if let Some(k) = &e.kind {
        let _ = write!(out, " kind={k}");
    }
    if let Some(i) = e.host_id {
        let _ = write!(out, " host_id={i}");
    }
    if let Some(v) = e.upstream_ms {
        let _ = write!(out, " upstream_ms={v}");
    }
    if let Some(v) = &e.upstream {
        let _ = write!(out, " upstream={}", quote(v));
    }
    if let Some(v) = &e.filter {
        let _ = write!(out, " filter={}", quote(v));
    }
    if let Some(v) = &e.error {
        let _ = write!(out, " error={}", quote(v));
    }
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec!['?'],
            c => vec![c],
        })
        .collect()
}

fn quote(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '"', '\\']) && !s.chars().any(char::is_control) {
        s.to_string()
    } else {
        format!("\"{}\"", escape(s))
    }
}

/// Parses a line in either format.
pub fn parse_line(line: &str) -> Option<LogEntry> {
    if line.starts_with('{') {
        return serde_json::from_str(line).ok();
    }
    parse_common(line)
}

fn parse_common(line: &str) -> Option<LogEntry> {
    let (ip, rest) = line.split_once(" - - [")?;
    let (time, rest) = rest.split_once("] \"")?;
    let (method, rest) = rest.split_once(' ')?;
    // The path ends at the first unescaped quote.
    let mut path = String::new();
    let mut chars = rest.char_indices();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    path.push(n);
                }
            }
            '"' => {
                end = Some(i);
                break;
            }
            c => path.push(c),
        }
    }
    let rest = rest.get(end? + 1..)?.trim_start();
    let mut words = rest.splitn(3, ' ');
    let status = words.next()?.parse().ok()?;
    let bytes_out = words.next()?.parse().ok()?;
    let mut e = LogEntry {
        time: time.to_string(),
        client_ip: (ip != "-").then(|| ip.to_string()),
        host: String::new(),
        kind: None,
        host_id: None,
        method: method.to_string(),
        path,
        status,
        bytes_in: 0,
        bytes_out,
        duration_ms: 0.0,
        upstream_ms: None,
        upstream: None,
        filter: None,
        error: None,
    };
    for (k, v) in pairs(words.next().unwrap_or("")) {
        match k.as_str() {
            "host" => e.host = v,
            "kind" => e.kind = Some(v),
            "host_id" => e.host_id = v.parse().ok(),
            "bytes_in" => e.bytes_in = v.parse().unwrap_or(0),
            "duration_ms" => e.duration_ms = v.parse().unwrap_or(0.0),
            "upstream_ms" => e.upstream_ms = v.parse().ok(),
            "upstream" => e.upstream = Some(v),
            "filter" => e.filter = Some(v),
            "error" => e.error = Some(v),
            _ => {}
        }
    }
    Some(e)
}

fn pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek() == Some(&' ') {
            it.next();
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            it.next();
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if key.is_empty() {
            return out;
        }
        let mut val = String::new();
        if it.peek() == Some(&'"') {
            it.next();
            while let Some(c) = it.next() {
                match c {
                    '\\' => {
                        if let Some(n) = it.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c == ' ' {
                    break;
                }
                val.push(c);
                it.next();
            }
        }
        out.push((key, val));
    }
}

/// Filters of the log viewer.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Exact host (case-insensitive).
    pub host: Option<String>,
    /// `404` (exact), `4` or `4xx` (class), `0` (no response).
    pub status: Option<String>,
    /// Text anywhere in the line (case-insensitive).
    pub q: Option<String>,
    /// Only entries at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Most entries returned.
    pub limit: usize,
}

impl LogQuery {
    fn status_matches(&self, status: u16) -> bool {
        let Some(s) = self.status.as_deref() else {
            return true;
        };
        let s = s.trim().trim_end_matches(['x', 'X']);
        if s.len() == 3 {
            return s.parse::<u16>().is_ok_and(|v| v == status);
        }
        if s == "0" {
            return status == 0;
        }
        s.parse::<u16>()
            .is_ok_and(|class| status != 0 && status / 100 == class)
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Matching entries, newest first.
    pub entries: Vec<LogEntry>,
    /// Whether the scan stopped at its byte budget before the files ended.
    pub truncated: bool,
}

/// Most bytes one query reads, over the current and rotated files.
pub const SCAN_BUDGET: u64 = 64 << 20;
const CHUNK: usize = 64 << 10;

/// Reads `path` and its rotated files backwards, newest line first, until
/// `query.limit` entries match, a line is older than `query.since`, or
/// [`SCAN_BUDGET`] bytes were read. Memory stays at one chunk plus the
/// entries found.
pub fn scan(path: &Path, keep: u32, query: &LogQuery) -> std::io::Result<ScanResult> {
    let mut result = ScanResult::default();
    let mut budget = SCAN_BUDGET;
    let needle = query.q.as_deref().map(str::to_ascii_lowercase);
    let host = query.host.as_deref().map(str::to_ascii_lowercase);
    for n in 0..=keep {
        let p = if n == 0 {
            path.to_path_buf()
        } else {
            rotated(path, n)
        };
        let Ok(mut f) = File::open(&p) else {
            if n == 0 {
                continue;
            }
            break;
        };
        let mut done = false;
        let mut visit = |line: &str| -> bool {
            if line.trim().is_empty() {
                return true;
            }
            if let Some(q) = &needle {
                if !line.to_ascii_lowercase().contains(q.as_str()) {
                    return true;
                }
            }
            let Some(e) = parse_line(line) else {
                return true;
            };
            if let Some(since) = query.since {
                if e.unix_secs().is_some_and(|t| t < since) {
                    done = true;
                    return false;
                }
            }
            if host.as_deref().is_some_and(|h| e.host != h) || !query.status_matches(e.status) {
                return true;
            }
            result.entries.push(e);
            if result.entries.len() >= query.limit {
                done = true;
                return false;
            }
            true
        };
        let read = backwards(&mut f, budget, &mut visit)?;
        budget = budget.saturating_sub(read.0);
        if done {
            return Ok(result);
        }
        if read.1 {
            result.truncated = true;
            return Ok(result);
        }
    }
    Ok(result)
}

/// Calls `visit` on each line of `f` from the last; stops when it returns
/// false or after `budget` bytes. Returns the bytes read and whether the
/// budget ran out first.
fn backwards(
    f: &mut File,
    budget: u64,
    visit: &mut dyn FnMut(&str) -> bool,
) -> std::io::Result<(u64, bool)> {
    let mut pos = f.metadata()?.len();
    let mut read_total = 0u64;
    // Bytes of a line cut by the chunk boundary, waiting for its start.
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    while pos > 0 {
        if read_total >= budget {
            return Ok((read_total, true));
        }
        let n = (CHUNK as u64).min(pos) as usize;
        pos -= n as u64;
        f.seek(SeekFrom::Start(pos))?;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        f.read_exact(chunk)?;
        read_total += n as u64;
        let mut joined = Vec::with_capacity(n + carry.len());
        joined.extend_from_slice(chunk);
        joined.extend_from_slice(&carry);
        carry.clear();
        let mut end = joined.len();
        while let Some(i) = joined
            .get(..end)
            .and_then(|s| s.iter().rposition(|&b| b == b'\n'))
        {
            let line = joined.get(i + 1..end).unwrap_or_default();
            if !line.is_empty() && !visit(&String::from_utf8_lossy(line)) {
                return Ok((read_total, false));
            }
            end = i;
        }
        carry.extend_from_slice(joined.get(..end).unwrap_or_default());
        // A single line longer than the budget is not a log line.
        if carry.len() as u64 > (1 << 20) {
            carry.clear();
        }
    }
    if !carry.is_empty() && !visit(&String::from_utf8_lossy(&carry)) {
        return Ok((read_total, false));
    }
    Ok((read_total, false))
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Unix seconds of an RFC 3339 UTC time as [`rfc3339`] writes it.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(i: u32, status: u16) -> LogEntry {
        LogEntry {
            time: rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + u64::from(i))),
            client_ip: Some("10.0.0.1".into()),
            host: if i.is_multiple_of(2) {
                "a.test"
            } else {
                "b.test"
            }
            .into(),
            kind: Some("proxy".into()),
            host_id: Some(1),
            method: "GET".into(),
            path: format!("/p/{i}?x=\"y z\""),
            status,
            bytes_in: 0,
            bytes_out: u64::from(i),
            duration_ms: 1.5,
            upstream_ms: Some(1.0),
            upstream: Some("127.0.0.1:9".into()),
            filter: None,
            error: (status == 502).then(|| "upstream refused".to_string()),
        }
    }

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_123_456);
        let s = rfc3339(t);
        assert_eq!(s, "2023-11-14T22:15:23.456Z");
        assert_eq!(parse_rfc3339(&s), Some(1_700_000_123));
    }

    #[test]
    fn common_lines_parse_back() {
        let e = entry(3, 502);
        let mut line = String::new();
        common_line(&e, &mut line);
        let p = parse_line(&line).unwrap();
        assert_eq!(p, e);
    }

    #[test]
    fn scans_from_the_end_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut f = RotatingFile::open(path.clone(), 4096, 3).unwrap();
        for i in 0..200 {
            let mut line = String::new();
            json_line(
                &entry(i, if i.is_multiple_of(10) { 502 } else { 200 }),
                &mut line,
            );
            f.write_line(line.as_bytes()).unwrap();
        }
        f.flush().unwrap();
        assert!(rotated(&path, 1).exists());
        assert!(!rotated(&path, 4).exists());
        let all = |q: LogQuery| scan(&path, 3, &q).unwrap().entries;
        let last = all(LogQuery {
            limit: 3,
            ..LogQuery::default()
        });
        let ids: Vec<u64> = last.iter().map(|e| e.bytes_out).collect();
        assert_eq!(ids, vec![199, 198, 197]);
        let errors = all(LogQuery {
            status: Some("5xx".into()),
            host: Some("A.test".into()),
            limit: 2,
            ..LogQuery::default()
        });
        let ids: Vec<u64> = errors.iter().map(|e| e.bytes_out).collect();
        assert_eq!(ids, vec![190, 180]);
        let since = all(LogQuery {
            since: Some(1_700_000_195),
            limit: 100,
            ..LogQuery::default()
        });
        assert_eq!(since.len(), 5);
        let q = all(LogQuery {
            q: Some("/P/195?".into()),
            limit: 100,
            ..LogQuery::default()
        });
        assert_eq!(q.len(), 1);
    }
}
