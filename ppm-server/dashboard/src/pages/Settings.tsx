import { useState } from "react";
import { api, ApiError } from "../api";
import { useAuth, useCanWrite } from "../App";
import { FormError, ListField, SelectField, TextField, Toggle, useForm, type Json } from "../form";
import type { AcmeSettings, Certificate, ProxyHost, Settings } from "../types";
import { ErrorBanner, Notice, PageHead, Spinner, useLoad } from "../ui";

export function SettingsPage() {
  const settings = useLoad(() => api.get<Settings>("/api/settings"));
  if (settings.error) return <ErrorBanner error={settings.error} />;
  if (!settings.data) return <Spinner />;
  return (
    <>
      <SettingsForm initial={settings.data} />
      <AcmeSettingsSection />
    </>
  );
}

const ACME_FIELDS = ["directory_url", "email", "ca_roots", "eab_key_id"] as const;

const CAS = [
  { value: "https://acme-v02.api.letsencrypt.org/directory", label: "Let's Encrypt" },
  { value: "https://acme-staging-v02.api.letsencrypt.org/directory", label: "Let's Encrypt staging (untrusted test certificates)" },
  { value: "https://acme.zerossl.com/v2/DV90", label: "ZeroSSL (needs EAB)" },
];

/** The ACME CA and account settings (`/api/settings/acme`). A field set here
 * overrides the server's command-line setting; "Use server defaults" drops
 * every override. */
function AcmeSettingsSection() {
  const loaded = useLoad(() => api.get<AcmeSettings>("/api/settings/acme"));
  if (loaded.error) {
    return (
      <div className="card">
        <h2>Certificates (ACME)</h2>
        <ErrorBanner error={loaded.error} />
      </div>
    );
  }
  if (!loaded.data) return <Spinner />;
  return <AcmeSettingsForm initial={loaded.data} />;
}

function AcmeSettingsForm({ initial }: { initial: AcmeSettings }) {
  const start = (a: AcmeSettings): Json => ({ ...a, eab_hmac: "" });
  const form = useForm<Json>(start(initial));
  const [base, setBase] = useState<AcmeSettings>(initial);
  const [saved, setSaved] = useState<string | null>(null);
  const canWrite = useCanWrite();
  const put = async (body: Json, message: string) => {
    setSaved(null);
    const r = await form.run(() => api.put<AcmeSettings>("/api/settings/acme", body));
    if (r) {
      setBase(r);
      form.replace(start(r));
      setSaved(message);
    }
  };
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const v = form.value;
    const body: Json = {};
    // Keep earlier overrides and add the fields changed now.
    for (const k of ACME_FIELDS) {
      if (base.overridden.includes(k) || (v[k] ?? "") !== (base[k] ?? "")) body[k] = v[k] ?? "";
    }
    if (v.eab_hmac) body.eab_hmac = v.eab_hmac;
    await put(body, "ACME settings saved; they apply to the next order.");
  };
  const overridden = (k: string) => (base.overridden.includes(k) ? "Set here (overrides the command line)." : "From the command line.");
  return (
    <form className="card" onSubmit={save} noValidate>
      <h2>Certificates (ACME)</h2>
      <p className="muted">The certificate authority that issues and renews ACME certificates, and the account ppm registers with it.</p>
      {saved && <Notice kind="success">{saved}</Notice>}
      <FormError form={form} shown={[...ACME_FIELDS, "eab_hmac"]} />
      <TextField form={form} path="directory_url" label="Directory URL" hint={overridden("directory_url")} />
      <div className="presets">
        {CAS.map((c) => (
          <button type="button" key={c.value} className="small" onClick={() => form.set("directory_url", c.value)}>
            {c.label}
          </button>
        ))}
      </div>
      <TextField form={form} path="email" label="Contact email" type="email" hint={`Expiry and account notices from the CA. ${overridden("email")}`} />
      <TextField form={form} path="ca_roots" label="Extra CA roots (PEM file on the server)" hint={`For a private CA such as step-ca. ${overridden("ca_roots")}`} />
      <div className="row3">
        <TextField form={form} path="eab_key_id" label="EAB key id" hint="External account binding, for CAs that need it (ZeroSSL, Google)." />
        <TextField
          form={form}
          path="eab_hmac"
          label="EAB HMAC key"
          type="password"
          hint={base.eab_hmac_set ? "Set; leave empty to keep it." : "Not set."}
        />
      </div>
      {canWrite && (
        <div className="actions left">
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Saving…" : "Save ACME settings"}
          </button>
          {base.overridden.length > 0 && (
            <button type="button" disabled={form.busy} onClick={() => put({}, "ACME settings reset to the server's command-line settings.")}>
              Use server defaults
            </button>
          )}
        </div>
      )}
    </form>
  );
}

