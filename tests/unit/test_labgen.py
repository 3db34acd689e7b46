"""The lab generator: markers, cell tags, placeholders, stable bytes and the --check mode."""

import json
import re
import textwrap

import nbformat
import pytest

from dpe_pipeline import labgen
from dpe_pipeline.labgen import MarkerError, solution_lines, transform_code
from dpe_pipeline.settings import project_dir

KERNEL_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "version": "3.11"},
}


def code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def make_cell(cell_type: str, source: str, cell_id: str, **metadata) -> dict:
    cell = {"cell_type": cell_type, "id": cell_id, "metadata": metadata, "source": source}
    if cell_type == "code":
        cell["execution_count"] = 7
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "solution output\n"}]
    return cell


def make_notebook(*cells: dict, **metadata) -> dict:
    return {"cells": list(cells), "metadata": {**KERNEL_METADATA, **metadata}, "nbformat": 4, "nbformat_minor": 5}


def write_notebook(path, notebook: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")


# --- markers ------------------------------------------------------------------------


def test_block_is_replaced_by_instruction_and_lab_lines():
    source = code("""
        import requests
        # ▶ SOLUTION : Récupérez la première page dans `page`.
        page = requests.get(url, params={"size": 5}, timeout=30).json()
        # ▶ LAB
        # page = None
        # ▶ FIN
        print(page)
    """)
    assert transform_code(source) == code("""
        import requests
        # À FAIRE : Récupérez la première page dans `page`.
        page = None
        print(page)
    """)


def test_default_placeholder_is_ellipsis():
    source = "# ▶ SOLUTION : Calculez `total`.\ntotal = 1 + 1\n# ▶ FIN"
    assert transform_code(source) == "# À FAIRE : Calculez `total`.\n..."


def test_indented_block_keeps_its_indentation():
    source = code('''
        def fetch(url):
            """Doc string stays."""
            # ▶ SOLUTION : Écrivez la boucle.
            pages = []
            while url:
                url = None
            return pages
            # ▶ FIN
    ''')
    assert transform_code(source) == code('''
        def fetch(url):
            """Doc string stays."""
            # À FAIRE : Écrivez la boucle.
            ...
    ''')


def test_instruction_continues_on_marker_lines_aligned():
    source = "# ▶ SOLUTION : première ligne,\n# ▶ seconde ligne.\nx = 1\n# ▶ FIN"
    lines = transform_code(source).split("\n")
    assert lines[0] == "# À FAIRE : première ligne,"
    assert lines[1].lstrip("# ") == "seconde ligne."
    assert lines[1].index("seconde") == lines[0].index("première")


def test_lab_section_uncomments_one_level_and_keeps_comments():
    source = code("""
        # ▶ SOLUTION : Complétez.
        x = compute()
        # ▶ LAB
        # x = None  # à remplacer
        #
        # # a real comment stays a comment
        # ▶ FIN
    """)
    assert transform_code(source).split("\n")[1:] == ["x = None  # à remplacer", "", "# a real comment stays a comment"]


def test_empty_lab_section_leaves_only_the_instruction():
    source = "# ▶ SOLUTION : Rien à garder.\nx = 1\n# ▶ LAB\n# ▶ FIN"
    assert transform_code(source) == "# À FAIRE : Rien à garder."


def test_several_blocks_in_one_cell():
    source = "# ▶ SOLUTION : a\na = 1\n# ▶ FIN\nmiddle = 2\n# ▶ SOLUTION : b\nb = 3\n# ▶ FIN"
    assert transform_code(source) == "# À FAIRE : a\n...\nmiddle = 2\n# À FAIRE : b\n..."


def test_cell_without_markers_is_unchanged():
    source = "print('bonjour')\n# an ordinary comment"
    assert transform_code(source) == source


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("# ▶ SOLUTION : a\nx = 1", "non fermé"),
        ("# ▶ SOLUTION : a\n# ▶ SOLUTION : b\n# ▶ FIN", "imbriqué"),
        ("# ▶ FIN", "hors d'un bloc"),
        ("# ▶ SOLUTON : typo\nx = 1\n# ▶ FIN", "hors d'un bloc"),
        ("# ▶ SOLUTION : a\nx = 1\n# ▶ LAB\nx = None\n# ▶ FIN", "commentée"),
        ("# ▶ SOLUTION :\nx = 1\n# ▶ FIN", "consigne"),
        ("# ▶ SOLUTION : a\nx = 1\n# ▶ late instruction\n# ▶ FIN", "après le code"),
        ("# ▶ SOLUTION : a\n# ▶ LAB\n# ▶ LAB\n# ▶ FIN", "deux sections LAB"),
    ],
)
def test_malformed_markers_are_refused_with_a_location(source, message):
    with pytest.raises(MarkerError, match=message) as error:
        transform_code(source, where="demo.ipynb, cellule 3")
    assert "demo.ipynb" in str(error.value)


