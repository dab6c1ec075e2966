import { useState } from "react";
import { api } from "../api";
import { useCanWrite } from "../App";
import { FormError, TextField, useForm, type Form, type Json } from "../form";
import type { Certificate, ProxyHost } from "../types";
import { Badge, ConfirmButton, ErrorBanner, Modal, Notice, PageHead, Spinner, useLoad } from "../ui";
import { domainsCell } from "./common";

export function Certificates() {
  const certs = useLoad(() => api.get<Certificate[]>("/api/certificates"));
  const hosts = useLoad(() => api.get<ProxyHost[]>("/api/proxy-hosts"));
  const [uploading, setUploading] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const canWrite = useCanWrite();
  const usedBy = (id: number) => (hosts.data ?? []).filter((h) => h.certificate_id === id).map((h) => h.domain_names[0]);
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
                <th>Used by</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(certs.data ?? []).map((c) => (
                <tr key={c.id}>
                  <td data-label="Name">{c.name || `certificate ${c.id}`}</td>
                  <td data-label="Domains">{domainsCell(c.domain_names)}</td>
                  <td data-label="Source">
                    <Badge>{c.source === "acme" ? "ACME" : "Uploaded"}</Badge>
                  </td>
                  <td data-label="Used by">{usedBy(c.id).join(", ") || <span className="muted">nothing</span>}</td>
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
    const saved = await form.run(() => api.post<Certificate>("/api/certificates", form.value));
    if (saved) onSaved(saved);
  };
  return (
    <Modal title="Upload certificate" onClose={onClose} wide>
      <form onSubmit={save} noValidate>
        <div className="modal-body">
          <FormError form={form} shown={["name", "certificate_pem", "private_key_pem"]} />
          <TextField form={form} path="name" label="Name" placeholder="example.com 2026" />
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
