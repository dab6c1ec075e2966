// Form state addressed by the API's own field paths (`upstreams[0].port`), so
// a validation error from the API lands next to the input that holds it.
import { useCallback, useState, type ReactNode } from "react";
import { ApiError, fieldMessages } from "./api";

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Json = any;

/** `a.b[2].c` → `["a", "b", 2, "c"]`. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path))) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

export function getIn(obj: Json, path: string): Json {
  let cur = obj;
  for (const k of parsePath(path)) {
    if (cur == null) return undefined;
    cur = cur[k as any];
  }
  return cur;
}

/** A copy of `obj` with `path` set to `value` (copies along the path only). */
export function setIn(obj: Json, path: string, value: Json): Json {
  const keys = parsePath(path);
  const rec = (cur: Json, i: number): Json => {
    if (i === keys.length) return value;
    const k = keys[i];
    const base = cur ?? (typeof k === "number" ? [] : {});
    const copy = Array.isArray(base) ? [...base] : { ...base };
    (copy as any)[k] = rec((base as any)[k], i + 1);
    return copy;
  };
  return rec(obj, 0);
}

export interface Form<T = Json> {
  value: T;
  get: (path: string) => Json;
  set: (path: string, v: Json) => void;
  replace: (v: T) => void;
  error: unknown;
  setError: (e: unknown) => void;
  errors: (path: string) => string[];
  busy: boolean;
  /** Runs `action`, keeping `busy` and `error` up to date. */
  run: <R>(action: () => Promise<R>) => Promise<R | undefined>;
}

