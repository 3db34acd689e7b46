"""Generate the student labs (``labs/NN_*.ipynb``) from the solution notebooks (``solutions/``).

A solution notebook is the single source of truth of a lab. Its code cells mark the
parts the student has to write; the generator replaces them with a French instruction
and a placeholder, strips outputs and execution counts, and writes the lab with a
stable JSON layout so that ``--check`` can compare bytes.

Marker syntax inside a code cell (markers may be indented; the replacement keeps the
indentation of the ``SOLUTION`` line)::

    # ▶ SOLUTION : Récupérez la première page dans `page`.
    # ▶ Une ligne de consigne de plus, si besoin.
    page = session.get(lines_url, params={"size": 5}, timeout=30).json()
    # ▶ LAB
    # page = None
    # ▶ FIN

becomes, in the lab::

    # À FAIRE : Récupérez la première page dans `page`.
    #           Une ligne de consigne de plus, si besoin.
    page = None

- ``# ▶ SOLUTION : <consigne>`` opens a block; ``# ▶ <texte>`` lines right after it
  continue the instruction.
- ``# ▶ LAB`` (optional) starts the lines the lab gets instead of the solution. They are
  written commented out (``# page = None``) so that the solution never runs them; the
  generator removes one ``# `` (or a bare ``#``). An empty ``LAB`` section gives no
  placeholder at all. Without a ``LAB`` section the placeholder is ``...``.
- ``# ▶ FIN`` closes the block. Blocks do not nest; any other ``# ▶`` line is an error.

Whole cells (code or Markdown) are handled with cell tags:

- ``solution``: the lab gets a cell of the same type holding only the instruction, read
  from the cell metadata ``lab_instruction`` (a generic one when absent);
- ``lab-remove``: the cell does not appear in the lab at all (teacher notes…).

Usage: ``./dpe labs`` (rewrite ``labs/``) or ``./dpe labs --check`` (exit 1 and list the
stale labs when ``labs/`` differs from what would be written).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MARKER_LINE = re.compile(r"^(?P<indent>[ \t]*)# ▶(?P<rest>.*)$")
SOLUTION_HEAD = re.compile(r"^\s*SOLUTION\s*(?::\s*(?P<instruction>.*))?$")
INSTRUCTION_PREFIX = "# À FAIRE : "
DEFAULT_PLACEHOLDER = "..."
DEFAULT_CELL_INSTRUCTION = "écrivez ici votre propre solution."

TAG_SOLUTION = "solution"
TAG_REMOVE = "lab-remove"
INSTRUCTION_METADATA_KEY = "lab_instruction"
# Cell metadata written by tools when a notebook is executed: never part of a lab.
EXECUTION_METADATA_KEYS = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
# Notebook metadata the labs keep (papermill needs the kernel; the rest is editor state).
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "celltoolbar")
GENERATOR_METADATA_KEY = "dpe_course"


class MarkerError(ValueError):
    """A solution cell whose markers cannot be parsed (the message says where and why)."""


@dataclass(frozen=True)
class LabFile:
    """One lab to write: where it comes from, where it goes and its exact bytes."""

    solution: Path
    lab: Path
    content: str


# --- code cells: markers ------------------------------------------------------------


def transform_code(source: str, where: str = "cell") -> str:
    """The lab version of a solution cell's source: every SOLUTION…FIN block replaced."""
    output: list[str] = []
    block: _Block | None = None
    for number, line in enumerate(source.split("\n"), start=1):
        match = MARKER_LINE.match(line)
        position = f"{where}, ligne {number}"
        if match is None:
            if block is None:
                output.append(line)
            else:
                block.add_line(line, position)
            continue
        indent, rest = match.group("indent"), match.group("rest")
        if block is None:
            head = SOLUTION_HEAD.match(rest)
            if head is None:
                raise MarkerError(f"{position} : marqueur inattendu hors d'un bloc SOLUTION : {line.strip()!r}")
            block = _Block(indent=indent, instruction=[(head.group("instruction") or "").strip()])
            continue
        keyword = rest.strip()
        if keyword == "FIN":
            output.extend(block.render(position))
            block = None
        elif keyword == "LAB":
            block.start_lab(position)
        elif SOLUTION_HEAD.match(rest):
            raise MarkerError(f"{position} : bloc SOLUTION imbriqué (fermez le précédent par « # ▶ FIN »)")
        else:
            block.add_instruction(rest, position)
    if block is not None:
        raise MarkerError(f"{where} : bloc SOLUTION non fermé (ajoutez « # ▶ FIN »)")
    return "\n".join(output)


