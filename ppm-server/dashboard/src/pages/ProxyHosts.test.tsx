import { describe, expect, it } from "vitest";
import { cleanHost, newProxyHost, tabOf } from "./ProxyHosts";

describe("proxy host form", () => {
  it("sends the tab holding an error to the front", () => {
    expect(tabOf("domain_names[0]")).toBe("Details");
    expect(tabOf("upstreams[1].port")).toBe("Details");
    expect(tabOf("locations[0].path")).toBe("Locations");
    expect(tabOf("hsts_enabled")).toBe("SSL");
    expect(tabOf("response_headers[2].name")).toBe("Headers");
    expect(tabOf("timeouts.read_ms")).toBe("Advanced");
    expect(tabOf("filters[0].config.requests")).toBe("Advanced");
  });

  it("drops empty optional filter values before saving", () => {
    const h = {
      ...newProxyHost(),
      filters: [
        { kind: "rate_limit", config: { requests: 10, window_secs: 1, max_in_flight: null } },
        { kind: "error_pages", config: { pages: { "404": "<h1>gone</h1>", "502": null, "503": "" } } },
      ],
    };
    expect(cleanHost(h).filters).toEqual([
      { kind: "rate_limit", config: { requests: 10, window_secs: 1 } },
      { kind: "error_pages", config: { pages: { "404": "<h1>gone</h1>" } } },
    ]);
  });
});

import { ratesFrom } from "./Traffic";

describe("live traffic rates", () => {
  it("are per-second deltas of the counters, never negative after a restart", () => {
    const s = [
      { t: 0, requests: 10, errors: 0, bytes: 0 },
      { t: 2000, requests: 30, errors: 2, bytes: 4096 },
      { t: 4000, requests: 5, errors: 0, bytes: 0 },
    ];
    const r = ratesFrom(s);
    expect(r.req).toEqual([
      [2000, 10],
      [4000, 0],
    ]);
    expect(r.err[0]).toEqual([2000, 1]);
    expect(r.bytes[0]).toEqual([2000, 2048]);
  });
});