export function useForm<T = Json>(initial: T): Form<T> {
  const [value, setValue] = useState<T>(initial);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = useCallback((path: string, v: Json) => setValue((cur) => setIn(cur, path, v)), []);
  const run = useCallback(async <R,>(action: () => Promise<R>) => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return {
    value,
    get: (p) => getIn(value, p),
    set,
    replace: setValue,
    error,
    setError,
    errors: (p) => fieldMessages(error, p),
    busy,
    run,
  };
}

let idSeq = 0;
const nextId = () => `f${++idSeq}`;

export function FieldErrors({ messages }: { messages: string[] }) {
  if (messages.length === 0) return null;
  return (
    <div className="field-error" role="alert">
      {messages.map((m, i) => (
        <div key={i}>{m}</div>
      ))}
    </div>
  );
}

interface FieldProps {
  form: Form;
  path: string;
  label: string;
  hint?: ReactNode;
  /** Also show errors of these paths here. */
  alsoErrors?: string[];
}

export function Field({ form, path, label, hint, alsoErrors, children, id }: FieldProps & { children: ReactNode; id: string }) {
  const msgs = [path, ...(alsoErrors ?? [])].flatMap((p) => form.errors(p));
  return (
    <div className={"field" + (msgs.length ? " has-error" : "")} data-path={path}>
      <label htmlFor={id}>{label}</label>
      {children}
      {hint && <div className="hint">{hint}</div>}
      <FieldErrors messages={msgs} />
    </div>
  );
}

export function TextField(
  props: FieldProps & { placeholder?: string; type?: string; multiline?: boolean; rows?: number; autoComplete?: string; emptyAsNull?: boolean },
) {
  const [id] = useState(nextId);
  const v = props.form.get(props.path);
  const onChange = (s: string) => props.form.set(props.path, props.emptyAsNull && s === "" ? null : s);
  return (
    <Field {...props} id={id}>
      {props.multiline ? (
        <textarea id={id} name={props.path} rows={props.rows ?? 6} placeholder={props.placeholder} value={v ?? ""} onChange={(e) => onChange(e.target.value)} />
      ) : (
        <input
          id={id}
          name={props.path}
          type={props.type ?? "text"}
          autoComplete={props.autoComplete ?? "off"}
          placeholder={props.placeholder}
          value={v ?? ""}
          onChange={(e) => onChange(e.target.value)}
        />
      )}
    </Field>
  );
}

/** A number input; empty is `null` when `optional`. */
export function NumberField(props: FieldProps & { min?: number; max?: number; optional?: boolean; placeholder?: string }) {
  const [id] = useState(nextId);
  const v = props.form.get(props.path);
  const [text, setText] = useState<string>(v == null ? "" : String(v));
  const shown = text !== "" && Number(text) === v ? text : v == null ? (text === "" ? "" : text) : String(v);
  return (
    <Field {...props} id={id}>
      <input
        id={id}
        name={props.path}
        inputMode="numeric"
        min={props.min}
        max={props.max}
        placeholder={props.placeholder}
        value={shown}
        onChange={(e) => {
          const s = e.target.value.trim();
          setText(s);
          if (s === "") props.form.set(props.path, props.optional ? null : 0);
          else if (/^-?\d+$/.test(s)) props.form.set(props.path, Number(s));
          else props.form.set(props.path, s); // the API names the field
        }}
      />
    </Field>
  );
}

export function Toggle({ form, path, label, hint }: FieldProps) {
  const [id] = useState(nextId);
  const msgs = form.errors(path);
  return (
    <div className={"field toggle" + (msgs.length ? " has-error" : "")} data-path={path}>
      <label htmlFor={id}>
        <input id={id} name={path} type="checkbox" checked={!!form.get(path)} onChange={(e) => form.set(path, e.target.checked)} />
        <span>{label}</span>
      </label>
      {hint && <div className="hint">{hint}</div>}
      <FieldErrors messages={msgs} />
    </div>
  );
}

export function SelectField(
  props: FieldProps & { options: { value: string; label: string }[]; parse?: (s: string) => Json; format?: (v: Json) => string },
) {
  const [id] = useState(nextId);
  const v = props.form.get(props.path);
  const format = props.format ?? ((x: Json) => (x == null ? "" : String(x)));
  return (
    <Field {...props} id={id}>
      <select id={id} name={props.path} value={format(v)} onChange={(e) => props.form.set(props.path, props.parse ? props.parse(e.target.value) : e.target.value)}>
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </Field>
  );
}

/** A list of strings edited as text, one per line or separated by commas. */
export function ListField(props: FieldProps & { placeholder?: string; rows?: number }) {
  const [id] = useState(nextId);
  const v: string[] = props.form.get(props.path) ?? [];
  const [text, setText] = useState(v.join("\n"));
  const list = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  // Keep the text when the list it parses to is the stored one.
  const shown = list.join("\n") === v.join("\n") ? text : v.join("\n");
  // Errors at `domain_names[2]` name the entry.
  const itemMsgs = props.form.error instanceof ApiError ? props.form.error.fields.filter((f) => f.path.startsWith(props.path + "[")) : [];
  const named = itemMsgs.map((f) => {
    const m = /^\[(\d+)\]/.exec(f.path.slice(props.path.length));
    const entry = m ? v[Number(m[1])] : undefined;
    return entry !== undefined ? `${entry}: ${f.message}` : f.message;
  });
  const own = props.form.errors(props.path).filter((m) => !m.startsWith("["));
  return (
    <div className={"field" + (own.length + named.length ? " has-error" : "")} data-path={props.path}>
      <label htmlFor={id}>{props.label}</label>
      <textarea
        id={id}
        name={props.path}
        rows={props.rows ?? Math.min(6, Math.max(2, v.length + 1))}
        placeholder={props.placeholder}
        value={shown}
        onChange={(e) => {
          setText(e.target.value);
          props.form.set(
            props.path,
            e.target.value
              .split(/[\s,]+/)
              .map((s) => s.trim())
              .filter(Boolean),
          );
        }}
      />
      {props.hint && <div className="hint">{props.hint}</div>}
      <FieldErrors messages={[...own, ...named]} />
    </div>
  );
}

/** The form's overall error: its message, plus field errors no input shows. */
export function FormError({ form, shown }: { form: Form; shown?: string[] }) {
  const e = form.error;
  if (!e) return null;
  const msg = e instanceof Error ? e.message : String(e);
  const others =
    e instanceof ApiError && shown ? e.fields.filter((f) => !shown.some((p) => f.path === p || f.path.startsWith(p + ".") || f.path.startsWith(p + "["))) : [];
  return (
    <div className="banner error" role="alert">
      <strong>{e instanceof ApiError && e.fields.length ? "Please fix the highlighted fields" : "Error"}:</strong> {msg}
      {others.length > 0 && (
        <ul>
          {others.map((f, i) => (
            <li key={i}>
              <code>{f.path || "(body)"}</code>: {f.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
