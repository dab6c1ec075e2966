import { render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Cluster, showsCluster, type NodesView } from "./Cluster";

afterEach(() => vi.unstubAllGlobals());

const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });

const node = (id: string, over: Partial<NodesView["nodes"][number]> = {}) => ({
  id,
  this_node: false,
  version: "0.1.0",
  schema_version: 4,
  revision: 12,
  applied_latest: true,
  live: true,
  listeners: ["api 127.0.0.1:81"],
  started_at: 1_700_000_000_000,
  last_seen: 1_700_000_100_000,
  ...over,
});

const counts = (requests: number, status_5xx: number, bytes_out: number) => ({ requests, no_response: 0, status_5xx, bytes_out });

function serve(view: NodesView) {
  const f = vi.fn(async (url: string) => {
    if (url === "/api/cluster/nodes") return json(view);
    if (url.startsWith("/api/stats/summary"))
      return json({
        nodes: [
          { node_id: "node-a", this_node: true, last_rollup: null, totals: counts(7, 1, 2048), streams: counts(2, 0, 0) },
          { node_id: "node-b", this_node: false, last_rollup: 1_700_000_090, totals: counts(4, 0, 100), streams: counts(0, 0, 0) },
        ],
      });
    return new Response("not here", { status: 404 });
  });
  vi.stubGlobal("fetch", f);
  return f;
}

describe("the cluster card", () => {
  it("lists every node with its state, the ACME leader and its share of the traffic", async () => {
    serve({
      backend: "postgres",
      revision: 13,
      applied: 1,
      live: 2,
      acme_leader: "node-b",
      nodes: [node("node-a", { this_node: true, revision: 13 }), node("node-b", { applied_latest: false }), node("node-c", { live: false })],
    });
    render(<Cluster stats interval={60_000} />);
    const a = (await screen.findByText("node-a")).closest("tr")!;
    // HTTP and stream requests together.
    await waitFor(() => expect(a.querySelector('[data-label="Requests"]')!.textContent).toBe("9"));
    expect(a.textContent).toContain("this node");
    expect(a.textContent).toContain("in sync");
    expect(a.textContent).not.toContain("ACME");
    expect(a.querySelector('[data-label="Errors"]')!.textContent).toBe("1");
    expect(a.querySelector('[data-label="Sent"]')!.textContent).toBe("2.0 KiB");
    const b = screen.getByText("node-b").closest("tr")!;
    expect(b.textContent).toContain("catching up");
    expect(b.textContent).toContain("ACME");
    expect(b.querySelector('[data-label="Requests"]')!.textContent).toBe("4");
    const c = screen.getByText("node-c").closest("tr")!;
    expect(c.textContent).toContain("not reporting");
    // No traffic recorded for it: no number made up.
    expect(c.querySelector('[data-label="Requests"]')!.textContent).toBe("—");
    expect(screen.getByText(/1 of 2 live nodes in sync/)).toBeTruthy();
  });

  it("stays out of the way of a single SQLite node", () => {
    const solo = { backend: "sqlite", revision: 3, applied: 1, live: 1, acme_leader: "solo", nodes: [node("solo", { this_node: true })] };
    expect(showsCluster(solo)).toBe(false);
    expect(showsCluster(undefined)).toBe(false);
    expect(showsCluster({ ...solo, backend: "postgres" })).toBe(true);
    expect(showsCluster({ ...solo, nodes: [node("a"), node("b")] })).toBe(true);
  });
});
