import { useEffect, useMemo, useState } from "react";
import { api, ApiError } from "../api";
import { useCanWrite } from "../App";
import { FormError, ListField, NumberField, SelectField, TextField, Toggle, useForm, type Form, type Json } from "../form";
import { Link, navigate } from "../router";
import type { AccessList, Certificate, ProxyHost } from "../types";
import { Badge, ConfirmButton, ErrorBanner, Notice, PageHead, Spinner, useLoad } from "../ui";
import {
  AccessListSelect,
  ArrayEditor,
  BalancingEditor,
  DomainsHint,
  HeadersEditor,
  SslSection,
  Tabs,
  UpstreamsEditor,
  domainsCell,
} from "./common";

let flash: string | null = null;

export function ProxyHosts() {
  const hosts = useLoad(() => api.get<ProxyHost[]>("/api/proxy-hosts"));
  const lists = useLoad(() => api.get<AccessList[]>("/api/access-lists"));
  const certs = useLoad(() => api.get<Certificate[]>("/api/certificates"));
  const [q, setQ] = useState("");
  const [notice] = useState(() => {
    const f = flash;
    flash = null;
    return f;
  });
  const [err, setErr] = useState<unknown>(null);
  const canWrite = useCanWrite();
  const shown = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return (hosts.data ?? []).filter(
      (h) =>
        !needle ||
        h.domain_names.some((d) => d.toLowerCase().includes(needle)) ||
        h.upstreams.some((u) => `${u.host}:${u.port}`.includes(needle)),
    );
  }, [hosts.data, q]);
  const listName = (id: number | null) => (id == null ? null : (lists.data?.find((l) => l.id === id)?.name ?? `#${id}`));
  const certName = (id: number | null) => (id == null ? null : (certs.data?.find((c) => c.id === id)?.name ?? `#${id}`));
  const toggle = async (h: ProxyHost) => {
    setErr(null);
    try {
      await api.put(`/api/proxy-hosts/${h.id}`, { ...h, enabled: !h.enabled });
      hosts.reload();
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <>
      <PageHead title="Proxy hosts">
        {canWrite && (
          <Link className="button primary" href="/proxy-hosts/new">
            Add proxy host
          </Link>
        )}
      </PageHead>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={hosts.error || err} />
      <div className="toolbar">
        <input type="search" placeholder="Search domains or upstreams" aria-label="Search" value={q} onChange={(e) => setQ(e.target.value)} />
        <span className="muted">
          {shown.length} of {hosts.data?.length ?? 0}
        </span>
      </div>
      {hosts.loading && !hosts.data ? (
        <Spinner />
      ) : shown.length === 0 ? (
        <div className="empty card">{q ? "No proxy host matches." : "No proxy hosts yet. Add one to start routing traffic."}</div>
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>Domains</th>
                <th>Upstreams</th>
                <th>Access</th>
                <th>SSL</th>
                <th>Status</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {shown.map((h) => (
                <tr key={h.id} data-host-id={h.id}>
                  <td data-label="Domains">
                    <Link href={`/proxy-hosts/${h.id}`}>{domainsCell(h.domain_names)}</Link>
                  </td>
                  <td data-label="Upstreams">
                    {h.upstreams.map((u) => (
                      <div key={`${u.host}:${u.port}`} className="mono">
                        {h.forward_scheme}://{u.host}:{u.port}
                        {h.upstreams.length > 1 && u.weight !== 1 ? ` ×${u.weight}` : ""}
                      </div>
                    ))}
                  </td>
                  <td data-label="Access">{listName(h.access_list_id) ?? <span className="muted">Public</span>}</td>
                  <td data-label="SSL">{certName(h.certificate_id) ?? <span className="muted">HTTP only</span>}</td>
                  <td data-label="Status">{h.enabled ? <Badge kind="ok">Online</Badge> : <Badge>Disabled</Badge>}</td>
                  <td className="row-actions">
                    {canWrite && (
                      <>
                        <Link className="button small" href={`/proxy-hosts/${h.id}`}>
                          Edit
                        </Link>
                        <button className="small" onClick={() => toggle(h)}>
                          {h.enabled ? "Disable" : "Enable"}
                        </button>
                        <ConfirmButton
                          className="small danger"
                          label="Delete"
                          title="Delete proxy host"
                          confirmLabel="Delete"
                          message={
                            <>
                              Delete the proxy host for <strong>{h.domain_names.join(", ")}</strong>? Requests for these names stop being
                              proxied at once. Config history keeps it, so a rollback can restore it.
                            </>
                          }
                          action={async () => {
                            await api.del(`/api/proxy-hosts/${h.id}`);
                            hosts.reload();
                          }}
                        />
                      </>
                    )}
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

export function newProxyHost(): Json {
  return {
    domain_names: [],
    upstreams: [{ host: "", port: 80, weight: 1 }],
    balancing: { algorithm: "round_robin" },
    forward_scheme: "http",
    access_list_id: null,
    certificate_id: null,
    ssl_forced: false,
    hsts_enabled: false,
    hsts_subdomains: false,
    http2_support: true,
    allow_websocket_upgrade: true,
    block_exploits: false,
    locations: [],
    request_headers: [],
    response_headers: [],
    filters: [],
    timeouts: { connect_ms: null, read_ms: null, write_ms: null },
    retries: 1,
    max_body_size: null,
    health_check: null,
    enabled: true,
  };
}

/** Drops the empty optional values the form keeps while editing filters. */
export function cleanHost(h: Json): Json {
  const filters = ((h.filters ?? []) as Json[]).map((f) => {
    const config: Json = { ...(f.config ?? {}) };
    for (const k of Object.keys(config)) if (config[k] === null) delete config[k];
    if (f.kind === "error_pages" && config.pages) {
      config.pages = Object.fromEntries(Object.entries(config.pages as Record<string, unknown>).filter(([, v]) => typeof v === "string" && v !== ""));
    }
    return { ...f, config };
  });
  return { ...h, filters };
}

const TABS = ["Details", "Locations", "SSL", "Headers", "Advanced"];

/** Which tab shows the field at an error path. */
export function tabOf(path: string): string {
  const top = path.split(/[.[]/)[0];
  if (top === "locations") return "Locations";
  if (["certificate_id", "ssl_forced", "hsts_enabled", "hsts_subdomains", "http2_support"].includes(top)) return "SSL";
  if (top === "request_headers" || top === "response_headers") return "Headers";
  if (["timeouts", "retries", "max_body_size", "health_check", "passive_health", "filters"].includes(top)) return "Advanced";
  return "Details";
}

export function ProxyHostEdit({ id }: { id: number | null }) {
  const existing = useLoad(() => (id == null ? Promise.resolve(newProxyHost()) : api.get<ProxyHost>(`/api/proxy-hosts/${id}`)), [id]);
  if (existing.error) return <ErrorBanner error={existing.error} />;
  if (!existing.data) return <Spinner />;
  return <ProxyHostForm id={id} initial={existing.data} />;
}

function ProxyHostForm({ id, initial }: { id: number | null; initial: Json }) {
  const form = useForm<Json>(initial);
  const [tab, setTab] = useState("Details");
  const errorTabs = form.error instanceof ApiError ? [...new Set(form.error.fields.map((f) => tabOf(f.path)))] : [];
  useEffect(() => {
    if (errorTabs.length && !errorTabs.includes(tab)) setTab(errorTabs[0]);
    // Only when a new error arrives.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [form.error]);
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const body = cleanHost(form.value);
    const saved = await form.run(() =>
      id == null ? api.post<ProxyHost>("/api/proxy-hosts", body) : api.put<ProxyHost>(`/api/proxy-hosts/${id}`, body),
    );
    if (saved) {
      flash = `Saved the proxy host for ${saved.domain_names.join(", ")}; it serves now.`;
      navigate("/proxy-hosts");
    }
  };
  return (
    <form onSubmit={save} className="edit-form" noValidate>
      <PageHead title={id == null ? "New proxy host" : `Proxy host: ${initial.domain_names.join(", ")}`} />
      <FormError form={form} shown={["domain_names", "upstreams", "balancing", "forward_scheme", "access_list_id", "locations", "certificate_id", "request_headers", "response_headers", "timeouts", "retries", "max_body_size", "health_check", "passive_health", "filters", "enabled", "allow_websocket_upgrade", "block_exploits", "ssl_forced", "hsts_enabled", "hsts_subdomains", "http2_support", "upstream_sni", "upstream_verify_tls"]} />
      <Tabs tabs={TABS} current={tab} onChange={setTab} errorTabs={errorTabs} />
      <div className="card">
        {tab === "Details" && <DetailsTab form={form} />}
        {tab === "Locations" && <LocationsTab form={form} />}
        {tab === "SSL" && <SslSection form={form} http2 />}
        {tab === "Headers" && (
          <>
            <HeadersEditor form={form} path="request_headers" label="Request headers (to the upstream)" />
            <HeadersEditor form={form} path="response_headers" label="Response headers (to the client)" />
          </>
        )}
        {tab === "Advanced" && <AdvancedTab form={form} />}
      </div>
      <div className="actions sticky">
        <Link className="button" href="/proxy-hosts">
          Cancel
        </Link>
        <button className="primary" type="submit" disabled={form.busy}>
          {form.busy ? "Saving…" : "Save"}
        </button>
      </div>
    </form>
  );
}

function DetailsTab({ form }: { form: Form }) {
  const scheme = form.get("forward_scheme");
  return (
    <>
      <ListField form={form} path="domain_names" label="Domain names" hint={<DomainsHint />} placeholder="app.example.com" />
      <div className="row2">
        <SelectField
          form={form}
          path="forward_scheme"
          label="Scheme to the upstreams"
          options={[
            { value: "http", label: "http" },
            { value: "https", label: "https" },
          ]}
        />
        <AccessListSelect form={form} />
      </div>
      <UpstreamsEditor form={form} />
      <BalancingEditor form={form} />
      {scheme === "https" && (
        <div className="row2">
          <TextField form={form} path="upstream_sni" label="Upstream SNI" placeholder="defaults to the upstream host" emptyAsNull />
          <Toggle form={form} path="upstream_verify_tls" label="Verify the upstream's certificate" />
        </div>
      )}
      <div className="toggles">
        <Toggle form={form} path="enabled" label="Enabled" />
        <Toggle form={form} path="allow_websocket_upgrade" label="WebSockets" />
        <Toggle form={form} path="block_exploits" label="Block common exploits" />
      </div>
    </>
  );
}

function LocationsTab({ form }: { form: Form }) {
  return (
    <ArrayEditor
      form={form}
      path="locations"
      label="Locations"
      empty="No locations: every path goes to the host's upstreams."
      addLabel="Add location"
      make={() => ({ path: "/", match_kind: "prefix", upstreams: [], rewrite: null, request_headers: [], response_headers: [], filters: [] })}
      row={(p) => (
        <>
          <div className="row3">
            <TextField form={form} path={`${p}.path`} label="Path" placeholder="/api" />
            <SelectField
              form={form}
              path={`${p}.match_kind`}
              label="Match"
              options={[
                { value: "prefix", label: "Prefix" },
                { value: "exact", label: "Exact" },
                { value: "regex", label: "Regex" },
              ]}
            />
            <TextField form={form} path={`${p}.rewrite`} label="Rewrite to" emptyAsNull placeholder="(unchanged)" />
          </div>
          <UpstreamsEditor form={form} path={`${p}.upstreams`} label="Upstreams (empty: the host's)" />
        </>
      )}
    />
  );
}

function filterIndex(form: Form, kind: string): number {
  return ((form.get("filters") ?? []) as Json[]).findIndex((f) => f.kind === kind);
}

function FilterToggle({ form, kind, label, make }: { form: Form; kind: string; label: string; make: () => Json }) {
  const i = filterIndex(form, kind);
  const filters: Json[] = form.get("filters") ?? [];
  return (
    <div className="field toggle">
      <label>
        <input
          type="checkbox"
          checked={i >= 0}
          onChange={(e) =>
            form.set(
              "filters",
              e.target.checked ? [...filters, { kind, config: make() }] : filters.filter((f) => f.kind !== kind),
            )
          }
        />
        <span>{label}</span>
      </label>
    </div>
  );
}

const ERROR_STATUSES = ["404", "502", "503", "504"];

function AdvancedTab({ form }: { form: Form }) {
  const hc = form.get("health_check");
  const rl = filterIndex(form, "rate_limit");
  const ep = filterIndex(form, "error_pages");
  return (
    <>
      <fieldset>
        <legend>Timeouts (milliseconds; empty for the default)</legend>
        <div className="row3">
          <NumberField form={form} path="timeouts.connect_ms" label="Connect" optional placeholder="10000" />
          <NumberField form={form} path="timeouts.read_ms" label="Read" optional placeholder="60000" />
          <NumberField form={form} path="timeouts.write_ms" label="Write" optional placeholder="60000" />
        </div>
        <div className="row2">
          <NumberField form={form} path="retries" label="Retries on another upstream" min={0} max={10} />
          <NumberField form={form} path="max_body_size" label="Max request body (bytes)" optional placeholder="unlimited" />
        </div>
      </fieldset>
      <fieldset>
        <legend>Rate limit</legend>
        <FilterToggle form={form} kind="rate_limit" label="Limit requests per client IP" make={() => ({ requests: 100, window_secs: 1 })} />
        {rl >= 0 && (
          <div className="row3">
            <NumberField form={form} path={`filters[${rl}].config.requests`} label="Requests" optional />
            <NumberField form={form} path={`filters[${rl}].config.window_secs`} label="Per seconds" />
            <NumberField form={form} path={`filters[${rl}].config.max_in_flight`} label="At once (optional)" optional />
          </div>
        )}
      </fieldset>
      <fieldset>
        <legend>Error pages</legend>
        <FilterToggle form={form} kind="error_pages" label="Custom error pages" make={() => ({ pages: {} })} />
        {ep >= 0 &&
          ERROR_STATUSES.map((s) => (
            <TextField key={s} form={form} path={`filters[${ep}].config.pages.${s}`} label={`${s} page (HTML)`} multiline rows={3} emptyAsNull />
          ))}
      </fieldset>
      <fieldset>
        <legend>Health checks</legend>
        <div className="field toggle">
          <label>
            <input
              type="checkbox"
              checked={!!hc}
              onChange={(e) =>
                form.set("health_check", e.target.checked ? { kind: { type: "http", path: "/", expected_status: 200 }, interval_ms: 5000, timeout_ms: 1000, healthy_threshold: 1, unhealthy_threshold: 1 } : null)
              }
            />
            <span>Active health checks</span>
          </label>
        </div>
        {hc && (
          <>
            <div className="row3">
              <SelectField
                form={form}
                path="health_check.kind"
                label="Check"
                options={[
                  { value: "http", label: "HTTP request" },
                  { value: "tcp", label: "TCP connect" },
                ]}
                format={(v) => v?.type ?? "tcp"}
                parse={(s) => (s === "http" ? { type: "http", path: "/", expected_status: 200 } : { type: "tcp" })}
              />
              {hc.kind?.type === "http" && <TextField form={form} path="health_check.kind.path" label="Path" />}
              {hc.kind?.type === "http" && <NumberField form={form} path="health_check.kind.expected_status" label="Expected status" />}
            </div>
            <div className="row3">
              <NumberField form={form} path="health_check.interval_ms" label="Interval (ms)" />
              <NumberField form={form} path="health_check.timeout_ms" label="Timeout (ms)" />
              <NumberField form={form} path="health_check.unhealthy_threshold" label="Failures before down" />
            </div>
          </>
        )}
      </fieldset>
    </>
  );
}
