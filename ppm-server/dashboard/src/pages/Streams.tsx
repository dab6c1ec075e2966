import { NumberField, SelectField, TextField, Toggle } from "../form";
import type { Stream } from "../types";
import { AccessListSelect, BalancingEditor, UpstreamsEditor } from "./common";
import { EntityPage } from "./Entities";

export function Streams() {
  return (
    <EntityPage<Stream>
      title="Streams"
      noun="stream"
      path="/api/streams"
      intro={<p className="muted">Layer-4 port forwards: TCP and UDP connections on a port go to the upstreams as they are.</p>}
      columns={[
        { label: "Listens on", cell: (s) => <span className="mono">{`${s.bind_address}:${s.incoming_port}`}</span> },
        { label: "Protocol", cell: (s) => s.protocol.toUpperCase() },
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
      shownFields={["incoming_port", "bind_address", "protocol", "upstreams", "balancing", "access_list_id", "proxy_protocol", "idle_timeout_ms", "enabled"]}
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
          <Toggle form={form} path="enabled" label="Enabled" />
        </>
      )}
    />
  );
}
