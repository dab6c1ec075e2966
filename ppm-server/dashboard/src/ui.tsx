// Shared building blocks: data loading, banners, dialogs, confirmation.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError } from "./api";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads `fn()` on mount and when `deps` change; `reload()` loads again. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let live = true;
    setLoading(true);
    fnRef
      .current()
      .then((d) => {
        if (live) {
          setData(d);
          setError(null);
        }
      })
      .catch((e) => live && setError(e))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tick, ...deps]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** Calls `fn` every `ms` while the page is visible. */
export function useInterval(fn: () => void, ms: number | null) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (ms == null) return;
    const t = setInterval(() => {
      if (document.visibilityState !== "hidden") ref.current();
    }, ms);
    return () => clearInterval(t);
  }, [ms]);
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function ErrorBanner({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div className="banner error" role="alert">
      {errorText(error)}
    </div>
  );
}

export function Notice({ children, kind = "info" }: { children: ReactNode; kind?: "info" | "success" | "warn" }) {
  return (
    <div className={"banner " + kind} role="status">
      {children}
    </div>
  );
}

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="spinner" role="status" aria-live="polite">
      <span className="spin" aria-hidden /> {label}
    </div>
  );
}

export function Modal({ title, onClose, children, wide }: { title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  useEffect(() => {
    const k = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", k);
    return () => window.removeEventListener("keydown", k);
  }, [onClose]);
  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className={"modal" + (wide ? " wide" : "")} role="dialog" aria-modal="true" aria-label={title}>
        <div className="modal-head">
          <h2>{title}</h2>
          <button type="button" className="icon" onClick={onClose} aria-label="Close">
            ×
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

/**
 * A button that asks before doing something destructive, then runs
 * `action` showing progress and any error in the dialog.
 */
export function ConfirmButton({
  label,
  title,
  message,
  confirmLabel,
  action,
  className = "danger",
  disabled,
}: {
  label: ReactNode;
  title: string;
  message: ReactNode;
  confirmLabel?: string;
  action: () => Promise<unknown>;
  className?: string;
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const close = useCallback(() => {
    if (!busy) {
      setOpen(false);
      setError(null);
    }
  }, [busy]);
  return (
    <>
      <button className={className} onClick={() => setOpen(true)} disabled={disabled}>
        {label}
      </button>
      {open && (
        <Modal title={title} onClose={close}>
          <div className="modal-body">{message}</div>
          <ErrorBanner error={error} />
          <div className="actions">
            <button onClick={close} disabled={busy}>
              Cancel
            </button>
            <button
              className={className}
              disabled={busy}
              onClick={async () => {
                setBusy(true);
                setError(null);
                try {
                  await action();
                  setBusy(false);
                  setOpen(false);
                } catch (e) {
                  setBusy(false);
                  setError(e);
                }
              }}
            >
              {busy ? "Working…" : (confirmLabel ?? title)}
            </button>
          </div>
        </Modal>
      )}
    </>
  );
}

export function PageHead({ title, children }: { title: string; children?: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · ppm`;
  }, [title]);
  return (
    <div className="page-head">
      <h1>{title}</h1>
      <div className="page-actions">{children}</div>
    </div>
  );
}

export function formatTime(ms: number | null | undefined): string {
  if (ms == null) return "—";
  const d = new Date(ms);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

export function Badge({ children, kind = "neutral" }: { children: ReactNode; kind?: "ok" | "bad" | "warn" | "neutral" }) {
  return <span className={"badge " + kind}>{children}</span>;
}

/** Copies text to the clipboard, with a fallback for plain-HTTP origins. */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
