import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, request, saveSession, loadSession, setUnauthorizedHandler } from "./api";

function reply(status: number, body: unknown) {
  return vi.fn(async () => new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json" } }));
}

afterEach(() => {
  saveSession(null);
  vi.unstubAllGlobals();
});

describe("request", () => {
  it("sends the session token and JSON, and parses the answer", async () => {
    saveSession({ token: "t0k", expires_at: Date.now() / 1000 + 60 });
    const f = reply(200, { id: 1 });
    vi.stubGlobal("fetch", f);
    expect(await request("POST", "/api/x", { body: { a: 1 }, query: { dry_run: true, skip: undefined } })).toEqual({ id: 1 });
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/x?dry_run=true");
    const h = init.headers as Record<string, string>;
    expect(h.authorization).toBe("Bearer t0k");
    expect(h["content-type"]).toBe("application/json");
    expect(init.body).toBe('{"a":1}');
  });

  it("turns the API's error shape into an ApiError with its fields", async () => {
    vi.stubGlobal("fetch", reply(422, { error: { code: "invalid", message: "domain_names[0]: bad", fields: [{ path: "domain_names[0]", message: "bad" }] } }));
    const e = (await request("POST", "/api/proxy-hosts").catch((x) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(422);
    expect(e.fields).toEqual([{ path: "domain_names[0]", message: "bad" }]);
  });

  it("signs out on 401 of a signed-in request", async () => {
    saveSession({ token: "old", expires_at: Date.now() / 1000 + 60 });
    const out = vi.fn();
    setUnauthorizedHandler(out);
    vi.stubGlobal("fetch", reply(401, { error: { code: "unauthorized", message: "session expired", fields: [] } }));
    await expect(request("GET", "/api/auth/me")).rejects.toThrow("session expired");
    expect(out).toHaveBeenCalledOnce();
  });

  it("treats an expired session as none", () => {
    saveSession({ token: "x", expires_at: Date.now() / 1000 - 1 });
    expect(loadSession()).toBeNull();
  });

  it("reports a non-JSON failure by status", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response("oops", { status: 502, statusText: "Bad Gateway" })));
    await expect(request("GET", "/api/x")).rejects.toMatchObject({ status: 502, message: "502 Bad Gateway" });
  });
});
