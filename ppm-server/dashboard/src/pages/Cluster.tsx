// The cluster card on the overview: every node sharing the config database
// (/api/cluster/nodes), whether it serves the latest revision, which one runs
// ACME, and each node's share of the traffic (the `nodes` breakdown of
// /api/stats/summary). Shown only when there is a cluster to show: a
// PostgreSQL backend or more than one node.
import { api } from "../api";
import { Badge, ErrorBanner, formatBytes, formatTime, useInterval, useLoad } from "../ui";
import type { StatsPoint } from "./Traffic";

export interface NodeInfo {
  id: string;
  this_node: boolean;
  version: string;
  schema_version: number;
  revision: number;
  applied_latest: boolean;
  live: boolean;
  listeners: string[];
  started_at: number;
  last_seen: number;
}

export interface NodesView {
  backend: string;
  revision: number;
  applied: number;
  live: number;
  acme_leader: string | null;
  nodes: NodeInfo[];
}

export interface NodeTraffic {
  node_id: string;
  this_node: boolean;
  last_rollup: number | null;
  totals: StatsPoint;
  streams: StatsPoint;
}

/** Whether the overview has a cluster to show. */
export function showsCluster(v: NodesView | null | undefined): boolean {
  return !!v && (v.backend !== "sqlite" || v.nodes.length > 1);
}

/** One row per node: its state from `view`, its traffic from `traffic`. */
export function clusterRows(view: NodesView, traffic: NodeTraffic[] | undefined) {
  const byId = new Map((traffic ?? []).map((t) => [t.node_id, t]));
  return view.nodes.map((n) => {
    const t = byId.get(n.id);
    return {
      node: n,
      leader: view.acme_leader === n.id,
      requests: t ? t.totals.requests + t.streams.requests : null,
      errors: t ? t.totals.status_5xx + t.totals.no_response : null,
      bytes_out: t ? t.totals.bytes_out + t.streams.bytes_out : null,
      last_rollup: t?.last_rollup ?? null,
    };
  });
}

function nodeState(n: NodeInfo) {
  if (!n.live) return <Badge kind="bad">not reporting</Badge>;
  if (!n.applied_latest) return <Badge kind="warn">catching up</Badge>;
  return <Badge kind="ok">in sync</Badge>;
}

export function Cluster({ stats, interval = 5000 }: { stats: boolean; interval?: number }) {
  const nodes = useLoad(() => api.get<NodesView>("/api/cluster/nodes"));
  const view = nodes.data;
  // A single SQLite node stays one: no card, and no polling for one.
  const shown = showsCluster(view);
  const traffic = useLoad(
    async () => (stats && shown ? (await api.get<{ nodes: NodeTraffic[] }>("/api/stats/summary", { top: 1 })).nodes : []),
    [stats, shown],
  );
  useInterval(
    () => {
      nodes.reload();
      traffic.reload();
    },
    shown ? interval : null,
  );
  if (!shown || !view) return null;
  const rows = clusterRows(view, stats ? traffic.data ?? undefined : undefined);
  return (
    <section className="card cluster">
      <h2>Cluster</h2>
      <ErrorBanner error={nodes.error || traffic.error} />
      <p className="muted small">
        {view.backend} · revision {view.revision} · {view.applied} of {view.live} live node{view.live === 1 ? "" : "s"} in sync
        {view.acme_leader ? ` · ACME runs on ${view.acme_leader}` : " · no ACME leader now"}
      </p>
      <table className="list compact">
        <thead>
          <tr>
            <th>Node</th>
            <th>State</th>
            <th>Revision</th>
            <th>Version</th>
            <th>Last seen</th>
            {stats && <th>Requests</th>}
            {stats && <th>Errors</th>}
            {stats && <th>Sent</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.node.id}>
              <td data-label="Node" className="mono" title={r.node.listeners.join("\n")}>
                {r.node.id} {r.node.this_node && <Badge>this node</Badge>} {r.leader && <Badge>ACME</Badge>}
              </td>
              <td data-label="State">{nodeState(r.node)}</td>
              <td data-label="Revision">{r.node.revision}</td>
              <td data-label="Version">{r.node.version}</td>
              <td data-label="Last seen">{formatTime(r.node.last_seen)}</td>
              {stats && (
                <td data-label="Requests" title={r.requests == null ? "No statistics rollup from this node yet" : undefined}>
                  {r.requests == null ? "—" : r.requests.toLocaleString()}
                </td>
              )}
              {stats && <td data-label="Errors">{r.errors ? <Badge kind="bad">{r.errors}</Badge> : r.errors == null ? "—" : 0}</td>}
              {stats && <td data-label="Sent">{r.bytes_out == null ? "—" : formatBytes(r.bytes_out)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
