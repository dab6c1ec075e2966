// DNS providers publish the TXT records of DNS-01 challenges (needed for
// wildcard certificates). Credentials are write-only: the API returns them
// blank, and a blank credential on save keeps the stored one.
import { useState } from "react";
import { Field, NumberField, SelectField, TextField, type Form, type Json } from "../form";
import type { DnsProvider, DnsProviderSpec } from "../types";
import { EntityPage } from "./Entities";

const KINDS: { value: DnsProviderSpec["kind"]; label: string }[] = [
  { value: "cloudflare", label: "Cloudflare" },
  { value: "rfc2136", label: "RFC 2136 (BIND, Knot, PowerDNS… with TSIG)" },
  { value: "command", label: "Your own command" },
];

/** A fresh provider spec of `kind`. */
export function blankSpec(kind: DnsProviderSpec["kind"]): DnsProviderSpec {
  switch (kind) {
    case "cloudflare":
      return { kind, api_token: "", zone_id: "", api_url: "" };
    case "rfc2136":
      return { kind, server: "", zone: "", tsig_key_name: "", tsig_algorithm: "hmac-sha256", tsig_secret: "" };
    case "command":
      return { kind, command: [], timeout_seconds: 60 };
  }
}

/** What the API takes: name, propagation delay and the provider. */
export function providerBody(v: Json): Json {
  return { name: v.name, propagation_seconds: v.propagation_seconds ?? 0, provider: v.provider };
}

function kindLabel(kind: string): string {
  return KINDS.find((k) => k.value === kind)?.label.split(" (")[0] ?? kind;
}

export function DnsProviders() {
  return (
    <EntityPage<DnsProvider>
      title="DNS providers"
      noun="DNS provider"
      path="/api/dns-providers"
      intro={
        <p className="muted">
          Where DNS-01 challenges publish their <code>_acme-challenge</code> TXT records. Wildcard certificates need one.
          Credentials are stored on the server and never shown again.
        </p>
      }
      columns={[
        { label: "Name", cell: (p) => p.name },
        { label: "Provider", cell: (p) => kindLabel(p.provider.kind) },
        {
          label: "Details",
          cell: (p) => (
            <span className="mono small">
              {p.provider.kind === "rfc2136"
                ? `${p.provider.zone} @ ${p.provider.server}`
                : p.provider.kind === "cloudflare"
                  ? p.provider.zone_id || "zone found by name"
                  : p.provider.command[0]}
            </span>
          ),
        },
        { label: "Wait", cell: (p) => `${p.propagation_seconds} s` },
      ]}
      make={() => ({ name: "", propagation_seconds: 0, provider: blankSpec("cloudflare") })}
      toBody={providerBody}
      describe={(p) => `the DNS provider ${p.name}`}
      search={(p) => `${p.name} ${p.provider.kind}`}
      shownFields={["name", "propagation_seconds", "provider"]}
      fields={(form) => <ProviderFields form={form} />}
    />
  );
}

export function ProviderFields({ form }: { form: Form }) {
  const kind: DnsProviderSpec["kind"] = form.get("provider.kind") ?? "cloudflare";
  const editing = !!form.get("id");
  const keep = editing ? "Leave empty to keep the stored one." : undefined;
  return (
    <>
      <div className="row3">
        <TextField form={form} path="name" label="Name" placeholder="my-dns" />
        <SelectField
          form={form}
          path="provider"
          label="Provider"
          options={KINDS}
          format={(v) => v?.kind ?? "cloudflare"}
          parse={(k) => blankSpec(k as DnsProviderSpec["kind"])}
        />
        <NumberField
          form={form}
          path="propagation_seconds"
          label="Wait before validation (s)"
          min={0}
          max={3600}
          hint="Time for the record to reach every name server."
        />
      </div>
      {kind === "cloudflare" && (
        <>
          <TextField form={form} path="provider.api_token" label="API token" type="password" hint={keep ?? "A token allowed Zone.DNS:Edit."} />
          <TextField form={form} path="provider.zone_id" label="Zone id" hint="Optional: found by name when empty." />
          <TextField form={form} path="provider.api_url" label="API URL" placeholder="https://api.cloudflare.com/client/v4" />
        </>
      )}
      {kind === "rfc2136" && (
        <>
          <div className="row3">
            <TextField form={form} path="provider.server" label="Primary server" placeholder="192.0.2.53:53" />
            <TextField form={form} path="provider.zone" label="Zone" placeholder="example.com" />
            <SelectField
              form={form}
              path="provider.tsig_algorithm"
              label="TSIG algorithm"
              options={[
                { value: "hmac-sha256", label: "HMAC-SHA256" },
                { value: "hmac-sha512", label: "HMAC-SHA512" },
              ]}
            />
          </div>
          <TextField form={form} path="provider.tsig_key_name" label="TSIG key name" />
          <TextField form={form} path="provider.tsig_secret" label="TSIG secret (base64)" type="password" hint={keep} />
        </>
      )}
      {kind === "command" && (
        <>
          <CommandField form={form} />
          <NumberField form={form} path="provider.timeout_seconds" label="Timeout (s)" min={1} max={600} />
        </>
      )}
    </>
  );
}

/** The program and its leading arguments, one per line (no shell). */
function CommandField({ form }: { form: Form }) {
  const [id] = useState(() => `cmd-${Math.random().toString(36).slice(2)}`);
  const list: string[] = form.get("provider.command") ?? [];
  const [text, setText] = useState(list.join("\n"));
  return (
    <Field
      form={form}
      path="provider.command"
      label="Command"
      id={id}
      hint={
        <>
          The program (absolute path) and its leading arguments, one per line. It runs as{" "}
          <code>command… set|clear &lt;name&gt; &lt;value&gt;</code>; exit status 0 means done. Admins only.
        </>
      }
    >
      <textarea
        id={id}
        name="provider.command"
        rows={3}
        placeholder="/usr/local/bin/dns-hook"
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          form.set(
            "provider.command",
            e.target.value.split("\n").map((s) => s.trim()).filter(Boolean),
          );
        }}
      />
    </Field>
  );
}
