import { useState } from "react";
import { api } from "../api";
import { useCanWrite } from "../App";
import { Link } from "../router";
import { FormError, ListField, SelectField, TextField, useForm, type Form, type Json } from "../form";
import type { Certificate, DnsProvider } from "../types";
import { Badge, ConfirmButton, ErrorBanner, Modal, Notice, PageHead, Spinner, errorText, formatTime, useInterval, useLoad } from "../ui";
import { domainsCell } from "./common";

/** Whether an ACME order is still running (the page polls while it is). */
export const inProgress = (c: Certificate) => c.status === "pending" || c.status === "validating";

export function Certificates() {
  const certs = useLoad(() => api.get<Certificate[]>("/api/certificates"));
  const [uploading, setUploading] = useState(false);
  const [requesting, setRequesting] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const canWrite = useCanWrite();
  // Orders progress in the background: follow them live.
  useInterval(certs.reload, (certs.data ?? []).some(inProgress) ? 2000 : null);
  const renew = async (c: Certificate) => {
    setErr(null);
    try {
      await api.post(`/api/certificates/${c.id}/renew`, {});
      setNotice(`Renewing ${c.name || c.id}: the current certificate keeps serving until the new one is issued.`);
      certs.reload();
    } catch (e) {
      setErr(e);
    }
  };
  const usedBy = (c: Certificate) =>
    (c.used_by ?? []).map((u) => (u.kind === "settings" ? "default certificate" : u.domain_names[0] ?? `${u.kind.replace("_", " ")} #${u.id}`));
  return (
    <>
      <PageHead title="Certificates">
        {canWrite && (
          <>
            <button onClick={() => setUploading(true)}>Upload certificate</button>
            <button className="primary" onClick={() => setRequesting(true)}>
              Request certificate
            </button>
          </>
        )}
      </PageHead>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={certs.error || err} />
      {certs.loading && !certs.data ? (
        <Spinner />
      ) : (certs.data ?? []).length === 0 ? (
        <div className="empty card">
          No certificates yet. Request one from Let&apos;s Encrypt (or the CA set under Settings), or upload a PEM certificate chain and
          its private key.
        </div>
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>Name</th>
                <th>Domains</th>
                <th>Source</th>
                <th>Expiry &amp; order</th>
                <th>Used by</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(certs.data ?? []).map((c) => (
                <tr key={c.id}>
                  <td data-label="Name">
                    {c.name || `certificate ${c.id}`}
                    {c.issuer && <div className="muted small">issued by {c.issuer}</div>}
                  </td>
                  <td data-label="Domains">{domainsCell(c.domain_names)}</td>
                  <td data-label="Source">
                    <Badge>{c.source === "acme" ? "ACME" : "Uploaded"}</Badge>
                  </td>
                  <td data-label="Expires">
                    <Expiry c={c} />
                    <OrderDetails c={c} />
                  </td>
                  <td data-label="Used by">{usedBy(c).join(", ") || <span className="muted">nothing</span>}</td>
                  <td className="row-actions">
                    {canWrite && c.source === "acme" && !inProgress(c) && (
                      <button className="small" onClick={() => renew(c)}>
                        {c.status === "failed" ? "Retry" : "Renew"}
                      </button>
                    )}
                    {canWrite && (
                      <ConfirmButton
                        className="small danger"
                        label="Delete"
                        title="Delete certificate"
                        confirmLabel="Delete"
                        message={
                          <>
                            Delete the certificate <strong>{c.name || c.id}</strong> and its private key?
                          </>
                        }
                        action={async () => {
                          await api.del(`/api/certificates/${c.id}`);
                          setNotice(`Deleted the certificate ${c.name || c.id}.`);
                          certs.reload();
                        }}
                      />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {uploading && (
        <UploadDialog
          onClose={() => setUploading(false)}
          onSaved={(c) => {
            setUploading(false);
            setNotice(`Uploaded the certificate ${c.name || c.id} for ${c.domain_names.join(", ") || "its names"}.`);
            certs.reload();
          }}
        />
      )}
      {requesting && (
        <RequestDialog
          onClose={() => setRequesting(false)}
          onSaved={(c) => {
            setRequesting(false);
            setNotice(`Ordered a certificate for ${c.domain_names.join(", ")}; its status below follows the order.`);
            certs.reload();
          }}
        />
      )}
    </>
  );
}

/** An ACME order's progress: the CA's error, retries and renewal time. */
function OrderDetails({ c }: { c: Certificate }) {
  const o = c.acme;
  if (!o) return null;
  return (
    <div className="muted small order" data-status={c.status}>
      {inProgress(c) && <Spinner label={c.status === "validating" ? "The CA is validating…" : "Ordering…"} />}
      {c.status === "failed" && c.error && <div className="field-error">{c.error}</div>}
      {o.attempts > 0 && <div>{o.attempts} failed attempt{o.attempts === 1 ? "" : "s"}</div>}
      {c.status === "failed" && o.next_attempt_at && <div>next try {formatTime(o.next_attempt_at)}</div>}
      {c.status === "issued" && o.renew_at && <div>renews {formatTime(o.renew_at)}</div>}
      <div>{o.challenge}</div>
    </div>
  );
}

/** Expiry with a warning for certificates ending within 30 days. */
export function Expiry({ c }: { c: Certificate }) {
  if (c.status === "failed") return <Badge kind="bad">failed</Badge>;
  if (c.status === "pending" || c.status === "validating") return <Badge kind="warn">{c.status}</Badge>;
  if (c.not_after == null) return <span className="muted">—</span>;
  const days = c.days_left ?? Math.floor((c.not_after * 1000 - Date.now()) / 86_400_000);
  const date = new Date(c.not_after * 1000).toLocaleDateString();
  return (
    <>
      {date}{" "}
      {days < 0 ? <Badge kind="bad">expired</Badge> : days <= 30 ? <Badge kind="warn">{days} days left</Badge> : <span className="muted small">({days} days)</span>}
    </>
  );
}

function PemInput({ form, path, label }: { form: Form; path: string; label: string }) {
  return (
    <div>
      <TextField form={form} path={path} label={label} multiline rows={5} placeholder="-----BEGIN …-----" />
      <label className="file">
        or choose a file{" "}
        <input
          type="file"
          accept=".pem,.crt,.cer,.key,text/plain"
          aria-label={`${label} file`}
          onChange={async (e) => {
            const f = e.target.files?.[0];
            if (f) form.set(path, await f.text());
          }}
        />
      </label>
    </div>
  );
}

function UploadDialog({ onClose, onSaved }: { onClose: () => void; onSaved: (c: Certificate) => void }) {
  const form = useForm<Json>({ name: "", certificate_pem: "", private_key_pem: "" });
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const saved = await form.run(() => api.post<Certificate>("/api/certificates", { source: "upload", ...form.value }));
    if (saved) onSaved(saved);
  };
  return (
    <Modal title="Upload certificate" onClose={onClose} wide>
      <form onSubmit={save} noValidate>
        <div className="modal-body">
          <FormError form={form} shown={["name", "certificate_pem", "private_key_pem"]} />
          <TextField form={form} path="name" label="Name" placeholder="defaults to the certificate's first name" />
          <PemInput form={form} path="certificate_pem" label="Certificate chain (PEM)" />
          <PemInput form={form} path="private_key_pem" label="Private key (PEM)" />
          <p className="hint">The private key is stored on the server and never shown again.</p>
        </div>
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Uploading…" : "Upload"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Orders a certificate through ACME. `domains` prefills the names (from a
 * host's form); `onSaved` gets the new certificate, still pending. */
export function RequestDialog({
  domains = [],
  onClose,
  onSaved,
}: {
  domains?: string[];
  onClose: () => void;
  onSaved: (c: Certificate) => void;
}) {
  const wildcard = domains.some((d) => d.startsWith("*."));
  const form = useForm<Json>({ name: "", domain_names: domains, challenge: wildcard ? "dns-01" : "http-01", dns_provider_id: null });
  const providers = useLoad(() => api.get<DnsProvider[]>("/api/dns-providers"));
  const dns = form.get("challenge") === "dns-01";
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    // Opened from a host's form: do not submit that one too.
    e.stopPropagation();
    const v = form.value;
    const body: Json = { source: "acme", domain_names: v.domain_names, challenge: v.challenge };
    if (v.name) body.name = v.name;
    if (dns) body.dns_provider_id = v.dns_provider_id;
    const saved = await form.run(() => api.post<Certificate>("/api/certificates", body));
    if (saved) onSaved(saved);
  };
  return (
    <Modal title="Request certificate" onClose={onClose} wide>
      <form onSubmit={save} noValidate>
        <div className="modal-body">
          <FormError form={form} shown={["name", "domain_names", "challenge", "dns_provider_id"]} />
          <ListField
            form={form}
            path="domain_names"
            label="Domain names"
            placeholder="app.example.com"
            hint="One per line. Their DNS must point at this server for HTTP-01; a wildcard (*.example.com) needs DNS-01."
          />
          <SelectField
            form={form}
            path="challenge"
            label="Challenge"
            options={[
              { value: "http-01", label: "HTTP-01: the CA fetches a file from port 80" },
              { value: "dns-01", label: "DNS-01: a TXT record through a DNS provider" },
            ]}
          />
          {dns && (
            <SelectField
              form={form}
              path="dns_provider_id"
              label="DNS provider"
              hint={
                providers.error ? (
                  `DNS providers could not be loaded: ${errorText(providers.error)}`
                ) : (
                  <>
                    Add providers and their credentials on the <Link href="/dns-providers">DNS providers</Link> page.
                  </>
                )
              }
              options={[
                { value: "", label: "Choose a provider" },
                ...(providers.data ?? []).map((p) => ({ value: String(p.id), label: p.name })),
              ]}
              parse={(s) => (s === "" ? null : Number(s))}
            />
          )}
          <TextField form={form} path="name" label="Name" placeholder="defaults to the first domain name" />
          <p className="hint">
            The order runs in the background; the certificate list shows its progress and the CA&apos;s answer. Issued certificates
            renew by themselves when a third of their lifetime or 30 days remain, whichever comes first.
          </p>
        </div>
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Ordering…" : "Request"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
