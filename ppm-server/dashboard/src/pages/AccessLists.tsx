import { useState } from "react";
import { api } from "../api";
import { useCanWrite } from "../App";
import { FormError, SelectField, TextField, Toggle, useForm, type Json } from "../form";
import { Link, navigate } from "../router";
import type { AccessList, ProxyHost } from "../types";
import { ConfirmButton, ErrorBanner, Notice, PageHead, Spinner, useLoad } from "../ui";
import { ArrayEditor } from "./common";

let flash: string | null = null;

export function AccessLists() {
  const lists = useLoad(() => api.get<AccessList[]>("/api/access-lists"));
  const hosts = useLoad(() => api.get<ProxyHost[]>("/api/proxy-hosts"));
  const canWrite = useCanWrite();
  const [notice] = useState(() => {
    const f = flash;
    flash = null;
    return f;
  });
  const usedBy = (id: number) => (hosts.data ?? []).filter((h) => h.access_list_id === id);
  return (
    <>
      <PageHead title="Access lists">
        {canWrite && (
          <Link className="button primary" href="/access-lists/new">
            Add access list
          </Link>
        )}
      </PageHead>
      <p className="muted">IP rules and Basic-Auth users. Attach a list to proxy hosts or streams.</p>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={lists.error} />
      {lists.loading && !lists.data ? (
        <Spinner />
      ) : (lists.data ?? []).length === 0 ? (
        <div className="empty card">No access lists yet.</div>
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>Name</th>
                <th>IP rules</th>
                <th>Users</th>
                <th>Satisfy</th>
                <th>Used by</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(lists.data ?? []).map((l) => (
                <tr key={l.id}>
                  <td data-label="Name">
                    <Link href={`/access-lists/${l.id}`}>{l.name}</Link>
                  </td>
                  <td data-label="IP rules">
                    {l.rules.length} rule{l.rules.length === 1 ? "" : "s"}, otherwise {l.default_action}
                  </td>
                  <td data-label="Users">{l.users.length}</td>
                  <td data-label="Satisfy">{l.satisfy}</td>
                  <td data-label="Used by">{usedBy(l.id).map((h) => h.domain_names[0]).join(", ") || <span className="muted">nothing</span>}</td>
                  <td className="row-actions">
                    {canWrite && (
                      <ConfirmButton
                        className="small danger"
                        label="Delete"
                        title="Delete access list"
                        confirmLabel="Delete"
                        message={
                          <>
                            Delete the access list <strong>{l.name}</strong>?
                            {usedBy(l.id).length > 0 && " Hosts still use it, so the server will refuse until they are changed."}
                          </>
                        }
                        action={async () => {
                          await api.del(`/api/access-lists/${l.id}`);
                          lists.reload();
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
    </>
  );
}

export function AccessListEdit({ id }: { id: number | null }) {
  const existing = useLoad(
    () =>
      id == null
        ? Promise.resolve({ name: "", rules: [], default_action: "allow", users: [], satisfy: "any", pass_auth: false } as Json)
        : api.get<AccessList>(`/api/access-lists/${id}`),
    [id],
  );
  if (existing.error) return <ErrorBanner error={existing.error} />;
  if (!existing.data) return <Spinner />;
  return <AccessListForm id={id} initial={existing.data} />;
}

function AccessListForm({ id, initial }: { id: number | null; initial: Json }) {
  // Stored users come back without their hash; leaving `password` out keeps it.
  const form = useForm<Json>({
    ...initial,
    users: (initial.users ?? []).map((u: Json) => ({ username: u.username, password: "", stored: true })),
  });
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const v = form.value;
    const body = {
      name: v.name,
      rules: v.rules,
      default_action: v.default_action,
      satisfy: v.satisfy,
      pass_auth: v.pass_auth,
      users: (v.users as Json[]).map((u) => (u.stored && !u.password ? { username: u.username } : { username: u.username, password: u.password })),
    };
    const saved = await form.run(() => (id == null ? api.post<AccessList>("/api/access-lists", body) : api.put<AccessList>(`/api/access-lists/${id}`, body)));
    if (saved) {
      flash = `Saved the access list ${saved.name}.`;
      navigate("/access-lists");
    }
  };
  return (
    <form onSubmit={save} className="edit-form" noValidate>
      <PageHead title={id == null ? "New access list" : `Access list: ${initial.name}`} />
      <FormError form={form} shown={["name", "rules", "default_action", "users", "satisfy", "pass_auth"]} />
      <div className="card">
        <TextField form={form} path="name" label="Name" />
        <ArrayEditor
          form={form}
          path="rules"
          label="IP rules (first match wins)"
          empty="No IP rules."
          addLabel="Add rule"
          make={() => ({ action: "allow", address: "" })}
          row={(p) => (
            <div className="row2">
              <SelectField
                form={form}
                path={`${p}.action`}
                label="Action"
                options={[
                  { value: "allow", label: "Allow" },
                  { value: "deny", label: "Deny" },
                ]}
              />
              <TextField form={form} path={`${p}.address`} label="Address or CIDR" placeholder="10.0.0.0/8 or all" />
            </div>
          )}
        />
        <SelectField
          form={form}
          path="default_action"
          label="When no rule matches"
          options={[
            { value: "allow", label: "Allow" },
            { value: "deny", label: "Deny" },
          ]}
        />
        <ArrayEditor
          form={form}
          path="users"
          label="Basic-Auth users"
          empty="No users: no password is asked."
          addLabel="Add user"
          make={() => ({ username: "", password: "" })}
          row={(p) => (
            <div className="row2">
              <TextField form={form} path={`${p}.username`} label="User name" />
              <TextField
                form={form}
                path={`${p}.password`}
                label="Password"
                type="password"
                autoComplete="new-password"
                placeholder={form.get(`${p}.stored`) ? "(unchanged)" : ""}
              />
            </div>
          )}
        />
        <SelectField
          form={form}
          path="satisfy"
          label="Satisfy"
          hint="Any: the IP rules or a password let a request in. All: both must."
          options={[
            { value: "any", label: "Any" },
            { value: "all", label: "All" },
          ]}
        />
        <Toggle form={form} path="pass_auth" label="Pass the Authorization header to the upstream" />
      </div>
      <div className="actions sticky">
        <Link className="button" href="/access-lists">
          Cancel
        </Link>
        <button className="primary" type="submit" disabled={form.busy}>
          {form.busy ? "Saving…" : "Save"}
        </button>
      </div>
    </form>
  );
}
