// A list page with a create/edit dialog, for the entities whose form fits in
// one dialog (redirection hosts, 404 hosts, streams).
import { useMemo, useState, type ReactNode } from "react";
import { api } from "../api";
import { useCanWrite } from "../App";
import { FormError, useForm, type Form, type Json } from "../form";
import { Badge, ConfirmButton, ErrorBanner, Modal, Notice, PageHead, Spinner, useLoad } from "../ui";

export interface Column<T> {
  label: string;
  cell: (item: T) => ReactNode;
}

export function EntityPage<T extends { id: number; enabled?: boolean }>({
  title,
  noun,
  path,
  columns,
  make,
  fields,
  describe,
  search,
  shownFields,
  intro,
  toBody,
}: {
  title: string;
  noun: string;
  path: string;
  columns: Column<T>[];
  make: () => Json;
  fields: (form: Form) => ReactNode;
  describe: (item: T) => string;
  search: (item: T) => string;
  shownFields: string[];
  intro?: ReactNode;
  /** The request body for a form value (default: the value as it is). */
  toBody?: (value: Json) => Json;
}) {
  // Entities without an enabled flag have no status column.
  const hasStatus = make().enabled !== undefined;
  const items = useLoad(() => api.get<T[]>(path));
  const [editing, setEditing] = useState<Json | null>(null);
  const [q, setQ] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const canWrite = useCanWrite();
  const shown = useMemo(() => (items.data ?? []).filter((i) => search(i).toLowerCase().includes(q.trim().toLowerCase())), [items.data, q, search]);
  const toggle = async (item: T) => {
    setErr(null);
    try {
      await api.put(`${path}/${item.id}`, { ...item, enabled: !item.enabled });
      items.reload();
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <>
      <PageHead title={title}>
        {canWrite && (
          <button className="primary" onClick={() => setEditing(make())}>
            Add {noun}
          </button>
        )}
      </PageHead>
      {intro}
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={items.error || err} />
      <div className="toolbar">
        <input type="search" placeholder="Search" aria-label="Search" value={q} onChange={(e) => setQ(e.target.value)} />
        <span className="muted">
          {shown.length} of {items.data?.length ?? 0}
        </span>
      </div>
      {items.loading && !items.data ? (
        <Spinner />
      ) : shown.length === 0 ? (
        <div className="empty card">{q ? `No ${noun} matches.` : `No ${noun}s yet.`}</div>
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                {columns.map((c) => (
                  <th key={c.label}>{c.label}</th>
                ))}
                {hasStatus && <th>Status</th>}
                <th />
              </tr>
            </thead>
            <tbody>
              {shown.map((item) => (
                <tr key={item.id}>
                  {columns.map((c) => (
                    <td key={c.label} data-label={c.label}>
                      {c.cell(item)}
                    </td>
                  ))}
                  {hasStatus && (
                    <td data-label="Status">{item.enabled === false ? <Badge>Disabled</Badge> : <Badge kind="ok">Active</Badge>}</td>
                  )}
                  <td className="row-actions">
                    {canWrite && (
                      <>
                        <button className="small" onClick={() => setEditing(item)}>
                          Edit
                        </button>
                        {item.enabled !== undefined && (
                          <button className="small" onClick={() => toggle(item)}>
                            {item.enabled ? "Disable" : "Enable"}
                          </button>
                        )}
                        <ConfirmButton
                          className="small danger"
                          label="Delete"
                          title={`Delete ${noun}`}
                          confirmLabel="Delete"
                          message={
                            <>
                              Delete <strong>{describe(item)}</strong>? It stops at once; config history keeps it for a rollback.
                            </>
                          }
                          action={async () => {
                            await api.del(`${path}/${item.id}`);
                            setNotice(`Deleted ${describe(item)}.`);
                            items.reload();
                          }}
                        />
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {editing && (
        <EntityDialog
          noun={noun}
          path={path}
          initial={editing}
          fields={fields}
          shownFields={shownFields}
          toBody={toBody}
          onClose={() => setEditing(null)}
          onSaved={(saved) => {
            setEditing(null);
            setNotice(`Saved ${describe(saved as T)}.`);
            items.reload();
          }}
        />
      )}
    </>
  );
}

function EntityDialog({
  noun,
  path,
  initial,
  fields,
  shownFields,
  toBody,
  onClose,
  onSaved,
}: {
  noun: string;
  path: string;
  initial: Json;
  fields: (form: Form) => ReactNode;
  shownFields: string[];
  toBody?: (value: Json) => Json;
  onClose: () => void;
  onSaved: (saved: Json) => void;
}) {
  const form = useForm<Json>(initial);
  const isNew = !initial.id;
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const body = toBody ? toBody(form.value) : form.value;
    const saved = await form.run(() => (isNew ? api.post<Json>(path, body) : api.put<Json>(`${path}/${initial.id}`, body)));
    if (saved) onSaved(saved);
  };
  return (
    <Modal title={isNew ? `New ${noun}` : `Edit ${noun}`} onClose={onClose} wide>
      <form onSubmit={save} noValidate>
        <div className="modal-body">
          <FormError form={form} shown={shownFields} />
          {fields(form)}
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
