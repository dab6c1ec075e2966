import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RequestDialog } from "./Certificates";
import { blankSpec, providerBody } from "./DnsProviders";

afterEach(() => vi.unstubAllGlobals());

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A fetch that lists one DNS provider and answers orders with `order`. */
function server(order: (body: Record<string, unknown>) => Response) {
  const sent: Record<string, unknown>[] = [];
  const f = vi.fn(async (url: string, init?: RequestInit) => {
    if (url === "/api/dns-providers") return json(200, [{ id: 7, name: "zone-dns", propagation_seconds: 0, provider: blankSpec("rfc2136") }]);
    const body = JSON.parse(String(init?.body ?? "{}"));
    sent.push(body);
    return order(body);
  });
  vi.stubGlobal("fetch", f);
  return sent;
}

describe("requesting a certificate", () => {
  it("starts from the host's names and picks DNS-01 for a wildcard", () => {
    server(() => json(500, {}));
    render(<RequestDialog domains={["*.example.test"]} onClose={() => {}} onSaved={() => {}} />);
    expect((screen.getByLabelText("Domain names") as HTMLTextAreaElement).value).toBe("*.example.test");
    expect((screen.getByLabelText("Challenge") as HTMLSelectElement).value).toBe("dns-01");
    expect(screen.getByLabelText("DNS provider")).toBeTruthy();
  });

  it("sends an HTTP-01 order without a provider and hands back the pending certificate", async () => {
    const saved = vi.fn();
    const sent = server(() => json(202, { id: 3, name: "a.test", source: "acme", domain_names: ["a.test"], status: "pending", certificate_pem: "" }));
    render(<RequestDialog domains={["a.test"]} onClose={() => {}} onSaved={saved} />);
    expect(screen.queryByLabelText("DNS provider")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Request" }));
    await waitFor(() => expect(saved).toHaveBeenCalledOnce());
    expect(sent).toEqual([{ source: "acme", domain_names: ["a.test"], challenge: "http-01" }]);
    expect(saved.mock.calls[0][0].status).toBe("pending");
  });

  it("shows the API's error next to the DNS provider field", async () => {
    const sent = server(() =>
      json(400, {
        error: { code: "invalid", message: "dns_provider_id: dns-01 needs a DNS provider", fields: [{ path: "dns_provider_id", message: "dns-01 needs a DNS provider" }] },
      }),
    );
    render(<RequestDialog domains={["*.example.test"]} onClose={() => {}} onSaved={() => {}} />);
    fireEvent.click(screen.getByRole("button", { name: "Request" }));
    const field = (await screen.findByLabelText("DNS provider")).closest(".field")!;
    await waitFor(() => expect(field.textContent).toContain("dns-01 needs a DNS provider"));
    expect(sent[0]).toEqual({ source: "acme", domain_names: ["*.example.test"], challenge: "dns-01", dns_provider_id: null });
  });
});

describe("DNS provider form", () => {
  it("sends only what the API takes, whatever the list row held", () => {
    const row = { id: 4, name: "cf", propagation_seconds: 30, provider: blankSpec("cloudflare"), created_at: 1, updated_at: 2 };
    expect(providerBody(row)).toEqual({ name: "cf", propagation_seconds: 30, provider: { kind: "cloudflare", api_token: "", zone_id: "", api_url: "" } });
  });
  it("switching the kind starts a blank spec of that kind", () => {
    expect(blankSpec("command")).toEqual({ kind: "command", command: [], timeout_seconds: 60 });
    expect(blankSpec("rfc2136")).toMatchObject({ kind: "rfc2136", tsig_algorithm: "hmac-sha256" });
  });
});
