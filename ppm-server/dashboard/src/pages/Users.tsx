import { useState } from "react";
import { api } from "../api";
import { useAuth } from "../App";
import { FormError, SelectField, TextField, Toggle, useForm, type Json } from "../form";
import type { User } from "../types";
import { Badge, ConfirmButton, ErrorBanner, Modal, Notice, PageHead, Spinner, formatTime, useLoad } from "../ui";

export function Users() {
  const users = useLoad(() => api.get<User[]>("/api/users"));
  const [editing, setEditing] = useState<Json | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const { user: me } = useAuth();
  return (
    <>
      <PageHead title="Users & roles">
        <button className="primary" onClick={() => setEditing({ email: "", name: "", role: "operator", password: "", disabled: false, must_change_password: true })}>
          Add user
        </button>
      </PageHead>
      <div className="card roles">
        <strong>Roles:</strong> <Badge>viewer</Badge> reads the config; <Badge>operator</Badge> also changes it and reads the audit log;{" "}
        <Badge>admin</Badge> also manages users and exports secrets.
      </div>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={users.error} />
      {users.loading && !users.data ? (
        <Spinner />
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>Email</th>
                <th>Name</th>
                <th>Role</th>
                <th>Status</th>
                <th>Created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(users.data ?? []).map((u) => (
                <tr key={u.id}>
                  <td data-label="Email">{u.email}</td>
                  <td data-label="Name">{u.name}</td>
                  <td data-label="Role">
                    <Badge>{u.role}</Badge>
                  </td>
                  <td data-label="Status">{u.disabled ? <Badge kind="bad">Disabled</Badge> : <Badge kind="ok">Active</Badge>}</td>
                  <td data-label="Created">{formatTime(u.created_at)}</td>
                  <td className="row-actions">
                    <button className="small" onClick={() => setEditing({ ...u, password: "", must_change_password: true })}>
                      Edit
                    </button>
                    {u.id !== me.id && (
                      <ConfirmButton
                        className="small danger"
                        label="Delete"
                        title="Delete user"
                        confirmLabel="Delete"
                        message={
                          <>
                            Delete <strong>{u.email}</strong>? Their sessions and API tokens stop working.
                          </>
                        }
                        action={async () => {
                          await api.del(`/api/users/${u.id}`);
                          setNotice(`Deleted ${u.email}.`);
                          users.reload();
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
      {editing && (
        <UserDialog
          initial={editing}
          onClose={() => setEditing(null)}
          onSaved={(u) => {
            setEditing(null);
            setNotice(`Saved ${u.email}.`);
            users.reload();
          }}
        />
      )}
    </>
  );
}

function UserDialog({ initial, onClose, onSaved }: { initial: Json; onClose: () => void; onSaved: (u: User) => void }) {
  const form = useForm<Json>(initial);
  const isNew = !initial.id;
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const v = form.value;
    const body: Json = { email: v.email, name: v.name, role: v.role, disabled: v.disabled };
    if (v.password) {
      body.password = v.password;
      body.must_change_password = v.must_change_password !== false;
    }
    const saved = await form.run(() => (isNew ? api.post<User>("/api/users", body) : api.put<User>(`/api/users/${initial.id}`, body)));
    if (saved) onSaved(saved);
  };
  return (
    <Modal title={isNew ? "New user" : `Edit ${initial.email}`} onClose={onClose}>
      <form onSubmit={save} noValidate>
        <div className="modal-body">
          <FormError form={form} shown={["email", "name", "role", "password", "disabled"]} />
          <TextField form={form} path="email" label="Email" type="email" />
          <TextField form={form} path="name" label="Name" />
          <SelectField
            form={form}
            path="role"
            label="Role"
            options={[
              { value: "viewer", label: "Viewer" },
              { value: "operator", label: "Operator" },
              { value: "admin", label: "Admin" },
            ]}
          />
          <TextField
            form={form}
            path="password"
            label={isNew ? "Password" : "New password"}
            type="password"
            autoComplete="new-password"
            hint={isNew ? "At least 12 characters." : "Leave empty to keep the current one."}
          />
          {form.get("password") ? (
            <Toggle
              form={form}
              path="must_change_password"
              label="Must choose a new password at next sign-in"
              hint="The user replaces the password you chose before doing anything else."
            />
          ) : null}
          <Toggle form={form} path="disabled" label="Disabled (cannot sign in)" />
        </div>
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