def test_solution_lines_lists_only_the_solution_code():
    source = "keep = 0\n# ▶ SOLUTION : a\nsecret = 42\n# ▶ LAB\n# secret = None\n# ▶ FIN"
    assert solution_lines(source) == ["secret = 42"]


# --- cells and notebooks ------------------------------------------------------------


def test_outputs_counts_and_execution_metadata_are_stripped():
    cell = make_cell("code", "x = 1", "c1", execution={"iopub.status.idle": "…"}, papermill={"duration": 1})
    lab = labgen.build_lab(make_notebook(cell, papermill={"parameters": {}}, widgets={}), "01_demo.ipynb")
    (lab_cell,) = lab["cells"]
    assert lab_cell["outputs"] == [] and lab_cell["execution_count"] is None
    assert lab_cell["metadata"] == {}
    assert set(lab["metadata"]) == {"kernelspec", "language_info", labgen.GENERATOR_METADATA_KEY}
    assert lab["metadata"]["kernelspec"]["name"] == "python3"


def test_solution_tag_replaces_the_whole_cell_by_its_instruction():
    cells = [
        make_cell("code", "answer = 42", "c1", tags=["solution"], lab_instruction="calculez `answer`."),
        make_cell("markdown", "La réponse est 42.", "m1", tags=["solution", "keep-me"]),
    ]
    lab = labgen.build_lab(make_notebook(*cells), "01_demo.ipynb")
    code_cell, markdown_cell = lab["cells"]
    assert code_cell["source"] == "# À FAIRE : calculez `answer`.\n..."
    assert code_cell["metadata"] == {}
    assert "42" not in markdown_cell["source"] and "À FAIRE" in markdown_cell["source"]
    assert markdown_cell["metadata"] == {"tags": ["keep-me"]}


def test_lab_remove_tag_drops_the_cell_and_other_tags_are_kept():
    cells = [
        make_cell("markdown", "Note pour l'enseignant", "m1", tags=["lab-remove"]),
        make_cell("code", "year = 2023", "p1", tags=["parameters"]),
    ]
    lab = labgen.build_lab(make_notebook(*cells), "01_demo.ipynb")
    assert [cell["id"] for cell in lab["cells"]] == ["p1"]
    assert lab["cells"][0]["metadata"]["tags"] == ["parameters"]


def test_rendered_lab_is_valid_deterministic_and_stable_through_a_jupyter_save(tmp_path):
    solution = tmp_path / "01_demo.ipynb"
    cell = make_cell("code", "# ▶ SOLUTION : é\nx = 1\n# ▶ FIN\nprint('à')", "c1")
    write_notebook(solution, make_notebook(cell))
    first, second = labgen.render_lab(solution), labgen.render_lab(solution)
    assert first == second
    # Key order in the source file does not matter
    reordered = json.loads(solution.read_text(encoding="utf-8"))
    solution.write_text(json.dumps(reordered, sort_keys=True, indent=4), encoding="utf-8")
    assert labgen.render_lab(solution) == first
    # Opening and saving the lab with nbformat (what Jupyter does) keeps the same bytes
    assert nbformat.writes(nbformat.reads(first, as_version=4)) + "\n" == first


# --- the real solutions -------------------------------------------------------------

