// Form sections shared by hosts and streams.
import { useState, type ReactNode } from "react";
import { api } from "../api";
import { FieldErrors, NumberField, SelectField, TextField, Toggle, type Form, type Json } from "../form";
import type { AccessList, Certificate } from "../types";
import { useLoad } from "../ui";
import { RequestDialog } from "./Certificates";

/** An editable list of rows at `path`. */
export function ArrayEditor({
  form,
  path,
  label,
  empty,
  make,
  row,
  addLabel = "Add",
}: {
  form: Form;
  path: string;
  label: string;
  empty?: string;
  make: () => Json;
  row: (itemPath: string, index: number) => ReactNode;
  addLabel?: string;
}) {
  const items: Json[] = form.get(path) ?? [];
  const own = form.errors(path).filter((m) => !m.startsWith("["));
  return (
    <fieldset className="array" data-path={path}>
      <legend>{label}</legend>
      {items.length === 0 && empty && <p className="muted">{empty}</p>}
      {items.map((_, i) => (
        <div className="array-row" key={i}>
          <div className="array-fields">{row(`${path}[${i}]`, i)}</div>
          <button
            type="button"
            className="icon remove"
            aria-label={`Remove ${label.toLowerCase()} ${i + 1}`}
            onClick={() => form.set(path, items.filter((_, j) => j !== i))}
          >
            ×
          </button>
        </div>
      ))}
      <FieldErrors messages={own} />
      <button type="button" className="small" onClick={() => form.set(path, [...items, make()])}>
        + {addLabel}
      </button>
    </fieldset>
  );
}

export function UpstreamsEditor({ form, path = "upstreams", label = "Upstream servers" }: { form: Form; path?: string; label?: string }) {
  return (
    <ArrayEditor
      form={form}
      path={path}
      label={label}
      empty="No upstream servers."
      addLabel="Add upstream"
      make={() => ({ host: "", port: 80, weight: 1 })}
      row={(p) => (
        <div className="row3">
          <TextField form={form} path={`${p}.host`} label="Host or IP" placeholder="127.0.0.1" />
          <NumberField form={form} path={`${p}.port`} label="Port" min={1} max={65535} />
          <NumberField form={form} path={`${p}.weight`} label="Weight" min={1} max={1000} />
        </div>
      )}
    />
  );
}

const ALGORITHMS = [
  { value: "round_robin", label: "Round robin (weighted)" },
  { value: "random", label: "Random (weighted)" },
  { value: "least_connections", label: "Least connections" },
  { value: "consistent_hash", label: "Consistent hash" },
];

export function BalancingEditor({ form, path = "balancing", optional }: { form: Form; path?: string; optional?: boolean }) {
  const b = form.get(path);
  const algo: string = b?.algorithm ?? (optional ? "" : "round_robin");
  const options = optional ? [{ value: "", label: "Same as the host" }, ...ALGORITHMS] : ALGORITHMS;
  return (
    <div className="row2">
      <SelectField
        form={form}
        path={path}
        label="Load balancing"
        options={options}
        format={(v) => v?.algorithm ?? (optional ? "" : "round_robin")}
        parse={(s) => (s === "" ? null : s === "consistent_hash" ? { algorithm: s, key: { source: "client_ip" } } : { algorithm: s })}
      />
      {algo === "consistent_hash" && (
        <div className="row2">
          <SelectField
            form={form}
            path={`${path}.key`}
            label="Hash on"
            options={[
              { value: "client_ip", label: "Client IP" },
              { value: "header", label: "Header" },
              { value: "cookie", label: "Cookie" },
            ]}
            format={(v) => v?.source ?? "client_ip"}
            parse={(s) => (s === "client_ip" ? { source: s } : { source: s, name: "" })}
          />
          {b?.key?.source && b.key.source !== "client_ip" && <TextField form={form} path={`${path}.key.name`} label="Name" />}
        </div>
      )}
    </div>
  );
}

