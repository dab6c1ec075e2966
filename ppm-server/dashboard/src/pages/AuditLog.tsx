import { useState } from "react";
import { api } from "../api";
import { diffJson } from "../diff";
import type { AuditEntry } from "../types";
import { ErrorBanner, PageHead, Spinner, formatTime, useLoad } from "../ui";
import { DiffView } from "./History";

const PAGE = 50;

export function AuditLog() {
  const first = useLoad(() => api.get<AuditEntry[]>("/api/audit-log", { limit: PAGE }));
  const [more, setMore] = useState<AuditEntry[]>([]);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [q, setQ] = useState("");
  const all = [...(first.data ?? []), ...more];
  const needle = q.trim().toLowerCase();
  const shown = all.filter((e) => !needle || `${e.actor} ${e.action} ${e.entity} ${e.entity_id ?? ""} ${e.client_ip ?? ""}`.toLowerCase().includes(needle));
  const loadMore = async () => {
    const last = all[all.length - 1];
    if (!last) return;
    setBusy(true);
    setErr(null);
    try {
      const page = await api.get<AuditEntry[]>("/api/audit-log", { before: last.id, limit: PAGE });
      setMore((m) => [...m, ...page]);
      if (page.length < PAGE) setDone(true);
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <PageHead title="Audit log">
        <button onClick={() => { setMore([]); setDone(false); first.reload(); }}>Refresh</button>
      </PageHead>
      <ErrorBanner error={first.error || err} />
      <div className="toolbar">
        <input type="search" placeholder="Filter by actor, action, entity, IP" aria-label="Filter" value={q} onChange={(e) => setQ(e.target.value)} />
      </div>
      {first.loading && !first.data ? (
        <Spinner />
      ) : (
        <div className="table-wrap">
          <table className="list">
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>Action</th>
                <th>Entity</th>
                <th>Client IP</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((e) => (
                <AuditRow key={e.id} e={e} open={open === e.id} onToggle={() => setOpen(open === e.id ? null : e.id)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {!done && (first.data?.length ?? 0) >= PAGE && (
        <button onClick={loadMore} disabled={busy}>
          {busy ? "Loading…" : "Load older entries"}
        </button>
      )}
    </>
  );
}

function AuditRow({ e, open, onToggle }: { e: AuditEntry; open: boolean; onToggle: () => void }) {
  const hasDiff = e.before != null || e.after != null;
  return (
    <>
      <tr className={hasDiff ? "clickable" : ""} onClick={hasDiff ? onToggle : undefined}>
        <td data-label="When">{formatTime(e.at)}</td>
        <td data-label="Who">{e.actor}</td>
        <td data-label="Action">{e.action}</td>
        <td data-label="Entity">
          {e.entity}
          {e.entity_id != null ? ` #${e.entity_id}` : ""} {hasDiff && <span className="muted">{open ? "▾" : "▸"}</span>}
        </td>
        <td data-label="Client IP" className="mono">
          {e.client_ip ?? "—"}
        </td>
      </tr>
      {open && (
        <tr className="detail">
          <td colSpan={5}>
            <DiffView lines={diffJson(e.before ?? undefined, e.after ?? undefined)} />
          </td>
        </tr>
      )}
    </>
  );
}
