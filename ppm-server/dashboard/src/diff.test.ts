import { describe, expect, it } from "vitest";
import { diffJson, diffLines, stableStringify } from "./diff";

describe("diffLines", () => {
  it("marks added and removed lines around common ones", () => {
    expect(diffLines("a\nb\nc", "a\nx\nc")).toEqual([
      { kind: "same", text: "a" },
      { kind: "del", text: "b" },
      { kind: "add", text: "x" },
      { kind: "same", text: "c" },
    ]);
  });
  it("handles empty sides (create and delete)", () => {
    expect(diffLines("", "a\nb").map((l) => l.kind)).toEqual(["add", "add"]);
    expect(diffLines("a", "").map((l) => l.kind)).toEqual(["del"]);
  });
});

describe("diffJson", () => {
  it("ignores key order and shows only the changed field", () => {
    const before = { port: 80, host: "a", weight: 1 };
    const after = { weight: 1, host: "a", port: 8080 };
    const changed = diffJson(before, after).filter((l) => l.kind !== "same");
    expect(changed).toEqual([
      { kind: "del", text: '  "port": 80,' },
      { kind: "add", text: '  "port": 8080,' },
    ]);
  });
  it("sorts nested keys", () => {
    expect(stableStringify({ b: { d: 1, c: 2 }, a: [] })).toBe('{\n  "a": [],\n  "b": {\n    "c": 2,\n    "d": 1\n  }\n}');
  });
});
