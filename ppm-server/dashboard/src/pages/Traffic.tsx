// Traffic on the overview (from /api/stats/summary) and the access-log
// viewer (/api/logs/access, /api/logs/errors). Shown only by servers whose
// API has them (see `useFeatures`).
import { useRef, useState } from "react";
import { api } from "../api";
import { LineChart, type Series } from "../chart";
import { Link } from "../router";
import { Badge, ErrorBanner, PageHead, Spinner, formatBytes, useInterval, useLoad } from "../ui";

export interface StatsPoint {
  requests: number;
  no_response: number;
  status_5xx: number;
  bytes_out: number;
  [k: string]: number;
}

export interface Summary {
  totals: StatsPoint;
  since_start: StatsPoint;
  active_requests: number;
  rates: { window_seconds: number; requests_per_second: number; errors_per_second: number; bytes_in_per_second: number; bytes_out_per_second: number; mean_latency_ms: number };
  uptime_seconds: number;
  top_hosts_by_requests: { kind: string; id: number; name: string; requests: number; errors: number; bytes_out: number }[];
  top_hosts_by_errors: { kind: string; id: number; name: string; requests: number; errors: number; bytes_out: number }[];
  access_log: { enabled: boolean; written: number; dropped: number };
}

interface Sample {
  t: number;
  requests: number;
  errors: number;
  bytes: number;
}

/** Per-second rates between consecutive samples of the since-start counters. */
export function ratesFrom(samples: Sample[]): { req: [number, number][]; err: [number, number][]; bytes: [number, number][] } {
  const req: [number, number][] = [];
  const err: [number, number][] = [];
  const bytes: [number, number][] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    // A restart resets the counters: no negative rates.
    req.push([b.t, Math.max(0, b.requests - a.requests) / dt]);
    err.push([b.t, Math.max(0, b.errors - a.errors) / dt]);
    bytes.push([b.t, Math.max(0, b.bytes - a.bytes) / dt]);
  }
  return { req, err, bytes };
}

const MAX_SAMPLES = 90;