SOLUTIONS = sorted((project_dir() / "solutions").glob("[0-9][0-9]_*.ipynb"))
# Lines too generic to betray a solution (closing brackets, bare keywords).
TRIVIAL_LINE = re.compile(r"^[\s\)\]\}\(\[\{,:]*$|^(else|try|finally|pass|return|break|continue):?$")
# Library idioms that given cells of the same lab use as well: they reveal no answer.
IDIOMS = {"producer.flush()", "with connection.cursor() as cursor:", "reply.raise_for_status()"}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.name)
def test_no_solution_line_survives_in_the_lab(solution):
    notebook = json.loads(solution.read_text(encoding="utf-8"))
    lab = json.loads(labgen.render_lab(solution))
    lab_lines = {line.strip() for cell in lab["cells"] for line in labgen.cell_source(cell).split("\n") if line.strip()}
    secret = {
        line.strip()
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for line in solution_lines(labgen.cell_source(cell))
        if line.strip() and not TRIVIAL_LINE.match(line.strip()) and line.strip() not in IDIOMS
    }
    assert secret, "a solution notebook should contain SOLUTION blocks"
    assert not secret & lab_lines


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.name)
def test_every_solution_block_leaves_an_instruction(solution):
    notebook = json.loads(solution.read_text(encoding="utf-8"))
    lab = json.loads(labgen.render_lab(solution))
    blocks = sum(labgen.cell_source(c).count("# ▶ SOLUTION") for c in notebook["cells"] if c["cell_type"] == "code")
    instructions = sum(labgen.cell_source(c).count(labgen.INSTRUCTION_PREFIX) for c in lab["cells"])
    assert instructions == blocks > 0


# --- the command --------------------------------------------------------------------


def test_check_mode_detects_missing_stale_and_orphan_labs(tmp_path, capsys):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    dirs = ["--solutions", str(solutions), "--labs", str(labs)]
    write_notebook(
        solutions / "01_demo.ipynb", make_notebook(make_cell("code", "# ▶ SOLUTION : a\nx = 1\n# ▶ FIN", "c"))
    )

    assert labgen.main([*dirs, "--check"]) == 1  # not generated yet
    assert "01_demo.ipynb" in capsys.readouterr().out
    assert not labs.exists(), "--check must not write anything"

    assert labgen.main(dirs) == 0
    assert labgen.main([*dirs, "--check"]) == 0
    written = (labs / "01_demo.ipynb").read_bytes()
    assert labgen.main(dirs) == 0
    assert (labs / "01_demo.ipynb").read_bytes() == written

    write_notebook(solutions / "01_demo.ipynb", make_notebook(make_cell("code", "y = 2", "c")))
    capsys.readouterr()
    assert labgen.main([*dirs, "--check"]) == 1
    assert "périmé" in capsys.readouterr().out

    assert labgen.main(dirs) == 0
    (labs / "02_ghost.ipynb").write_text("{}", encoding="utf-8")
    assert labgen.main([*dirs, "--check"]) == 1
    assert "orphelin" in capsys.readouterr().out


def test_a_lab_a_learner_ran_is_kept_unless_forced(tmp_path, capsys):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    dirs = ["--solutions", str(solutions), "--labs", str(labs)]
    write_notebook(solutions / "01_demo.ipynb", make_notebook(make_cell("code", "x = 1", "c")))
    assert labgen.main(dirs) == 0
    lab = labs / "01_demo.ipynb"
    worked = json.loads(lab.read_text(encoding="utf-8"))
    worked["cells"][0]["source"] = "x = 41 + 1"
    worked["cells"][0]["execution_count"] = 3
    worked["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "42\n"}]
    lab.write_text(json.dumps(worked), encoding="utf-8")
    write_notebook(solutions / "01_demo.ipynb", make_notebook(make_cell("code", "y = 2", "c")))
    capsys.readouterr()

    assert labgen.main(dirs) == 1
    err = capsys.readouterr().err
    assert "conservé" in err and "--force" in err
    assert "41 + 1" in lab.read_text(encoding="utf-8")

    assert labgen.main([*dirs, "--force"]) == 0
    assert "y = 2" in lab.read_text(encoding="utf-8")


def test_a_marker_error_writes_nothing(tmp_path, capsys):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    write_notebook(solutions / "01_ok.ipynb", make_notebook(make_cell("code", "x = 1", "c")))
    write_notebook(solutions / "02_bad.ipynb", make_notebook(make_cell("code", "# ▶ SOLUTION : a\nx = 1", "c")))
    assert labgen.main(["--solutions", str(solutions), "--labs", str(labs)]) == 2
    assert "02_bad.ipynb" in capsys.readouterr().err
    assert not labs.exists()
