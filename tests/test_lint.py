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
