import { useState } from "react";
import { api } from "../api";
import { useCanWrite } from "../App";
import { FormError, TextField, useForm, type Form, type Json } from "../form";
import type { Certificate } from "../types";
import { Badge, ConfirmButton, ErrorBanner, Modal, Notice, PageHead, Spinner, useLoad } from "../ui";
import { domainsCell } from "./common";

export function Certificates() {
  const certs = useLoad(() => api.get<Certificate[]>("/api/certificates"));
  const [uploading, setUploading] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const canWrite = useCanWrite();
  const usedBy = (c: Certificate) =>
    (c.used_by ?? []).map((u) => (u.kind === "settings" ? "default certificate" : u.domain_names[0] ?? `${u.kind.replace("_", " ")} #${u.id}`));
  return (
    <>
      <PageHead title="Certificates">
        {canWrite && (
          <button className="primary" onClick={() => setUploading(true)}>
            Upload certificate
          </button>
        )}
      </PageHead>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={certs.error} />
      {certs.loading && !certs.data ? (
        <Spinner />
      ) : (certs.data ?? []).length === 0 ? (
        <div className="empty card">No certificates yet. Upload a PEM certificate chain and its private key.</div>
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>Name</th>
                <th>Domains</th>
                <th>Source</th>
                <th>Expires</th>
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
                  </td>
                  <td data-label="Used by">{usedBy(c).join(", ") || <span className="muted">nothing</span>}</td>
                  <td className="row-actions">
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
    </>
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
