// The REST API client: JSON in and out, the session token in localStorage,
// and the API's error shape turned into an `ApiError`.

export interface FieldError {
  path: string;
  message: string;
}

/** An error answered by the API: `{"error": {code, message, fields}}`. */
export class ApiError extends Error {
  status: number;
  code: string;
  fields: FieldError[];
  constructor(status: number, code: string, message: string, fields: FieldError[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

const TOKEN_KEY = "ppm.session";

export interface Session {
  token: string;
  expires_at: number;
}

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(TOKEN_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (!s.token || s.expires_at * 1000 <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null) {
  if (s) localStorage.setItem(TOKEN_KEY, JSON.stringify(s));
  else localStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized: () => void = () => {};
/** Called when the API answers 401 to a signed-in request. */
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f;
}

/** Turns any failed response into an `ApiError`. */
export async function errorFrom(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // not JSON
  }
  const e = (body as { error?: { code?: string; message?: string; fields?: FieldError[] } } | null)?.error;
  if (e && typeof e.message === "string") {
    return new ApiError(res.status, e.code ?? "error", e.message, Array.isArray(e.fields) ? e.fields : []);
  }
  return new ApiError(res.status, "http_" + res.status, `${res.status} ${res.statusText || "error"}`);
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const session = loadSession();
  if (session) headers.authorization = `Bearer ${session.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let url = path;
  if (opts.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query)) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    if (s) url += "?" + s;
  }
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body, signal: opts.signal });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, "network", "cannot reach the server: " + (err as Error).message);
  }
  if (!res.ok) {
    const e = await errorFrom(res);
    if (res.status === 401 && session) onUnauthorized();
    throw e;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const api = {
  get: <T>(path: string, query?: RequestOptions["query"]) => request<T>("GET", path, { query }),
  post: <T>(path: string, body?: unknown, query?: RequestOptions["query"]) =>
    request<T>("POST", path, { body, query }),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, { body }),
  del: (path: string) => request<void>("DELETE", path),
};

/** Messages of the field errors at `path` or below it. */
export function fieldMessages(err: unknown, path: string): string[] {
  if (!(err instanceof ApiError)) return [];
  return err.fields
    .filter((f) => f.path === path || f.path.startsWith(path + ".") || f.path.startsWith(path + "["))
    .map((f) => (f.path === path ? f.message : `${f.path.slice(path.length).replace(/^\./, "")}: ${f.message}`));
}
