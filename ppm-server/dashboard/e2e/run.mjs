// End-to-end test of the dashboard in Debian's Chromium, driven by
// playwright-core, against a real ppm-server with a temporary data dir,
// ephemeral ports and a real upstream HTTP server.
//
//   PPM_BIN=/path/to/ppm-server node e2e/run.mjs
//
// Environment: PPM_BIN (required), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOT_DIR (default e2e/screenshots). Prints one line per step and
// ends with "e2e: N passed, N failed"; exits 1 on any failure.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.PPM_BIN;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = path.resolve(process.env.SCREENSHOT_DIR ?? path.join(here, "screenshots"));
const STEP_TIMEOUT = 30_000;
const TOTAL_TIMEOUT = 240_000;

if (!BIN) {
  console.error("e2e: set PPM_BIN to the ppm-server binary");
  process.exit(2);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), "ppm-e2e-"));
const cleanups = [];
let passed = 0;
let failed = 0;

const hardStop = setTimeout(() => {
  console.error(`e2e: gave up after ${TOTAL_TIMEOUT / 1000} s`);
  finish(1);
}, TOTAL_TIMEOUT);

async function finish(code) {
  clearTimeout(hardStop);
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      // keep cleaning
    }
  }
  rmSync(tmp, { recursive: true, force: true });
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exit(code || (failed ? 1 : 0));
}

/** Polls `fn` until it returns a truthy value, or throws after `ms`. */
async function waitUntil(what, fn, ms = 10_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

function freePorts(n) {
  // Held open together so they are distinct, then released for the server.
  return new Promise((resolve, reject) => {
    const servers = [];
    const ports = [];
    const next = () => {
      if (servers.length === n) {
        Promise.all(servers.map((s) => new Promise((r) => s.close(r)))).then(() => resolve(ports));
        return;
      }
      const s = net.createServer();
      s.on("error", reject);
      s.listen(0, "127.0.0.1", () => {
        ports.push(s.address().port);
        servers.push(s);
        next();
      });
    };
    next();
  });
}

/** A plain HTTP request (no browser), for checking the proxy itself. */
function get(port, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: urlPath, headers, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end();
  });
}

// ---- the real upstream ----------------------------------------------------
const upstreamHits = [];
const upstream = http.createServer((req, res) => {
  upstreamHits.push({ path: req.url, host: req.headers.host, xff: req.headers["x-forwarded-for"] });
  res.writeHead(200, { "content-type": "text/plain" });
  res.end(`hello from the e2e upstream: ${req.url}\n`);
});
await new Promise((r) => upstream.listen(0, "127.0.0.1", r));
cleanups.push(() => new Promise((r) => upstream.close(r)));
const upstreamPort = upstream.address().port;

