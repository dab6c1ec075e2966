import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { ApiError } from "./api";
import { ConfirmButton } from "./ui";

describe("ConfirmButton", () => {
  it("does nothing until confirmed", async () => {
    const action = vi.fn(async () => {});
    render(<ConfirmButton label="Delete" title="Delete host" confirmLabel="Yes, delete" message="Sure?" action={action} />);
    fireEvent.click(screen.getByRole("button", { name: "Delete" }));
    expect(screen.getByRole("dialog").textContent).toContain("Sure?");
    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(action).not.toHaveBeenCalled();
    expect(screen.queryByRole("dialog")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Delete" }));
    fireEvent.click(screen.getByRole("button", { name: "Yes, delete" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    expect(action).toHaveBeenCalledOnce();
  });

  it("keeps the dialog open with the error when the action fails", async () => {
    const action = vi.fn(async () => {
      throw new ApiError(409, "conflict", "access list 1 is used by proxy host 2");
    });
    render(<ConfirmButton label="Delete" title="Delete list" message="Sure?" action={action} />);
    fireEvent.click(screen.getByRole("button", { name: "Delete" }));
    fireEvent.click(screen.getByRole("button", { name: "Delete list" }));
    await screen.findByText("access list 1 is used by proxy host 2");
    expect(screen.getByRole("dialog")).toBeTruthy();
  });
});