@dataclass
class _Block:
    """A SOLUTION…FIN block being read."""

    indent: str
    instruction: list[str]
    in_code: bool = False
    lab_lines: list[str] | None = None

    def add_instruction(self, text: str, position: str) -> None:
        if self.in_code or self.lab_lines is not None:
            raise MarkerError(f"{position} : ligne « # ▶ … » après le code ; la consigne se place juste après SOLUTION")
        self.instruction.append(text.strip())

    def start_lab(self, position: str) -> None:
        if self.lab_lines is not None:
            raise MarkerError(f"{position} : deux sections LAB dans le même bloc")
        self.lab_lines = []

    def add_line(self, line: str, position: str) -> None:
        if self.lab_lines is None:
            self.in_code = True
            return
        self.lab_lines.append(_uncomment(line, self.indent, position))

    def render(self, position: str) -> list[str]:
        if not self.instruction[0]:
            raise MarkerError(f"{position} : la consigne du bloc SOLUTION est vide (« # ▶ SOLUTION : … »)")
        continuation = " " * (len(INSTRUCTION_PREFIX) - 1)
        lines = [self.indent + INSTRUCTION_PREFIX + self.instruction[0]]
        lines += [f"{self.indent}#{continuation}{text}".rstrip() for text in self.instruction[1:]]
        placeholder = [self.indent + DEFAULT_PLACEHOLDER] if self.lab_lines is None else self.lab_lines
        return lines + placeholder


def _uncomment(line: str, indent: str, position: str) -> str:
    """``    # page = None`` → ``    page = None``; a LAB line must be commented at the block's indentation."""
    if not line.strip():
        return ""
    if not line.startswith(indent + "#"):
        raise MarkerError(
            f"{position} : dans une section LAB, chaque ligne doit être commentée (« # … ») "
            "au niveau d'indentation du marqueur SOLUTION"
        )
    body = line[len(indent) + 1 :]
    return indent + (body[1:] if body.startswith(" ") else body)


def solution_lines(source: str) -> list[str]:
    """The code lines inside SOLUTION blocks (not the markers, not the LAB section)."""
    lines: list[str] = []
    state = "out"
    for line in source.split("\n"):
        match = MARKER_LINE.match(line)
        if match is not None:
            keyword = match.group("rest").strip()
            if SOLUTION_HEAD.match(match.group("rest")):
                state = "solution"
            elif keyword == "LAB":
                state = "lab"
            elif keyword == "FIN":
                state = "out"
            continue
        if state == "solution":
            lines.append(line)
    return lines


# --- cells and notebooks ------------------------------------------------------------


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _clean_cell_metadata(cell: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in cell.get("metadata", {}).items() if k not in EXECUTION_METADATA_KEYS}
    metadata.pop(INSTRUCTION_METADATA_KEY, None)
    tags = [tag for tag in metadata.get("tags", []) if tag != TAG_SOLUTION]
    if tags:
        metadata["tags"] = tags
    else:
        metadata.pop("tags", None)
    return metadata


def _instruction_cell_source(cell: dict[str, Any]) -> str:
    instruction = cell.get("metadata", {}).get(INSTRUCTION_METADATA_KEY) or DEFAULT_CELL_INSTRUCTION
    if cell["cell_type"] == "code":
        return f"{INSTRUCTION_PREFIX}{instruction}\n{DEFAULT_PLACEHOLDER}"
    return f"> ✏️ **À FAIRE :** {instruction}"