export function Traffic({ interval = 2000 }: { interval?: number }) {
  const [summary, setSummary] = useState<Summary | null>(null);
  const [error, setError] = useState<unknown>(null);
  const samples = useRef<Sample[]>([]);
  const poll = async () => {
    try {
      const s = await api.get<Summary>("/api/stats/summary", { top: 5 });
      const p = s.since_start;
      samples.current = [...samples.current, { t: Date.now(), requests: p.requests, errors: p.status_5xx + p.no_response, bytes: p.bytes_out }].slice(-MAX_SAMPLES);
      setSummary(s);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useInterval(poll, interval);
  const first = useLoad(poll, []);
  void first;
  const r = ratesFrom(samples.current);
  const series: Series[] = [
    { name: "requests/s", color: "#2563eb", points: r.req },
    { name: "errors/s", color: "#dc2626", points: r.err },
  ];
  return (
    <section className="card traffic">
      <h2>Traffic</h2>
      <ErrorBanner error={error} />
      {!summary ? (
        <Spinner />
      ) : (
        <>
          <div className="stat-row">
            <Stat label="Requests/s" value={fmt(summary.rates.requests_per_second)} />
            <Stat label="Errors/s" value={fmt(summary.rates.errors_per_second)} bad={summary.rates.errors_per_second > 0} />
            <Stat label="Bandwidth out" value={`${formatBytes(summary.rates.bytes_out_per_second)}/s`} />
            <Stat label="Mean latency" value={`${fmt(summary.rates.mean_latency_ms)} ms`} />
            <Stat label="In flight" value={String(summary.active_requests)} />
            <Stat label="Requests (all time)" value={summary.totals.requests.toLocaleString()} />
          </div>
          <LineChart label="Requests and errors per second, live" series={series} />
          <div className="grid2">
            <div>
              <h3>Top hosts</h3>
              <TopList hosts={summary.top_hosts_by_requests} />
            </div>
            <div>
              <h3>Most errors</h3>
              {summary.top_hosts_by_errors.length ? <TopList hosts={summary.top_hosts_by_errors} /> : <p className="muted">No failed requests.</p>}
            </div>
          </div>
        </>
      )}
    </section>
  );
}

function fmt(n: number): string {
  return n >= 100 ? String(Math.round(n)) : n.toFixed(n >= 10 ? 1 : 2);
}

function Stat({ label, value, bad }: { label: string; value: string; bad?: boolean }) {
  return (
    <div className="stat">
      <div className={"stat-value" + (bad ? " bad" : "")}>{value}</div>
      <div className="stat-label">{label}</div>
    </div>
  );
}

function TopList({ hosts }: { hosts: Summary["top_hosts_by_requests"] }) {
  if (!hosts.length) return <p className="muted">No traffic yet.</p>;
  return (
    <table className="list compact">
      <tbody>
        {hosts.map((h) => (
          <tr key={`${h.kind}-${h.id}`}>
            <td data-label="Host">{h.kind === "proxy" && h.id ? <Link href={`/proxy-hosts/${h.id}`}>{h.name}</Link> : h.name || "(default site)"}</td>
            <td data-label="Requests">{h.requests.toLocaleString()}</td>
            <td data-label="Errors">{h.errors ? <Badge kind="bad">{h.errors}</Badge> : 0}</td>
            <td data-label="Sent">{formatBytes(h.bytes_out)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface LogEntry {
  time: string;
  client_ip: string | null;
  host: string;
  method: string;
  path: string;
  status: number;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  upstream_ms?: number | null;
  upstream?: string | null;
  filter?: string | null;
  error?: string | null;
}

export function AccessLog() {
  const [kind, setKind] = useState<"access" | "errors">("access");
  const [host, setHost] = useState("");
  const [status, setStatus] = useState("");
  const [q, setQ] = useState("");
  const [live, setLive] = useState(true);
  const [query, setQuery] = useState({ host: "", status: "", q: "" });
  const logs = useLoad(
    () =>
      api.get<{ entries: LogEntry[] }>(`/api/logs/${kind}`, {
        host: query.host || undefined,
        status: query.status || undefined,
        q: query.q || undefined,
        limit: 200,
      }),
    [kind, query],
  );
  useInterval(() => logs.reload(), live ? 3000 : null);
  return (
    <>
      <PageHead title="Access log" />
      <form
        className="toolbar filters"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ host: host.trim(), status: status.trim(), q: q.trim() });
        }}
      >
        <select aria-label="Log" value={kind} onChange={(e) => setKind(e.target.value as "access" | "errors")}>
          <option value="access">Access log</option>
          <option value="errors">Error log</option>
        </select>
        <input aria-label="Host" placeholder="host" value={host} onChange={(e) => setHost(e.target.value)} />
        <input aria-label="Status" placeholder="status (404 or 5)" value={status} onChange={(e) => setStatus(e.target.value)} />
        <input aria-label="Text" type="search" placeholder="text" value={q} onChange={(e) => setQ(e.target.value)} />
        <button type="submit">Filter</button>
        <label className="check">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> Live
        </label>
      </form>
      <ErrorBanner error={logs.error} />
      {logs.loading && !logs.data ? (
        <Spinner />
      ) : (logs.data?.entries ?? []).length === 0 ? (
        <div className="empty card">No log lines match.</div>
      ) : (
        <div className="table-wrap">
          <table className="list compact log">
            <thead>
              <tr>
                <th>Time</th>
                <th>Client</th>
                <th>Request</th>
                <th>Status</th>
                <th>Sent</th>
                <th>Time taken</th>
                <th>Upstream</th>
              </tr>
            </thead>
            <tbody>
              {(logs.data?.entries ?? []).map((e, i) => (
                <tr key={i}>
                  <td data-label="Time" className="mono">
                    {e.time}
                  </td>
                  <td data-label="Client" className="mono">
                    {e.client_ip ?? "—"}
                  </td>
                  <td data-label="Request" className="mono">
                    {e.method} {e.host}
                    {e.path}
                    {e.error && <div className="field-error">{e.error}</div>}
                  </td>
                  <td data-label="Status">
                    <Badge kind={e.status >= 500 || e.status === 0 ? "bad" : e.status >= 400 ? "warn" : "ok"}>{e.status || "—"}</Badge>
                  </td>
                  <td data-label="Sent">{formatBytes(e.bytes_out)}</td>
                  <td data-label="Time taken">{e.duration_ms.toFixed(1)} ms</td>
                  <td data-label="Upstream" className="mono">
                    {e.upstream ?? e.filter ?? "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
