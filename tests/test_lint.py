"""The code style is part of the tests: ruff at 120 columns over src/ and tests/."""

import subprocess
import sys

from dpe_pipeline.settings import project_dir


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks", "dags", "--output-format", "concise"],
        cwd=project_dir(), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_modules_have_unique_names():
    # pytest imports test modules by base name (no __init__.py, "prepend" mode): two files
    # with the same name in different folders stop the whole run at collection
    names = [path.name for path in (project_dir() / "tests").rglob("*.py") if path.name != "conftest.py"]
    assert sorted(names) == sorted(set(names)), sorted({name for name in names if names.count(name) > 1})
