import { describe, expect, it } from "vitest";
import { protocolLabel, showsCertificate } from "./Streams";

describe("stream form", () => {
  it("offers a TLS certificate for TCP streams only", () => {
    expect(showsCertificate({ protocol: "tcp", certificate_id: null })).toBe(true);
    expect(showsCertificate({ protocol: "udp", certificate_id: null })).toBe(false);
    expect(showsCertificate({ protocol: "both", certificate_id: null })).toBe(false);
    // Kept visible on other protocols so the server's refusal can be fixed.
    expect(showsCertificate({ protocol: "both", certificate_id: 3 })).toBe(true);
  });

  it("marks TLS-terminating streams in the list", () => {
    expect(protocolLabel({ protocol: "tcp", certificate_id: 3 })).toBe("TCP + TLS");
    expect(protocolLabel({ protocol: "tcp", certificate_id: null })).toBe("TCP");
    expect(protocolLabel({ protocol: "both", certificate_id: null })).toBe("TCP+UDP");
  });
});
