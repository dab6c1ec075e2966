import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api, loadSession, saveSession, setUnauthorizedHandler, ApiError } from "./api";
import { Link, match, navigate, usePath } from "./router";
import type { User } from "./types";
import { useForm, TextField, FormError } from "./form";
import { Spinner } from "./ui";
import { Overview } from "./pages/Overview";
import { ProxyHosts, ProxyHostEdit } from "./pages/ProxyHosts";
import { RedirectionHosts, DeadHosts } from "./pages/OtherHosts";
import { Streams } from "./pages/Streams";
import { AccessLists, AccessListEdit } from "./pages/AccessLists";
import { Certificates } from "./pages/Certificates";
import { DnsProviders } from "./pages/DnsProviders";
import { Users } from "./pages/Users";
import { Tokens } from "./pages/Tokens";
import { AuditLog } from "./pages/AuditLog";
import { History, ExportImport } from "./pages/History";
import { SettingsPage, Account } from "./pages/Settings";
import { AccessLog } from "./pages/Traffic";

/** Optional APIs this server has, from its OpenAPI document. */
export interface Features {
  stats: boolean;
  logs: boolean;
}

const FeaturesContext = createContext<Features>({ stats: false, logs: false });

export function useFeatures(): Features {
  return useContext(FeaturesContext);
}

async function loadFeatures(): Promise<Features> {
  try {
    const doc = await api.get<{ paths?: Record<string, unknown> }>("/api/openapi.json");
    const paths = doc.paths ?? {};
    return { stats: "/api/stats/summary" in paths, logs: "/api/logs/access" in paths };
  } catch {
    return { stats: false, logs: false };
  }
}

interface AuthState {
  user: User;
  logout: () => void;
  refresh: () => Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

export function useAuth(): AuthState {
  const a = useContext(AuthContext);
  if (!a) throw new Error("useAuth outside the signed-in app");
  return a;
}

/** Whether the signed-in user may change config. */
export function useCanWrite(): boolean {
  const { user } = useAuth();
  return user.role !== "viewer";
}

interface Route {
  path: string;
  title: string;
  nav?: string;
  page: (p: Record<string, string>) => ReactNode;
  admin?: boolean;
  needs?: keyof Features;
}

// Pages in navigation order. Pages whose API this server lacks are absent.
const ROUTES: Route[] = [
  { path: "/", title: "Overview", nav: "Overview", page: () => <Overview /> },
  { path: "/proxy-hosts", title: "Proxy hosts", nav: "Proxy hosts", page: () => <ProxyHosts /> },
  { path: "/proxy-hosts/new", title: "New proxy host", page: () => <ProxyHostEdit id={null} /> },
  { path: "/proxy-hosts/:id", title: "Proxy host", page: (p) => <ProxyHostEdit id={Number(p.id)} /> },
  { path: "/redirection-hosts", title: "Redirection hosts", nav: "Redirection hosts", page: () => <RedirectionHosts /> },
  { path: "/dead-hosts", title: "404 hosts", nav: "404 hosts", page: () => <DeadHosts /> },
  { path: "/streams", title: "Streams", nav: "Streams", page: () => <Streams /> },
  { path: "/access-lists", title: "Access lists", nav: "Access lists", page: () => <AccessLists /> },
  { path: "/access-lists/new", title: "New access list", page: () => <AccessListEdit id={null} /> },
  { path: "/access-lists/:id", title: "Access list", page: (p) => <AccessListEdit id={Number(p.id)} /> },
  { path: "/certificates", title: "Certificates", nav: "Certificates", page: () => <Certificates /> },
  { path: "/dns-providers", title: "DNS providers", nav: "DNS providers", page: () => <DnsProviders /> },
  { path: "/users", title: "Users", nav: "Users & roles", page: () => <Users />, admin: true },
  { path: "/tokens", title: "API tokens", nav: "API tokens", page: () => <Tokens /> },
  { path: "/access-log", title: "Access log", nav: "Access log", page: () => <AccessLog />, needs: "logs" },
  { path: "/audit-log", title: "Audit log", nav: "Audit log", page: () => <AuditLog /> },
  { path: "/history", title: "Config history", nav: "Config history", page: () => <History /> },
  { path: "/history/:rev", title: "Config history", page: (p) => <History selected={Number(p.rev)} /> },
  { path: "/export", title: "Export & import", nav: "Export & import", page: () => <ExportImport /> },
  { path: "/settings", title: "Settings", nav: "Settings", page: () => <SettingsPage /> },
  { path: "/account", title: "Account", page: () => <Account /> },
];

export function App() {
  const [user, setUser] = useState<User | null>(null);
  const [checking, setChecking] = useState(true);
  const [features, setFeatures] = useState<Features>({ stats: false, logs: false });
  const logout = useCallback(() => {
    saveSession(null);
    setUser(null);
  }, []);
  const refresh = useCallback(async () => {
    setUser(await api.get<User>("/api/auth/me"));
  }, []);
  useEffect(() => {
    setUnauthorizedHandler(logout);
    loadFeatures().then(setFeatures);
    if (!loadSession()) {
      setChecking(false);
      return;
    }
    refresh()
      .catch(() => logout())
      .finally(() => setChecking(false));
  }, [logout, refresh]);

  if (checking) return <Spinner />;
  if (!user) return <Login onLogin={setUser} />;
  if (user.must_change_password) return <ChoosePassword user={user} onDone={setUser} onCancel={logout} />;
  return (
    <AuthContext.Provider value={{ user, logout, refresh }}>
      <FeaturesContext.Provider value={features}>
        <Shell />
      </FeaturesContext.Provider>
    </AuthContext.Provider>
  );
}

function Login({ onLogin }: { onLogin: (u: User) => void }) {
  const form = useForm({ email: "", password: "" });
  useEffect(() => {
    document.title = "Sign in · ppm";
  }, []);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await form.run(() => api.post<{ token: string; expires_at: number; user: User }>("/api/auth/login", form.value));
    if (r) {
      saveSession({ token: r.token, expires_at: r.expires_at });
      onLogin(r.user);
    }
  };
  return (
    <div className="login-wrap">
      <form className="card login" onSubmit={submit}>
        <div className="brand big">
          <Logo /> ppm
        </div>
        <p className="muted">Pingora Proxy Manager</p>
        <FormError form={form} shown={["email", "password"]} />
        <TextField form={form} path="email" label="Email" type="email" autoComplete="username" />
        <TextField form={form} path="password" label="Password" type="password" autoComplete="current-password" />
        <button className="primary wide" type="submit" disabled={form.busy}>
          {form.busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint">
          First run? The server printed the admin's email and a one-time password when it created its database (or used
          <code>PPM_ADMIN_EMAIL</code>/<code>PPM_ADMIN_PASSWORD</code>). Change it under Account once signed in.
        </p>
      </form>
    </div>
  );
}

