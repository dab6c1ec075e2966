import { api } from "../api";
import { useFeatures } from "../App";
import { Link } from "../router";
import { Traffic } from "./Traffic";
import { Cluster } from "./Cluster";
import { Expiry } from "./Certificates";
import type { AccessList, Certificate, DeadHost, GroupHealth, ProxyHost, RedirectionHost, RevisionInfo, Stream } from "../types";
import { Badge, ErrorBanner, PageHead, Spinner, formatTime, useInterval, useLoad } from "../ui";

interface Health {
  status: string;
  version: string;
  revision: number;
}

export function Overview() {
  const health = useLoad(() => api.get<Health>("/api/health"));
  const counts = useLoad(async () => {
    const [p, r, d, s, a, c] = await Promise.all([
      api.get<ProxyHost[]>("/api/proxy-hosts"),
      api.get<RedirectionHost[]>("/api/redirection-hosts"),
      api.get<DeadHost[]>("/api/dead-hosts"),
      api.get<Stream[]>("/api/streams"),
      api.get<AccessList[]>("/api/access-lists"),
      api.get<Certificate[]>("/api/certificates"),
    ]);
    return { proxy: p, redirection: r.length, dead: d.length, streams: s.length, access: a.length, certs: c };
  });
  const ups = useLoad(() => api.get<GroupHealth[]>("/api/upstreams/health"));
  const history = useLoad(() => api.get<RevisionInfo[]>("/api/config/history", { limit: 6 }));
  useInterval(() => ups.reload(), 5000);
  const features = useFeatures();
  const hostName = (id: number) => counts.data?.proxy.find((h) => h.id === id)?.domain_names[0] ?? `#${id}`;
  const members = (ups.data ?? []).flatMap((g) => g.upstreams);
  const down = members.filter((m) => !m.healthy || m.passive_down).length;
  return (
    <>
      <PageHead title="Overview" />
      <ErrorBanner error={counts.error || ups.error} />
      {!counts.data ? (
        <Spinner />
      ) : (
        <div className="tiles">
          <Tile label="Proxy hosts" value={counts.data.proxy.length} href="/proxy-hosts" sub={`${counts.data.proxy.filter((h) => h.enabled).length} enabled`} />
          <Tile label="Redirection hosts" value={counts.data.redirection} href="/redirection-hosts" />
          <Tile label="404 hosts" value={counts.data.dead} href="/dead-hosts" />
          <Tile label="Streams" value={counts.data.streams} href="/streams" />
          <Tile label="Access lists" value={counts.data.access} href="/access-lists" />
          <Tile label="Certificates" value={counts.data.certs.length} href="/certificates" />
          <Tile
            label="Upstreams"
            value={members.length}
            sub={down ? `${down} down` : members.length ? "all healthy" : "none"}
            kind={down ? "bad" : "ok"}
          />
        </div>
      )}
      {features.stats && <Traffic />}
      <Cluster stats={features.stats} />
      <div className="grid2">
        <section className="card">
          <h2>Upstream health</h2>
          {ups.loading && !ups.data ? (
            <Spinner />
          ) : (ups.data ?? []).length === 0 ? (
            <p className="muted">No upstream groups: add a proxy host.</p>
          ) : (
            <table className="list compact">
              <thead>
                <tr>
                  <th>Upstream</th>
                  <th>Host</th>
                  <th>State</th>
                  <th>In flight</th>
                </tr>
              </thead>
              <tbody>
                {(ups.data ?? []).flatMap((g, gi) =>
                  g.upstreams.map((m, mi) => (
                    <tr key={`${gi}-${mi}`}>
                      <td data-label="Upstream" className="mono">
                        {g.scheme}://{m.host}
                        {m.host.includes(":") ? "" : `:${m.addr.split(":").pop()}`}
                      </td>
                      <td data-label="Host">{g.host_ids.map(hostName).join(", ")}</td>
                      <td data-label="State">
                        {m.passive_down ? (
                          <Badge kind="bad">failing</Badge>
                        ) : m.healthy ? (
                          <Badge kind="ok">{g.active_checks ? "healthy" : "up"}</Badge>
                        ) : (
                          <Badge kind="bad">unhealthy</Badge>
                        )}
                      </td>
                      <td data-label="In flight">{m.active_requests}</td>
                    </tr>
                  )),
                )}
              </tbody>
            </table>
          )}
        </section>
        <section className="card">
          <h2>Certificates expiring soon</h2>
          {(() => {
            const soon = (counts.data?.certs ?? [])
              .filter((c) => c.status === "failed" || (c.days_left != null && c.days_left <= 30))
              .sort((a, b) => (a.days_left ?? -1) - (b.days_left ?? -1));
            return soon.length === 0 ? (
              <p className="muted">{counts.data?.certs.length ? "None expires within 30 days." : "No certificates."}</p>
            ) : (
              <ul className="recent">
                {soon.map((c) => (
                  <li key={c.id}>
                    <Link href="/certificates">{c.name}</Link> <Expiry c={c} />
                  </li>
                ))}
              </ul>
            );
          })()}
        </section>
        <section className="card">
          <h2>Recent changes</h2>
          {(history.data ?? []).length === 0 ? (
            <p className="muted">No changes yet.</p>
          ) : (
            <ul className="recent">
              {(history.data ?? []).map((r) => (
                <li key={r.revision}>
                  <Link href={`/history/${r.revision}`}>
                    #{r.revision} {r.summary}
                  </Link>
                  <div className="muted small">
                    {formatTime(r.at)} · {r.actor}
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
      <p className="muted small">
        ppm-server {health.data?.version ?? "…"} · serving config revision {health.data?.revision ?? "…"}
      </p>
    </>
  );
}

function Tile({ label, value, sub, href, kind }: { label: string; value: number; sub?: string; href?: string; kind?: "ok" | "bad" }) {
  const body = (
    <>
      <div className="tile-value">{value}</div>
      <div className="tile-label">{label}</div>
      {sub && <div className={"tile-sub " + (kind ?? "")}>{sub}</div>}
    </>
  );
  return href ? (
    <Link href={href} className="tile card">
      {body}
    </Link>
  ) : (
    <div className="tile card">{body}</div>
  );
}