function SettingsForm({ initial }: { initial: Settings }) {
  const form = useForm<Json>(initial);
  const hosts = useLoad(() => api.get<ProxyHost[]>("/api/proxy-hosts"));
  const certs = useLoad(() => api.get<Certificate[]>("/api/certificates"));
  const [saved, setSaved] = useState(false);
  const canWrite = useCanWrite();
  const behaviour = form.get("default_site.behaviour");
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const r = await form.run(() => api.put<Settings>("/api/settings", form.value));
    if (r) {
      form.replace(r);
      setSaved(true);
    }
  };
  return (
    <form onSubmit={save} noValidate>
      <PageHead title="Settings" />
      {saved && <Notice kind="success">Settings saved; they apply now.</Notice>}
      <FormError form={form} shown={["default_site", "trusted_proxies", "allow_link_local_upstreams", "default_certificate_id", "filters"]} />
      <div className="card">
        <h2>Default site</h2>
        <p className="muted">What a request gets when its host name matches no host.</p>
        <SelectField
          form={form}
          path="default_site"
          label="Behaviour"
          options={[
            { value: "not_found", label: "404 Not Found" },
            { value: "redirect", label: "Redirect to a URL" },
            { value: "host", label: "Serve as a proxy host" },
          ]}
          format={(v) => v?.behaviour ?? "not_found"}
          parse={(s) => (s === "redirect" ? { behaviour: s, url: "" } : s === "host" ? { behaviour: s, host_id: hosts.data?.[0]?.id ?? 0 } : { behaviour: s })}
        />
        {behaviour === "redirect" && <TextField form={form} path="default_site.url" label="URL" placeholder="https://example.com/" />}
        {behaviour === "host" && (
          <SelectField
            form={form}
            path="default_site.host_id"
            label="Proxy host"
            options={(hosts.data ?? []).map((h) => ({ value: String(h.id), label: h.domain_names.join(", ") }))}
            parse={Number}
          />
        )}
      </div>
      <div className="card">
        <h2>Proxy</h2>
        <ListField
          form={form}
          path="trusted_proxies"
          label="Trusted proxies"
          placeholder="10.0.0.0/8"
          hint="CIDRs whose X-Forwarded-For is believed (a load balancer or CDN in front of ppm). The client IP is the rightmost address not in this list."
        />
        <SelectField
          form={form}
          path="default_certificate_id"
          label="Default certificate"
          hint="For HTTPS clients whose server name selects no certificate. Unset: a self-signed certificate the server generated, which names no site."
          options={[
            { value: "", label: "Self-signed fallback" },
            ...(certs.data ?? []).map((c) => ({ value: String(c.id), label: `${c.name || "certificate " + c.id} — ${c.domain_names.join(", ")}` })),
          ]}
          parse={(s) => (s === "" ? null : Number(s))}
        />
        <Toggle form={form} path="allow_link_local_upstreams" label="Allow link-local upstreams (169.254.0.0/16, fe80::/10)" hint="Off by default: those include cloud metadata services." />
      </div>
      {canWrite && (
        <div className="actions sticky">
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Saving…" : "Save settings"}
          </button>
        </div>
      )}
    </form>
  );
}

export function Account() {
  const { user, logout } = useAuth();
  const form = useForm({ current_password: "", new_password: "", confirm: "" });
  const [done, setDone] = useState(false);
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setDone(false);
    if (form.value.new_password !== form.value.confirm) {
      form.setError(new ApiError(422, "invalid", "the passwords differ", [{ path: "confirm", message: "does not match the new password" }]));
      return;
    }
    const ok = await form.run(async () => {
      await api.post("/api/auth/password", { current_password: form.value.current_password, new_password: form.value.new_password });
      return true;
    });
    if (ok) {
      setDone(true);
      // The change ends every session of this user, this one included.
      setTimeout(logout, 1500);
    }
  };
  return (
    <>
      <PageHead title="Account" />
      <div className="card">
        <p>
          Signed in as <strong>{user.email}</strong> ({user.role}).
        </p>
      </div>
      <form className="card narrow" onSubmit={save} noValidate>
        <h2>Change password</h2>
        {done && (
          <Notice kind="success">
            Password changed. Every session is signed out; sign in again with the new password.
          </Notice>
        )}
        <FormError form={form} shown={["current_password", "new_password", "confirm"]} />
        <TextField form={form} path="current_password" label="Current password" type="password" autoComplete="current-password" />
        <TextField form={form} path="new_password" label="New password" type="password" autoComplete="new-password" hint="At least 12 characters." />
        <TextField form={form} path="confirm" label="New password again" type="password" autoComplete="new-password" />
        <div className="actions left">
          <button className="primary" type="submit" disabled={form.busy}>
            {form.busy ? "Saving…" : "Change password"}
          </button>
        </div>
      </form>
    </>
  );
}
