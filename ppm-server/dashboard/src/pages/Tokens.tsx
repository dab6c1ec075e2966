import { useState } from "react";
import { api } from "../api";
import { FieldErrors, FormError, TextField, useForm, type Json } from "../form";
import { RESOURCES, type ApiToken } from "../types";
import { Badge, ConfirmButton, ErrorBanner, Modal, Notice, PageHead, Spinner, copyText, formatTime, useLoad } from "../ui";

export function Tokens() {
  const tokens = useLoad(() => api.get<ApiToken[]>("/api/tokens"));
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<ApiToken | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  return (
    <>
      <PageHead title="API tokens">
        <button className="primary" onClick={() => setCreating(true)}>
          Create token
        </button>
      </PageHead>
      <p className="muted">
        Tokens call the API as you, limited to their scopes: send <code>Authorization: Bearer &lt;token&gt;</code>.
      </p>
      {created && <ShownOnce token={created} onDone={() => setCreated(null)} />}
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={tokens.error} />
      {tokens.loading && !tokens.data ? (
        <Spinner />
      ) : (tokens.data ?? []).length === 0 ? (
        <div className="empty card">No API tokens.</div>
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>Name</th>
                <th>Scopes</th>
                <th>Created</th>
                <th>Last used</th>
                <th>Status</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(tokens.data ?? []).map((t) => (
                <tr key={t.id}>
                  <td data-label="Name">{t.name}</td>
                  <td data-label="Scopes">
                    {t.scopes.map((s) => (
                      <Badge key={s}>{s}</Badge>
                    ))}
                  </td>
                  <td data-label="Created">{formatTime(t.created_at)}</td>
                  <td data-label="Last used">{formatTime(t.last_used_at)}</td>
                  <td data-label="Status">{t.revoked_at ? <Badge kind="bad">Revoked</Badge> : <Badge kind="ok">Active</Badge>}</td>
                  <td className="row-actions">
                    {!t.revoked_at && (
                      <ConfirmButton
                        className="small danger"
                        label="Revoke"
                        title="Revoke token"
                        confirmLabel="Revoke"
                        message={
                          <>
                            Revoke <strong>{t.name}</strong>? Programs using it get 401 from now on. This cannot be undone.
                          </>
                        }
                        action={async () => {
                          await api.del(`/api/tokens/${t.id}`);
                          setNotice(`Revoked ${t.name}.`);
                          tokens.reload();
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
      {creating && (
        <CreateDialog
          onClose={() => setCreating(false)}
          onCreated={(t) => {
            setCreating(false);
            setCreated(t);
            tokens.reload();
          }}
        />
      )}
    </>
  );
}

function ShownOnce({ token, onDone }: { token: ApiToken; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="banner success token-once" role="status">
      <p>
        <strong>Token {token.name} created.</strong> Copy it now: it is shown only this once.
      </p>
      <div className="token-row">
        <code className="token" data-testid="new-token">
          {token.token}
        </code>
        <button className="small" onClick={async () => setCopied(await copyText(token.token ?? ""))}>
          {copied ? "Copied" : "Copy"}
        </button>
        <button className="small" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

function CreateDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (t: ApiToken) => void }) {
  const form = useForm<Json>({ name: "", scopes: ["read"] });
  const scopes: string[] = form.get("scopes");
  const flip = (s: string, on: boolean) => form.set("scopes", on ? [...scopes, s] : scopes.filter((x) => x !== s));
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const t = await form.run(() => api.post<ApiToken>("/api/tokens", form.value));
    if (t) onCreated(t);
  };
  return (
    <Modal title="Create API token" onClose={onClose} wide>
      <form onSubmit={save} noValidate>
        <div className="modal-body">
          <FormError form={form} shown={["name", "scopes"]} />
          <TextField form={form} path="name" label="Name" placeholder="deploy script" />
          <fieldset>
            <legend>Scopes</legend>
            <div className="scopes">
              {["read", "write"].map((s) => (
                <label key={s} className="check">
                  <input type="checkbox" checked={scopes.includes(s)} onChange={(e) => flip(s, e.target.checked)} /> {s} (everything)
                </label>
              ))}
            </div>
            <div className="scope-grid">
              {RESOURCES.map((r) => (
                <div key={r} className="scope-row">
                  <span>{r}</span>
                  {["read", "write"].map((a) => (
                    <label key={a} className="check">
                      <input type="checkbox" checked={scopes.includes(`${r}:${a}`)} onChange={(e) => flip(`${r}:${a}`, e.target.checked)} /> {a}
                    </label>
                  ))}
                </div>
              ))}
            </div>
            <FieldErrors messages={form.errors("scopes")} />
          </fieldset>
        </div>
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Creating…" : "Create"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
