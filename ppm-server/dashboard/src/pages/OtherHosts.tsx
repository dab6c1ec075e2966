import { ListField, SelectField, TextField, Toggle } from "../form";
import type { DeadHost, RedirectionHost } from "../types";
import { DomainsHint, SslSection, domainsCell } from "./common";
import { EntityPage } from "./Entities";

const SSL_FIELDS = ["certificate_id", "ssl_forced", "hsts_enabled", "hsts_subdomains"];

export function RedirectionHosts() {
  return (
    <EntityPage<RedirectionHost>
      title="Redirection hosts"
      noun="redirection host"
      path="/api/redirection-hosts"
      columns={[
        { label: "Domains", cell: (h) => domainsCell(h.domain_names) },
        {
          label: "Redirects to",
          cell: (h) => (
            <span className="mono">
              {h.status} → {h.forward_scheme ?? "(same scheme)"}://{h.forward_domain}
              {h.preserve_path ? "/…" : "/"}
            </span>
          ),
        },
      ]}
      make={() => ({
        domain_names: [],
        status: 301,
        forward_scheme: null,
        forward_domain: "",
        preserve_path: true,
        certificate_id: null,
        ssl_forced: false,
        hsts_enabled: false,
        hsts_subdomains: false,
        block_exploits: false,
        filters: [],
        enabled: true,
      })}
      describe={(h) => `the redirection for ${h.domain_names.join(", ")}`}
      search={(h) => h.domain_names.join(" ") + " " + h.forward_domain}
      shownFields={["domain_names", "status", "forward_scheme", "forward_domain", "preserve_path", "block_exploits", "enabled", ...SSL_FIELDS]}
      fields={(form) => (
        <>
          <ListField form={form} path="domain_names" label="Domain names" hint={<DomainsHint />} />
          <div className="row3">
            <SelectField
              form={form}
              path="status"
              label="Status"
              options={[301, 302, 307, 308].map((s) => ({ value: String(s), label: String(s) }))}
              parse={Number}
            />
            <SelectField
              form={form}
              path="forward_scheme"
              label="Scheme"
              options={[
                { value: "", label: "Same as the request" },
                { value: "http", label: "http" },
                { value: "https", label: "https" },
              ]}
              parse={(s) => (s === "" ? null : s)}
            />
            <TextField form={form} path="forward_domain" label="Forward to (host[:port])" placeholder="www.example.com" />
          </div>
          <Toggle form={form} path="preserve_path" label="Keep the path and query" />
          <Toggle form={form} path="block_exploits" label="Block common exploits" />
          <Toggle form={form} path="enabled" label="Enabled" />
          <SslSection form={form} />
        </>
      )}
    />
  );
}

export function DeadHosts() {
  return (
    <EntityPage<DeadHost>
      title="404 hosts"
      noun="404 host"
      path="/api/dead-hosts"
      intro={<p className="muted">Every request for these names gets 404 (or the host's error page).</p>}
      columns={[{ label: "Domains", cell: (h) => domainsCell(h.domain_names) }]}
      make={() => ({ domain_names: [], certificate_id: null, ssl_forced: false, hsts_enabled: false, hsts_subdomains: false, filters: [], enabled: true })}
      describe={(h) => `the 404 host for ${h.domain_names.join(", ")}`}
      search={(h) => h.domain_names.join(" ")}
      shownFields={["domain_names", "enabled", ...SSL_FIELDS]}
      fields={(form) => (
        <>
          <ListField form={form} path="domain_names" label="Domain names" hint={<DomainsHint />} />
          <Toggle form={form} path="enabled" label="Enabled" />
          <SslSection form={form} />
        </>
      )}
    />
  );
}

