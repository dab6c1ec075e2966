import { useState } from "react";
import { api, ApiError } from "../api";
import { useAuth, useCanWrite } from "../App";
import { diffJson, type DiffLine } from "../diff";
import { Link, navigate } from "../router";
import type { Change, RevisionChanges, RevisionInfo } from "../types";
import { ConfirmButton, ErrorBanner, Notice, PageHead, Spinner, errorText, formatTime, useLoad } from "../ui";

export function DiffView({ lines, context = 3 }: { lines: DiffLine[]; context?: number }) {
  // Unchanged runs longer than 2×context collapse to a marker.
  const keep = lines.map((l, i) => l.kind !== "same" || lines.slice(Math.max(0, i - context), i + context + 1).some((x) => x.kind !== "same"));
  const out: (DiffLine | { kind: "skip"; n: number })[] = [];
  let skipped = 0;
  lines.forEach((l, i) => {
    if (keep[i] || lines.every((x) => x.kind === "same")) {
      if (skipped) out.push({ kind: "skip", n: skipped });
      skipped = 0;
      out.push(l);
    } else skipped++;
  });
  if (skipped) out.push({ kind: "skip", n: skipped });
  return (
    <pre className="diff">
      {out.map((l, i) =>
        l.kind === "skip" ? (
          <div key={i} className="skip">
            ⋯ {l.n} unchanged line{l.n === 1 ? "" : "s"}
          </div>
        ) : (
          <div key={i} className={l.kind}>
            {l.kind === "add" ? "+ " : l.kind === "del" ? "- " : "  "}
            {l.text}
          </div>
        ),
      )}
    </pre>
  );
}

const KIND_NAMES: Record<string, string> = {
  proxy_host: "proxy host",
  redirection_host: "redirection host",
  dead_host: "404 host",
  stream: "stream",
  access_list: "access list",
  certificate: "certificate",
};

function changeTitle(c: Change): string {
  switch (c.op) {
    case "create":
      return `Created ${KIND_NAMES[c.after.kind] ?? c.after.kind} #${c.after.value.id}`;
    case "update":
      return `Changed ${KIND_NAMES[c.after.kind] ?? c.after.kind} #${c.after.value.id}`;
    case "delete":
      return `Deleted ${KIND_NAMES[c.before.kind] ?? c.before.kind} #${c.before.value.id}`;
    case "settings":
      return "Changed the settings";
    default:
      return "Replaced the whole config (import or rollback)";
  }
}

function ChangeView({ c }: { c: Change }) {
  const [before, after] =
    c.op === "create" ? [undefined, c.after.value] : c.op === "update" ? [c.before.value, c.after.value] : c.op === "delete" ? [c.before.value, undefined] : c.op === "settings" ? [c.before, c.after] : [undefined, undefined];
  return (
    <div className="change">
      <h3>{changeTitle(c)}</h3>
      {c.op !== "replace_all" && <DiffView lines={diffJson(before, after)} />}
    </div>
  );
}

const PAGE = 50;

// Survives the navigation to the new revision's page.
let flash: string | null = null;

export function History({ selected }: { selected?: number }) {
  const [pages, setPages] = useState<RevisionInfo[][]>([]);
  const first = useLoad(() => api.get<RevisionInfo[]>("/api/config/history", { limit: PAGE }));
  const revisions = [...(first.data ?? []), ...pages.flat()];
  const [busy, setBusy] = useState(false);
  const [notice] = useState(() => {
    const f = flash;
    flash = null;
    return f;
  });
  const canWrite = useCanWrite();
  const current = revisions[0]?.revision;
  const sel = selected ?? current;
  const changes = useLoad(() => (sel == null ? Promise.resolve(undefined) : api.get<RevisionChanges>(`/api/config/history/${sel}`)), [sel]);
  const more = async () => {
    const last = revisions[revisions.length - 1];
    setBusy(true);
    try {
      const p = await api.get<RevisionInfo[]>("/api/config/history", { before: last.revision, limit: PAGE });
      setPages((ps) => [...ps, p]);
    } finally {
      setBusy(false);
    }
  };
  const hasMore = (pages.length ? pages[pages.length - 1].length : (first.data?.length ?? 0)) >= PAGE;
  return (
    <>
      <PageHead title="Config history" />
      <p className="muted">Every change is a revision. Pick one to see what it changed; roll back to restore the config as it was right after it.</p>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ErrorBanner error={first.error} />
      {first.loading && !first.data ? (
        <Spinner />
      ) : (
        <div className="split">
          <div className="revisions card">
            <ul>
              {revisions.map((r) => (
                <li key={r.revision} className={r.revision === sel ? "active" : ""}>
                  <Link href={`/history/${r.revision}`}>
                    <span className="rev">#{r.revision}</span> {r.summary}
                    <div className="muted small">
                      {formatTime(r.at)} · {r.actor}
                    </div>
                  </Link>
                </li>
              ))}
            </ul>
            {hasMore && (
              <button className="small" onClick={more} disabled={busy}>
                {busy ? "Loading…" : "Older revisions"}
              </button>
            )}
          </div>
          <div className="revision-detail card">
            {changes.error ? (
              <ErrorBanner error={changes.error} />
            ) : !changes.data ? (
              <Spinner />
            ) : (
              <>
                <div className="page-head">
                  <h2>
                    Revision {changes.data.info.revision}
                    {changes.data.info.revision === current && <span className="badge ok">serving</span>}
                  </h2>
                  {canWrite && changes.data.info.revision !== current && (
                    <ConfirmButton
                      className="primary"
                      label={`Roll back to #${changes.data.info.revision}`}
                      title="Roll back"
                      confirmLabel="Roll back"
                      message={
                        <>
                          Restore the whole config as it was at revision <strong>#{changes.data.info.revision}</strong>? Every change made since then
                          is undone (as a new revision, so this too can be undone).
                        </>
                      }
                      action={async () => {
                        const r = await api.post<{ restored: number; revision: number }>(`/api/config/rollback/${changes.data!.info.revision}`);
                        flash = `Rolled back to #${r.restored}; the config now serving is revision #${r.revision}.`;
                        navigate(`/history/${r.revision}`);
                      }}
                    />
                  )}
                </div>
                <p className="muted">
                  {changes.data.info.summary} · {formatTime(changes.data.info.at)} · {changes.data.info.actor}
                  {changes.data.info.client_ip ? ` from ${changes.data.info.client_ip}` : ""}
                </p>
                {changes.data.changes.length === 0 && <p className="muted">No entity changes recorded.</p>}
                {changes.data.changes.map((c, i) => (
                  <ChangeView key={i} c={c} />
                ))}
              </>
            )}
          </div>
        </div>
      )}
    </>
  );
}

