"""What the notebook tests read in an executed cell: its printed text, its displayed values, its errors."""

from __future__ import annotations

#: What ``checks.ready`` prints in a cell that shows the result of an exercise not done yet.
WAITING = "⏳"


def outputs_text(cell) -> str:
    """Everything the cell printed (stdout and stderr streams)."""
    return "".join(output.get("text", "") for output in cell.get("outputs", []) if output["output_type"] == "stream")


def displayed_text(cell) -> str:
    """The plain-text form of what the cell displayed (its last expression, ``display()``)."""
    return "".join(output.get("data", {}).get("text/plain", "") for output in cell.get("outputs", []))


def errors(cell) -> list:
    return [output for output in cell.get("outputs", []) if output["output_type"] == "error"]


def assert_every_self_check_passes(run, expected: int) -> None:
    """The solution's self-check cells (as many as ``expected``) all print ✅, no cell raised nor waited."""
    self_checks = run.cells_tagged("self-check")
    assert len(self_checks) == expected
    for cell in self_checks:
        assert outputs_text(cell).startswith("✅"), (cell["source"], outputs_text(cell))
    assert not [cell["id"] for cell in run.notebook.cells if errors(cell)]
    assert not [cell["id"] for cell in run.notebook.cells if WAITING in outputs_text(cell)]


def assert_only_self_checks_fail(run) -> set[str]:
    """In an unfinished lab only self-check cells raise; the cells that show an exercise's result wait.

    Returns the ids of the cells that printed the ⏳ line of ``checks.ready`` (at least one).
    """
    self_checks = {cell["id"] for cell in run.cells_tagged("self-check")}
    failing = {cell["id"] for cell in run.notebook.cells if errors(cell)}
    unexpected = failing - self_checks
    assert not unexpected, {cell_id: errors(run.cell(cell_id))[0]["evalue"] for cell_id in unexpected}
    waiting = {
        cell["id"] for cell in run.notebook.cells if cell["id"] not in self_checks and WAITING in outputs_text(cell)
    }
    assert waiting, "no display cell printed the ⏳ line of checks.ready"
    return waiting


def assert_every_self_check_fails_kindly(run, expected: int, *hints: str) -> None:
    """In an unfinished lab, each self-check (as many as ``expected``) fails with one French hint.

    A hint is a ``CheckFailed`` whose message contains one of ``hints``, shown without a
    Python traceback (only the "Vérification échouée" line).
    """
    self_checks = run.cells_tagged("self-check")
    assert len(self_checks) == expected
    for cell in self_checks:
        (error,) = errors(cell)
        assert error["ename"] == "CheckFailed", (cell["source"], error["ename"], error["evalue"])
        assert any(hint in error["evalue"] for hint in hints), error["evalue"]
        assert len(error["traceback"]) == 1 and "Vérification échouée" in error["traceback"][0]
