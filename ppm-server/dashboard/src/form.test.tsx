import { act, fireEvent, render, renderHook, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiError, fieldMessages } from "./api";
import { getIn, ListField, parsePath, setIn, TextField, useForm, FormError } from "./form";

describe("paths", () => {
  it("parses the API's field paths", () => {
    expect(parsePath("locations[2].upstreams[0].port")).toEqual(["locations", 2, "upstreams", 0, "port"]);
    expect(parsePath("filters[0].config.pages.404")).toEqual(["filters", 0, "config", "pages", "404"]);
  });
  it("sets without touching the original", () => {
    const o = { upstreams: [{ host: "a", port: 1 }], name: "x" };
    const n = setIn(o, "upstreams[0].port", 2);
    expect(o.upstreams[0].port).toBe(1);
    expect(getIn(n, "upstreams[0].port")).toBe(2);
    expect(n.name).toBe("x");
    expect(getIn(setIn({}, "a.b[1]", 5), "a.b")).toEqual([undefined, 5]);
  });
});

describe("fieldMessages", () => {
  const err = new ApiError(422, "invalid", "2 fields are invalid", [
    { path: "upstreams[0].port", message: "must be 1..=65535" },
    { path: "upstreams_extra", message: "other" },
  ]);
  it("finds errors at and below a path, not siblings sharing a prefix", () => {
    expect(fieldMessages(err, "upstreams[0].port")).toEqual(["must be 1..=65535"]);
    expect(fieldMessages(err, "upstreams")).toEqual(["[0].port: must be 1..=65535"]);
    expect(fieldMessages(err, "upstreams[1]")).toEqual([]);
    expect(fieldMessages(new Error("x"), "upstreams")).toEqual([]);
  });
});

describe("form fields", () => {
  it("show the API's error next to the field it names", () => {
    const { result } = renderHook(() => useForm({ upstreams: [{ host: "", port: 0 }] }));
    act(() =>
      result.current.setError(new ApiError(422, "invalid", "upstreams[0].host: must not be empty", [{ path: "upstreams[0].host", message: "must not be empty" }])),
    );
    render(
      <>
        <TextField form={result.current} path="upstreams[0].host" label="Host" />
        <TextField form={result.current} path="upstreams[0].port" label="Port" />
      </>,
    );
    const host = screen.getByLabelText("Host").closest(".field")!;
    const port = screen.getByLabelText("Port").closest(".field")!;
    expect(host.textContent).toContain("must not be empty");
    expect(host.classList.contains("has-error")).toBe(true);
    expect(port.textContent).not.toContain("must not be empty");
  });

  it("name the list entry an error is about", () => {
    const { result } = renderHook(() => useForm({ domain_names: ["ok.test", "bad name"] }));
    act(() => result.current.setError(new ApiError(422, "invalid", "x", [{ path: "domain_names[1]", message: "is not a valid name" }])));
    render(<ListField form={result.current} path="domain_names" label="Domains" />);
    expect(screen.getByRole("alert").textContent).toBe("bad name: is not a valid name");
  });

  it("edits a list as lines or commas", () => {
    const { result } = renderHook(() => useForm({ domain_names: [] as string[] }));
    const { rerender } = render(<ListField form={result.current} path="domain_names" label="Domains" />);
    fireEvent.change(screen.getByLabelText("Domains"), { target: { value: "a.test, b.test\nc.test" } });
    rerender(<ListField form={result.current} path="domain_names" label="Domains" />);
    expect(result.current.value.domain_names).toEqual(["a.test", "b.test", "c.test"]);
  });

  it("lists field errors that no input shows", () => {
    const { result } = renderHook(() => useForm({}));
    act(() => result.current.setError(new ApiError(422, "invalid", "2 fields are invalid", [
      { path: "name", message: "shown by its input" },
      { path: "filters[0].config", message: "unknown filter" },
    ])));
    render(<FormError form={result.current} shown={["name"]} />);
    const banner = screen.getByRole("alert");
    expect(banner.textContent).toContain("filters[0].config");
    expect(banner.textContent).not.toContain("shown by its input");
  });
});