/** A generated or admin-set password must be replaced before the rest of
 * the API answers; the user signs in again with the new one at once. */
export function ChoosePassword({ user, onDone, onCancel }: { user: User; onDone: (u: User) => void; onCancel: () => void }) {
  const form = useForm({ current_password: "", new_password: "", confirm: "" });
  useEffect(() => {
    document.title = "Choose a new password · ppm";
  }, []);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (form.value.new_password !== form.value.confirm) {
      form.setError(new ApiError(422, "invalid", "the passwords differ", [{ path: "confirm", message: "does not match the new password" }]));
      return;
    }
    const r = await form.run(async () => {
      await api.post("/api/auth/password", { current_password: form.value.current_password, new_password: form.value.new_password });
      // The change ended this session: sign in with the new password.
      return api.post<{ token: string; expires_at: number; user: User }>("/api/auth/login", {
        email: user.email,
        password: form.value.new_password,
      });
    });
    if (r) {
      saveSession({ token: r.token, expires_at: r.expires_at });
      onDone(r.user);
    }
  };
  return (
    <div className="login-wrap">
      <form className="card login" onSubmit={submit} noValidate>
        <h1>Choose a new password</h1>
        <p className="muted">
          The password of <strong>{user.email}</strong> was generated or set by an administrator. Choose your own before
          going on.
        </p>
        <FormError form={form} shown={["current_password", "new_password", "confirm"]} />
        <TextField form={form} path="current_password" label="Current password" type="password" autoComplete="current-password" />
        <TextField form={form} path="new_password" label="New password" type="password" autoComplete="new-password" hint="At least 12 characters." />
        <TextField form={form} path="confirm" label="New password again" type="password" autoComplete="new-password" />
        <button className="primary wide" type="submit" disabled={form.busy}>
          {form.busy ? "Saving…" : "Set password and continue"}
        </button>
        <button type="button" className="link" onClick={onCancel}>
          Sign out
        </button>
      </form>
    </div>
  );
}

function Logo() {
  return (
    <svg width="28" height="28" viewBox="0 0 32 32" aria-hidden>
      <rect width="32" height="32" rx="7" fill="#2563eb" />
      <path d="M8 23V9h8a5 5 0 0 1 0 10h-4v4z" fill="#fff" />
    </svg>
  );
}

function Shell() {
  const path = usePath();
  const { user, logout } = useAuth();
  const [menu, setMenu] = useState(false);
  const features = useFeatures();
  useEffect(() => setMenu(false), [path]);
  const routes = ROUTES.filter((r) => !r.needs || features[r.needs]);
  let found: { route: Route; params: Record<string, string> } | null = null;
  for (const route of routes) {
    const params = match(route.path, path);
    if (params) {
      found = { route, params };
      break;
    }
  }
  const navItems = routes.filter((r) => r.nav && (!r.admin || user.role === "admin"));
  const active = (r: Route) => (r.path === "/" ? path === "/" : path === r.path || path.startsWith(r.path + "/"));
  return (
    <div className={"shell" + (menu ? " menu-open" : "")}>
      <header className="topbar">
        <button className="icon menu-btn" aria-label="Menu" aria-expanded={menu} onClick={() => setMenu((m) => !m)}>
          ☰
        </button>
        <Link href="/" className="brand">
          <Logo /> ppm
        </Link>
        <div className="spacer" />
        <Link href="/account" className="user" title="Account">
          {user.name || user.email} <span className="muted">({user.role})</span>
        </Link>
        <button className="link" onClick={logout}>
          Sign out
        </button>
      </header>
      <nav className="sidebar" aria-label="Main">
        {navItems.map((r) => (
          <Link key={r.path} href={r.path} className={active(r) ? "active" : ""} aria-current={active(r) ? "page" : undefined}>
            {r.nav}
          </Link>
        ))}
      </nav>
      <main className="content">
        {found ? (
          <ErrorBoundaryPage key={path}>{found.route.page(found.params)}</ErrorBoundaryPage>
        ) : (
          <div className="card">
            <h1>Not found</h1>
            <p>
              No page at <code>{path}</code>. <Link href="/">Go to the overview</Link>.
            </p>
          </div>
        )}
      </main>
    </div>
  );
}

function ErrorBoundaryPage({ children }: { children: ReactNode }) {
  return <>{children}</>;
}

export { navigate, ApiError };
