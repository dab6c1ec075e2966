import { NumberField, SelectField, TextField, Toggle, type Form } from "../form";
import type { Stream } from "../types";
import { AccessListSelect, BalancingEditor, UpstreamsEditor, useCertificates } from "./common";
import { EntityPage } from "./Entities";

/** TLS termination is for TCP streams; a certificate left on another
 * protocol stays visible so the server's error about it can be fixed. */
export function showsCertificate(s: Pick<Stream, "protocol" | "certificate_id">): boolean {
  return s.protocol === "tcp" || s.certificate_id != null;
}

/** The protocol column: `TCP + TLS` for a TLS-terminating stream. */
export function protocolLabel(s: Pick<Stream, "protocol" | "certificate_id">): string {
  const p = s.protocol === "both" ? "TCP+UDP" : s.protocol.toUpperCase();
  return s.certificate_id != null ? `${p} + TLS` : p;
}

function StreamCertificateSelect({ form }: { form: Form }) {
  const certs = useCertificates();
  const protocol = form.get("protocol") as Stream["protocol"];
  const certificate_id = form.get("certificate_id") as Stream["certificate_id"];
  if (!showsCertificate({ protocol, certificate_id })) return null;
  return (
    <SelectField
      form={form}
      path="certificate_id"
      label="TLS certificate"
      hint={
        certs.error
          ? "Certificates could not be loaded."
          : "Clients connect with TLS using this certificate; the upstreams get plain TCP. TCP streams only. Renewals apply to new connections."
      }
      options={[
        { value: "", label: "None (forward as is)" },
        ...(certs.data ?? []).map((c) => ({
          value: String(c.id),
          label: `${c.name || "certificate " + c.id} — ${c.domain_names.join(", ")}${c.status && c.status !== "issued" ? ` (${c.status}: handshakes are refused until issued)` : ""}`,
        })),
      ]}
      parse={(v) => (v === "" ? null : Number(v))}
    />
  );
}

export function Streams() {
  return (
    <EntityPage<Stream>
      title="Streams"
      noun="stream"
      path="/api/streams"
      intro={<p className="muted">Layer-4 port forwards: TCP and UDP connections on a port go to the upstreams as they are.</p>}
      columns={[
        { label: "Listens on", cell: (s) => <span className="mono">{`${s.bind_address}:${s.incoming_port}`}</span> },
        { label: "Protocol", cell: (s) => protocolLabel(s) },
        {
          label: "Upstreams",
          cell: (s) =>
            s.upstreams.map((u) => (
              <div key={`${u.host}:${u.port}`} className="mono">
                {u.host}:{u.port}
              </div>
            )),
        },
      ]}
      make={() => ({
        incoming_port: null,
        bind_address: "0.0.0.0",
        protocol: "tcp",
        upstreams: [{ host: "", port: 80, weight: 1 }],
        balancing: { algorithm: "round_robin" },
        access_list_id: null,
        certificate_id: null,
        proxy_protocol: null,
        idle_timeout_ms: 600000,
        enabled: true,
      })}
      describe={(s) => `the stream on port ${s.incoming_port}`}
      search={(s) => `${s.incoming_port} ${s.bind_address} ${s.protocol} ${s.upstreams.map((u) => u.host + ":" + u.port).join(" ")}`}
      shownFields={["incoming_port", "bind_address", "protocol", "upstreams", "balancing", "access_list_id", "certificate_id", "proxy_protocol", "idle_timeout_ms", "enabled"]}
      fields={(form) => (
        <>
          <div className="row3">
            <NumberField form={form} path="incoming_port" label="Port" min={1} max={65535} optional />
            <TextField form={form} path="bind_address" label="Bind address" />
            <SelectField
              form={form}
              path="protocol"
              label="Protocol"
              options={[
                { value: "tcp", label: "TCP" },
                { value: "udp", label: "UDP" },
                { value: "both", label: "TCP and UDP" },
              ]}
            />
          </div>
          <UpstreamsEditor form={form} />
          <BalancingEditor form={form} />
          <div className="row3">
            <AccessListSelect form={form} />
            <SelectField
              form={form}
              path="proxy_protocol"
              label="PROXY protocol"
              options={[
                { value: "", label: "Off" },
                { value: "1", label: "v1" },
                { value: "2", label: "v2" },
              ]}
              parse={(s) => (s === "" ? null : Number(s))}
            />
            <NumberField form={form} path="idle_timeout_ms" label="Idle timeout (ms)" />
          </div>
          <StreamCertificateSelect form={form} />
          <Toggle form={form} path="enabled" label="Enabled" />
        </>
      )}
    />
  );
}