def transform_cell(cell: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The lab version of one solution cell, or ``None`` when the lab must not show it."""
    tags = _tags(cell)
    if TAG_REMOVE in tags:
        return None
    if TAG_SOLUTION in tags:
        source = _instruction_cell_source(cell)
    elif cell["cell_type"] == "code":
        source = transform_code(cell_source(cell), where)
    else:
        source = cell_source(cell)
    lab_cell: dict[str, Any] = {
        "cell_type": cell["cell_type"],
        "metadata": _clean_cell_metadata(cell),
        "source": source,
    }
    if "id" in cell:
        lab_cell["id"] = cell["id"]
    if cell["cell_type"] == "code":
        lab_cell["execution_count"] = None
        lab_cell["outputs"] = []
    elif "attachments" in cell:
        lab_cell["attachments"] = cell["attachments"]
    return lab_cell


def build_lab(solution: dict[str, Any], solution_name: str) -> dict[str, Any]:
    """The whole lab notebook (a plain dict in nbformat 4 layout) for one solution notebook."""
    cells = []
    for index, cell in enumerate(solution.get("cells", [])):
        lab_cell = transform_cell(cell, where=f"{solution_name}, cellule {index + 1}")
        if lab_cell is not None:
            cells.append(lab_cell)
    metadata = {k: v for k, v in solution.get("metadata", {}).items() if k in KEPT_NOTEBOOK_METADATA}
    metadata[GENERATOR_METADATA_KEY] = {
        "generated_by": "dpe_pipeline.labgen",
        "source": f"solutions/{solution_name}",
        "warning": "Généré depuis solutions/ : modifiez la solution puis lancez « ./dpe labs ».",
    }
    return {
        "cells": cells,
        "metadata": metadata,
        "nbformat": solution.get("nbformat", 4),
        "nbformat_minor": solution.get("nbformat_minor", 5),
    }


def dumps_notebook(notebook: dict[str, Any]) -> str:
    """Stable JSON text of a notebook, laid out like Jupyter saves it (so saving a lab changes nothing)."""
    notebook = json.loads(json.dumps(notebook))  # deep copy
    for cell in notebook["cells"]:
        cell["source"] = cell_source(cell).splitlines(keepends=True)
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def render_lab(solution_path: Path) -> str:
    """The exact text of the lab generated from one solution notebook."""
    solution = json.loads(solution_path.read_text(encoding="utf-8"))
    lab = build_lab(solution, solution_path.name)
    _validate(lab, solution_path)
    return dumps_notebook(lab)


def _validate(notebook: dict[str, Any], solution_path: Path) -> None:
    import nbformat

    try:
        nbformat.validate(notebook, version=notebook["nbformat"])
    except nbformat.ValidationError as error:
        raise MarkerError(
            f"{solution_path.name} : le lab généré n'est pas un notebook valide : {error.message}"
        ) from error


# --- the command --------------------------------------------------------------------


def plan_labs(solutions_dir: Path, labs_dir: Path) -> list[LabFile]:
    """Every lab the generator would write, one per ``solutions/NN_*.ipynb``."""
    return [
        LabFile(solution=path, lab=labs_dir / path.name, content=render_lab(path))
        for path in sorted(solutions_dir.glob("[0-9][0-9]_*.ipynb"))
    ]


def stale_labs(plan: list[LabFile]) -> list[Path]:
    """Labs missing from disk or whose bytes differ from what the generator would write."""
    return [item.lab for item in plan if not item.lab.is_file() or item.lab.read_text(encoding="utf-8") != item.content]


def orphan_labs(plan: list[LabFile], labs_dir: Path) -> list[Path]:
    """Labs with no solution any more (renamed or deleted solution): never deleted automatically."""
    planned = {item.lab.name for item in plan}
    return [path for path in sorted(labs_dir.glob("[0-9][0-9]_*.ipynb")) if path.name not in planned]


def has_learner_work(lab: Path) -> bool:
    """Whether a lab on disk was run by a learner: generated labs never hold outputs or execution counts."""
    if not lab.is_file():
        return False
    try:
        cells = json.loads(lab.read_text(encoding="utf-8")).get("cells", [])
    except ValueError:
        return True  # not a notebook we wrote: do not guess, keep it
    return any(cell.get("outputs") or cell.get("execution_count") for cell in cells if cell.get("cell_type") == "code")


def write_labs(plan: list[LabFile], labs_dir: Path, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the labs whose bytes changed; return them, and the labs kept because a learner worked in them."""
    labs_dir.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for item in plan:
        if item.lab.is_file() and item.lab.read_text(encoding="utf-8") == item.content:
            continue
        if not force and has_learner_work(item.lab):
            kept.append(item.lab)
            continue
        item.lab.write_text(item.content, encoding="utf-8", newline="\n")
        written.append(item.lab)
    return written, kept


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labgen", description="Génère labs/ depuis solutions/.")
    parser.add_argument("--check", action="store_true", help="n'écrit rien ; code 1 si labs/ n'est pas à jour")
    parser.add_argument("--force", action="store_true",
                        help="écrase aussi les labs déjà exécutés (le travail de l'étudiant est perdu)")
    parser.add_argument("--solutions", type=Path, default=None, help="dossier des solutions (défaut : solutions/)")
    parser.add_argument("--labs", type=Path, default=None, help="dossier des labs (défaut : labs/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``./dpe labs``: 0 when ``labs/`` is (or now is) up to date."""
    args = build_parser().parse_args(argv)
    solutions_dir, labs_dir = _resolve_dirs(args.solutions, args.labs)

    # Render every lab first: a marker error leaves labs/ untouched.
    try:
        plan = plan_labs(solutions_dir, labs_dir)
    except MarkerError as error:
        print(f"Erreur de marqueur : {error}", file=sys.stderr)
        return 2

    orphans = orphan_labs(plan, labs_dir)
    for path in orphans:
        print(f"orphelin : {path}  (aucune solution de ce nom : supprimez-le ou renommez la solution)")

    if args.check:
        stale = stale_labs(plan)
        for path in stale:
            print(f"périmé : {path}  (lancez « ./dpe labs »)")
        if not stale and not orphans:
            print(f"labs/ à jour ({len(plan)} lab(s)).")
        return 1 if stale or orphans else 0

    written, kept = write_labs(plan, labs_dir, force=args.force)
    for path in written:
        print(f"écrit : {path}")
    for path in kept:
        print(f"conservé : {path}  (il contient le travail d'un étudiant : sauvegardez-le ailleurs, "
              "puis « ./dpe labs --force » pour l'écraser)", file=sys.stderr)
    print(f"{len(plan)} lab(s) générés, {len(written)} modifié(s).")
    return 1 if kept else 0


def _resolve_dirs(solutions_dir: Path | None, labs_dir: Path | None) -> tuple[Path, Path]:
    if solutions_dir is None or labs_dir is None:
        from dpe_pipeline.settings import project_dir

        root = project_dir()
        solutions_dir = solutions_dir or root / "solutions"
        labs_dir = labs_dir or root / "labs"
    return solutions_dir, labs_dir


if __name__ == "__main__":
    sys.exit(main())