interface ImportResult {
  dry_run: boolean;
  revision: number;
  counts: Record<string, number>;
}

export function ExportImport() {
  const { user } = useAuth();
  const canWrite = useCanWrite();
  const [secrets, setSecrets] = useState(false);
  const [exportErr, setExportErr] = useState<unknown>(null);
  const [doc, setDoc] = useState<unknown>(null);
  const [fileName, setFileName] = useState("");
  const [phase, setPhase] = useState<"idle" | "checking" | "checked" | "importing" | "done">("idle");
  const [result, setResult] = useState<ImportResult | null>(null);
  const [importErr, setImportErr] = useState<unknown>(null);

  const download = async () => {
    setExportErr(null);
    try {
      const d = await api.get<{ revision: number }>("/api/config/export", { secrets: secrets || undefined });
      const blob = new Blob([JSON.stringify(d, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `ppm-config-r${d.revision}.json`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (e) {
      setExportErr(e);
    }
  };
  const pick = async (f: File | undefined) => {
    setResult(null);
    setImportErr(null);
    setDoc(null);
    setPhase("idle");
    if (!f) return;
    setFileName(f.name);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await f.text());
    } catch (e) {
      setImportErr(new Error(`${f.name} is not JSON: ${errorText(e)}`));
      return;
    }
    setDoc(parsed);
    setPhase("checking");
    try {
      setResult(await api.post<ImportResult>("/api/config/import", parsed, { dry_run: true }));
      setPhase("checked");
    } catch (e) {
      setImportErr(e);
      setPhase("idle");
    }
  };
  const apply = async () => {
    setPhase("importing");
    setImportErr(null);
    try {
      setResult(await api.post<ImportResult>("/api/config/import", doc));
      setPhase("done");
    } catch (e) {
      setImportErr(e);
      setPhase("checked");
    }
  };
  return (
    <>
      <PageHead title="Export & import" />
      <div className="card">
        <h2>Export</h2>
        <p>Download the whole config as one JSON document (a backup, or to move it to another server).</p>
        {user.role === "admin" && (
          <label className="check">
            <input type="checkbox" checked={secrets} onChange={(e) => setSecrets(e.target.checked)} /> Include private keys and password hashes
          </label>
        )}
        <ErrorBanner error={exportErr} />
        <div className="actions left">
          <button className="primary" onClick={download}>
            Download export
          </button>
        </div>
      </div>
      {canWrite && (
        <div className="card">
          <h2>Import</h2>
          <p>
            Replace the whole config with an exported document. It is checked first and nothing changes until you confirm; the current config stays in
            the history.
          </p>
          <input type="file" accept="application/json,.json" aria-label="Config file" onChange={(e) => pick(e.target.files?.[0])} />
          {phase === "checking" && <Spinner label={`Checking ${fileName}…`} />}
          {importErr != null && (
            <div className="banner error" role="alert">
              {errorText(importErr)}
              {importErr instanceof ApiError && importErr.fields.length > 0 && (
                <ul>
                  {importErr.fields.map((f, i) => (
                    <li key={i}>
                      <code>{f.path}</code>: {f.message}
                    </li>
                  ))}
                </ul>
              )}
            </div>
          )}
          {result && (phase === "checked" || phase === "importing") && (
            <div className="banner info">
              <p>
                <strong>{fileName}</strong> is valid. Importing it replaces the current config with:
              </p>
              <Counts counts={result.counts} />
              <div className="actions left">
                <ConfirmButton
                  className="primary"
                  label="Import"
                  title="Import config"
                  confirmLabel="Replace the config"
                  message={<>Replace the whole config with {fileName}? What is serving now stays in the history for a rollback.</>}
                  action={apply}
                  disabled={phase === "importing"}
                />
              </div>
            </div>
          )}
          {phase === "importing" && <Spinner label="Importing…" />}
          {phase === "done" && result && (
            <Notice kind="success">
              Imported {fileName}: revision #{result.revision} is serving. <Link href={`/history/${result.revision}`}>See the history</Link>.
            </Notice>
          )}
        </div>
      )}
    </>
  );
}

function Counts({ counts }: { counts: Record<string, number> }) {
  return (
    <ul className="counts">
      {Object.entries(counts).map(([k, v]) => (
        <li key={k}>
          <strong>{v}</strong> {k.replace(/_/g, " ")}
        </li>
      ))}
    </ul>
  );
}