// ---- ppm-server -------------------------------------------------------------
async function startServer() {
  for (let attempt = 1; ; attempt++) {
    const [apiPort, httpPort, httpsPort] = await freePorts(3);
    const dataDir = path.join(tmp, `data${attempt}`);
    const child = spawn(BIN, [], {
      env: {
        ...process.env,
        PPM_DATA_DIR: dataDir,
        PPM_API_LISTEN: `127.0.0.1:${apiPort}`,
        PPM_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
        PPM_HTTPS_LISTEN: `127.0.0.1:${httpsPort}`,
        // Orders must stay on this machine: a CA address nothing listens on,
        // so an order fails at once and the page shows the failure.
        PPM_ACME_DIRECTORY: "https://127.0.0.1:9/directory",
        RUST_LOG: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    let exited = false;
    child.on("exit", () => (exited = true));
    try {
      const creds = await waitUntil(
        "the first-run admin password",
        () => {
          if (exited) throw new Error("ppm-server exited:\n" + output);
          const m = /first admin created: email (\S+)\s+password (\S+)/.exec(output);
          return m && { email: m[1], password: m[2] };
        },
        30_000,
      );
      await waitUntil("the API", async () => (await get(apiPort, "/api/health")).status === 200, 30_000);
      cleanups.push(
        () =>
          new Promise((r) => {
            if (exited) return r();
            child.on("exit", r);
            child.kill("SIGINT");
            setTimeout(() => {
              child.kill("SIGKILL");
              r();
            }, 5000);
          }),
      );
      return { apiPort, httpPort, creds, output: () => output };
    } catch (e) {
      child.kill("SIGKILL");
      if (attempt >= 3 || !/address already in use|cannot listen/i.test(output)) throw e;
    }
  }
}

// The first-run password is generated only when no admin password is given.
delete process.env.PPM_ADMIN_EMAIL;
delete process.env.PPM_ADMIN_PASSWORD;

let server;
try {
  server = await startServer();
} catch (e) {
  console.error("e2e: ppm-server did not start:", e.message);
  failed++;
  await finish(1);
}
const base = `http://127.0.0.1:${server.apiPort}`;

// ---- the browser ------------------------------------------------------------
mkdirSync(SHOTS, { recursive: true });
for (const f of readdirSync(SHOTS)) if (f.endsWith(".png")) rmSync(path.join(SHOTS, f));
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
cleanups.push(() => browser.close());
const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(STEP_TIMEOUT);
const consoleErrors = [];
page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && consoleErrors.push(m.text()));
page.on("pageerror", (e) => consoleErrors.push(String(e)));

async function shot(name, p = page) {
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    await shot(`failure-${name.replace(/\W+/g, "-")}`).catch(() => {});
    await finish(1);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const nav = (label) => page.locator("nav.sidebar").getByRole("link", { name: label, exact: true }).click();
const heading = (text) => page.getByRole("heading", { level: 1, name: text }).waitFor();

await step("server answers the dashboard with caching headers and keeps /api JSON", async () => {
  const index = await get(server.apiPort, "/proxy-hosts");
  assert(index.status === 200 && /<div id="root">/.test(index.body), `SPA fallback: ${index.status}`);
  assert(index.headers["cache-control"] === "no-cache", `index cache-control: ${index.headers["cache-control"]}`);
  const asset = /src="(\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
  assert(asset, "index.html names its script");
  const js = await get(server.apiPort, asset);
  assert(js.status === 200 && /immutable/.test(js.headers["cache-control"] ?? ""), `asset cache-control: ${js.headers["cache-control"]}`);
  const api404 = await get(server.apiPort, "/api/no-such-thing");
  assert(api404.status === 404 && JSON.parse(api404.body).error.code === "not_found", `unknown /api path: ${api404.status} ${api404.body}`);
});

await step("log in with the first-run password", async () => {
  await page.goto(base + "/");
  await page.getByLabel("Email").fill(server.creds.email);
  await page.getByLabel("Password").fill("wrong password!");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("wrong email or password").waitFor();
  await shot("login");
  await page.getByLabel("Password").fill(server.creds.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await heading("Choose a new password");
});

await step("the first-run password must be replaced before anything else", async () => {
  await page.getByLabel("Current password").fill(server.creds.password);
  await page.getByLabel("New password", { exact: true }).fill("short");
  await page.getByLabel("New password again").fill("short");
  await page.getByRole("button", { name: "Set password and continue" }).click();
  await page.locator('.field[data-path="new_password"] .field-error').waitFor();
  await shot("choose-password");
  const chosen = "an e2e admin password";
  await page.getByLabel("New password", { exact: true }).fill(chosen);
  await page.getByLabel("New password again").fill(chosen);
  await page.getByRole("button", { name: "Set password and continue" }).click();
  await heading("Overview");
  server.creds.password = chosen;
});

await step("a bad domain shows a validation error next to the field", async () => {
  await nav("Proxy hosts");
  await heading("Proxy hosts");
  await page.getByRole("link", { name: "Add proxy host" }).click();
  await page.getByLabel("Domain names").fill("bad_domain!.e2e.test");
  await page.getByLabel("Host or IP").fill("127.0.0.1");
  await page.getByLabel("Port").fill(String(upstreamPort));
  await page.getByRole("button", { name: "Save" }).click();
  const err = page.locator('.field[data-path="domain_names"] .field-error');
  await err.waitFor();
  const text = await err.innerText();
  assert(text.includes("bad_domain!.e2e.test"), `the error names the entry: ${text}`);
  await shot("proxy-host-validation-error");
});

await step("create a proxy host and see traffic reach the upstream through the HTTP port", async () => {
  await page.getByLabel("Domain names").fill("app.e2e.test\nwww.app.e2e.test");
  await page.getByRole("button", { name: "Save" }).click();
  await heading("Proxy hosts");
  await page.getByText("app.e2e.test", { exact: true }).waitFor();
  const before = upstreamHits.length;
  const r = await get(server.httpPort, "/through/ppm", { host: "app.e2e.test" });
  assert(r.status === 200, `proxy answered ${r.status}: ${r.body}`);
  assert(r.body.includes("hello from the e2e upstream: /through/ppm"), `body: ${r.body}`);
  assert(upstreamHits.length === before + 1 && upstreamHits.at(-1).host === "app.e2e.test", "the upstream saw the request");
  const other = await get(server.httpPort, "/", { host: "unknown.e2e.test" });
  assert(other.status === 404, `an unknown host is not proxied: ${other.status}`);
  await shot("proxy-hosts");
});

await step("search filters the proxy host list", async () => {
  const search = page.getByRole("searchbox", { name: "Search" });
  await search.fill("nothing-matches-this");
  await page.getByText("No proxy host matches.").waitFor();
  await search.fill("app.e2e");
  await page.getByText("app.e2e.test", { exact: true }).waitFor();
});

await step("create an access list and attach it to the host", async () => {
  await nav("Access lists");
  await heading("Access lists");
  await page.getByRole("link", { name: "Add access list" }).click();
  await page.getByLabel("Name").fill("office only");
  await page.getByRole("button", { name: "+ Add rule" }).click();
  await page.getByLabel("Address or CIDR").fill("10.0.0.0/8");
  await page.getByLabel("When no rule matches").selectOption("deny");
  await page.getByRole("button", { name: "Save" }).click();
  await heading("Access lists");
  await page.getByRole("link", { name: "office only" }).waitFor();
  await shot("access-lists");

  await nav("Proxy hosts");
  await page.getByRole("link", { name: "Edit" }).first().click();
  await page.getByLabel("Access list").selectOption({ label: "office only" });
  await shot("proxy-host-edit");
  await page.getByRole("button", { name: "Save" }).click();
  await heading("Proxy hosts");
  await page.getByRole("cell", { name: "office only" }).waitFor();
  const before = upstreamHits.length;
  const r = await get(server.httpPort, "/blocked", { host: "app.e2e.test" });
  assert(r.status === 403, `127.0.0.1 is outside 10.0.0.0/8, so 403; got ${r.status}`);
  assert(upstreamHits.length === before, "the upstream never saw the denied request");
});

await step("upload a certificate", async () => {
  const key = path.join(tmp, "key.pem");
  const crt = path.join(tmp, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=app.e2e.test", "-addext", "subjectAltName=DNS:app.e2e.test"], { stdio: "ignore" });
  await nav("Certificates");
  await heading("Certificates");
  await page.getByRole("button", { name: "Upload certificate" }).click();
  await page.getByLabel("Name", { exact: true }).fill("e2e self-signed");
  // A key in the certificate box is refused, next to the field.
  await page.getByLabel("Certificate chain (PEM) file").setInputFiles(key);
  await page.getByLabel("Private key (PEM) file").setInputFiles(key);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await page.locator('.field[data-path="certificate_pem"] .field-error').waitFor();
  await page.getByLabel("Certificate chain (PEM) file").setInputFiles(crt);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  const row = page.getByRole("row", { name: /e2e self-signed/ });
  await row.waitFor();
  // Details come from the certificate itself: its expiry, 30 days out.
  const text = await row.innerText();
  assert(/(29|30) days left/.test(text), `the expiry is shown: ${text}`);
  await shot("certificates");
});

await step("DNS providers, an ACME order followed live, and the ACME settings", async () => {
  await nav("DNS providers");
  await heading("DNS providers");
  await page.getByRole("button", { name: "Add DNS provider" }).click();
  await page.getByLabel("Name", { exact: true }).fill("e2e dns");
  await page.getByLabel("Provider", { exact: true }).selectOption("rfc2136");
  await page.getByLabel("Primary server").fill("not a socket address");
  await page.getByLabel("Zone", { exact: true }).fill("e2e.test");
  await page.getByLabel("TSIG key name").fill("ppm-key");
  await page.getByLabel("TSIG secret (base64)").fill("c2VjcmV0LXNlY3JldC1zZWNyZXQ=");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator('.field[data-path="provider.server"] .field-error').waitFor();
  await page.getByLabel("Primary server").fill("127.0.0.1:53");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("cell", { name: "e2e dns" }).waitFor();
  await shot("dns-providers");

  await nav("Certificates");
  await heading("Certificates");
  await page.getByRole("button", { name: "Request certificate" }).click();
  await page.getByLabel("Domain names").fill("*.wild.e2e.test");
  await page.getByRole("button", { name: "Request", exact: true }).click();
  const wild = page.locator('.field[data-path="domain_names"] .field-error');
  await wild.waitFor();
  assert((await wild.innerText()).includes("dns-01"), `a wildcard needs dns-01: ${await wild.innerText()}`);
  await page.getByLabel("Challenge").selectOption("dns-01");
  await page.getByLabel("DNS provider").selectOption({ label: "e2e dns" });
  await page.getByRole("button", { name: "Request", exact: true }).click();
  // The order runs in the background and the list follows it: the CA
  // cannot be reached, so it fails with the reason and offers a retry.
  const row = page.getByRole("row", { name: /wild\.e2e\.test/ });
  await row.waitFor();
  await row.locator('.order[data-status="failed"] .field-error').waitFor({ timeout: 30_000 });
  await row.getByRole("button", { name: "Retry" }).waitFor();
  await shot("certificates-acme-failed");

  await nav("Settings");
  await heading("Settings");
  const dir = page.getByLabel("Directory URL");
  assert((await dir.inputValue()) === "https://127.0.0.1:9/directory", "the effective directory comes from the command line");
  await dir.fill("http://plain.example/directory");
  await page.getByRole("button", { name: "Save ACME settings" }).click();
  await page.locator('.field[data-path="directory_url"] .field-error').waitFor();
  await page.getByRole("button", { name: "Let's Encrypt staging (untrusted test certificates)" }).click();
  await page.getByRole("button", { name: "Save ACME settings" }).click();
  await page.getByText("ACME settings saved").waitFor();
  await page.getByRole("button", { name: "Use server defaults" }).click();
  await page.getByText("reset to the server's command-line settings").waitFor();
  assert((await dir.inputValue()) === "https://127.0.0.1:9/directory", "the reset brings the command line's directory back");
  await shot("settings-acme");
});

await step("an API token is shown once and works", async () => {
  await nav("API tokens");
  await heading("API tokens");
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByLabel("Name").fill("e2e reader");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  const token = (await page.getByTestId("new-token").innerText()).trim();
  assert(token.length > 20, "token shown");
  const r = await get(server.apiPort, "/api/proxy-hosts", { authorization: `Bearer ${token}` });
  assert(r.status === 200 && r.body.includes("app.e2e.test"), `the token reads the API: ${r.status}`);
  await shot("tokens");
  await page.getByRole("button", { name: "Done" }).click();
  await page.reload();
  await heading("API tokens");
  assert((await page.getByText(token).count()) === 0, "the token is not shown again");
});

await step("roll back a change from the config history", async () => {
  await nav("Config history");
  await heading("Config history");
  // The revision that created the proxy host: before the access list existed.
  const created = page.locator(".revisions li", { hasText: "create proxy host" }).first();
  await created.getByRole("link").click();
  await page.locator(".change h3", { hasText: "Created proxy host" }).waitFor();
  await page.locator(".diff .add").first().waitFor();
  await shot("history");
  await page.getByRole("button", { name: /^Roll back to #/ }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Roll back" }).click();
  await page.getByText(/Rolled back to #\d+/).waitFor();
  const r = await waitUntil("the proxy to serve without the access list", async () => {
    const x = await get(server.httpPort, "/after-rollback", { host: "app.e2e.test" });
    return x.status === 200 && x;
  });
  assert(r.body.includes("/after-rollback"), "the upstream answers again after the rollback");
  await nav("Access lists");
  await page.getByText("No access lists yet.").waitFor();
});

await step("audit log, users, settings and export pages load", async () => {
  await nav("Audit log");
  await heading("Audit log");
  await page.getByRole("cell", { name: "rollback" }).first().waitFor();
  await shot("audit-log");
  await nav("Users & roles");
  await heading("Users & roles");
  await page.getByRole("cell", { name: server.creds.email }).waitFor();
  await shot("users");
  await nav("Settings");
  await heading("Settings");
  await page.getByLabel("Trusted proxies").fill("not-a-cidr");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator('.field[data-path="trusted_proxies"] .field-error').waitFor();
  await page.getByLabel("Trusted proxies").fill("10.0.0.0/8");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Settings saved").waitFor();
  await shot("settings");
  await nav("Export & import");
  await heading("Export & import");
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download export" }).click();
  const file = path.join(tmp, "export.json");
  await (await download).saveAs(file);
  await page.getByLabel("Config file").setInputFiles(file);
  await page.getByText("is valid").waitFor();
  await shot("export-import");
});

await step("overview, and the phone-width layout", async () => {
  for (let i = 0; i < 5; i++) await get(server.httpPort, `/load/${i}`, { host: "app.e2e.test" });
  await nav("Overview");
  await heading("Overview");
  await page.getByText("all healthy").waitFor();
  await shot("overview");
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(base + "/proxy-hosts");
  await phone.getByRole("heading", { level: 1, name: "Proxy hosts" }).waitFor();
  const sidebar = phone.locator("nav.sidebar");
  assert(!(await sidebar.isVisible()), "the sidebar folds away on a phone");
  await phone.getByRole("button", { name: "Menu" }).click();
  await sidebar.waitFor({ state: "visible" });
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert(width <= 390, `no horizontal scrolling at phone width (${width}px)`);
  await shot("phone-proxy-hosts", phone);
  await phone.close();
});

await step("traffic statistics and the access log", async () => {
  const paths = JSON.parse((await get(server.apiPort, "/api/openapi.json")).body).paths;
  const hasStats = "/api/stats/summary" in paths;
  const hasLogs = "/api/logs/access" in paths;
  assert(hasStats && hasLogs, "the server describes /api/stats/summary and /api/logs/access");
  await nav("Overview");
  await heading("Overview");
  if (!hasStats) {
    assert((await page.locator(".traffic").count()) === 0, "no traffic card without the stats API");
  } else {
    const chart = page.locator('.traffic figure.chart');
    await chart.waitFor();
    // Requests while the page polls: the live chart must rise above zero.
    const end = Date.now() + 20_000;
    let max = 0;
    let sent = 0;
    while (Date.now() < end && sent < 400) {
      for (let i = 0; i < 20; i++, sent++) await get(server.httpPort, `/stats/${sent}`, { host: "app.e2e.test" });
      max = Number(await chart.getAttribute("data-max"));
      if (max > 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert(max > 0, `the requests/s chart moved after ${sent} requests (max ${max})`);
    await waitUntil("a second chart point", async () => Number(await chart.getAttribute("data-points")) >= 4, 10_000);
    await page.locator(".traffic").getByRole("link", { name: "app.e2e.test" }).waitFor();
    await shot("overview-traffic");
  }
  const logLink = page.locator("nav.sidebar").getByRole("link", { name: "Access log", exact: true });
  if (!hasLogs) {
    assert((await logLink.count()) === 0, "no access-log page without the logs API");
  } else {
    await logLink.click();
    await heading("Access log");
    await page.getByLabel("Text").fill("/load/3");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByRole("cell", { name: /\/load\/3/ }).first().waitFor();
    await shot("access-log");
  }
});

await step("no errors in the browser console", async () => {
  assert(consoleErrors.length === 0, consoleErrors.join("\n"));
});

writeFileSync(path.join(SHOTS, "README.txt"), `Screenshots of the dashboard e2e run, ${new Date().toISOString()}\n`);
console.log(`e2e: screenshots in ${SHOTS}`);
await finish(0);