export function HeadersEditor({ form, path, label }: { form: Form; path: string; label: string }) {
  return (
    <ArrayEditor
      form={form}
      path={path}
      label={label}
      empty="None."
      addLabel="Add header rule"
      make={() => ({ name: "", value: "", action: "set" })}
      row={(p) => (
        <div className="row3">
          <SelectField
            form={form}
            path={`${p}.action`}
            label="Action"
            options={[
              { value: "set", label: "Set" },
              { value: "add", label: "Add" },
              { value: "remove", label: "Remove" },
            ]}
          />
          <TextField form={form} path={`${p}.name`} label="Name" placeholder="X-Frame-Options" />
          <TextField form={form} path={`${p}.value`} label="Value" placeholder="$client_ip" />
        </div>
      )}
    />
  );
}

export function useAccessLists() {
  return useLoad(() => api.get<AccessList[]>("/api/access-lists"));
}

export function useCertificates() {
  return useLoad(() => api.get<Certificate[]>("/api/certificates"));
}

const idOption = (s: string) => (s === "" ? null : Number(s));

export function AccessListSelect({ form, path = "access_list_id" }: { form: Form; path?: string }) {
  const lists = useAccessLists();
  return (
    <SelectField
      form={form}
      path={path}
      label="Access list"
      hint={lists.error ? "Access lists could not be loaded." : undefined}
      options={[{ value: "", label: "Public (no access list)" }, ...(lists.data ?? []).map((l) => ({ value: String(l.id), label: l.name }))]}
      parse={idOption}
    />
  );
}

export function SslSection({ form, http2 }: { form: Form; http2?: boolean }) {
  const certs = useCertificates();
  const [requesting, setRequesting] = useState(false);
  const domains: string[] = form.get("domain_names") ?? [];
  return (
    <>
      <SelectField
        form={form}
        path="certificate_id"
        label="Certificate"
        hint={
          <>
            Choose one, or{" "}
            <button type="button" className="link" onClick={() => setRequesting(true)}>
              request a new certificate for this host&apos;s domains
            </button>
            . Uploads are on the Certificates page.
          </>
        }
        options={[
          { value: "", label: "None (plain HTTP)" },
          ...(certs.data ?? []).map((c) => ({
            value: String(c.id),
            label: `${c.name || "certificate " + c.id} — ${c.domain_names.join(", ")}${c.status && c.status !== "issued" ? ` (${c.status})` : ""}`,
          })),
        ]}
        parse={idOption}
      />
      {requesting && (
        <RequestDialog
          domains={domains}
          onClose={() => setRequesting(false)}
          onSaved={(c) => {
            setRequesting(false);
            certs.reload();
            // Served once issued; until then the fallback certificate answers.
            form.set("certificate_id", c.id);
          }}
        />
      )}
      <Toggle form={form} path="ssl_forced" label="Force HTTPS" hint="Redirect plain HTTP requests to HTTPS." />
      <Toggle form={form} path="hsts_enabled" label="HSTS" hint="Send Strict-Transport-Security over TLS." />
      <Toggle form={form} path="hsts_subdomains" label="HSTS for subdomains" />
      {http2 && <Toggle form={form} path="http2_support" label="HTTP/2" />}
    </>
  );
}

export function DomainsHint() {
  return (
    <>
      One per line, or separated by commas. Exact (<code>app.example.com</code>) or wildcard (<code>*.example.com</code>).
    </>
  );
}

export function Tabs({ tabs, current, onChange, errorTabs }: { tabs: string[]; current: string; onChange: (t: string) => void; errorTabs?: string[] }) {
  return (
    <div className="tabs" role="tablist">
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          key={t}
          aria-selected={t === current}
          className={(t === current ? "active" : "") + (errorTabs?.includes(t) ? " tab-error" : "")}
          onClick={() => onChange(t)}
        >
          {t}
        </button>
      ))}
    </div>
  );
}

export function domainsCell(names: string[]) {
  return (
    <div className="domains">
      {names.map((d) => (
        <span key={d} className="domain">
          {d}
        </span>
      ))}
    </div>
  );
}
