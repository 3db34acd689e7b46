"""Lab 2 « Docker »: the solution runs without a Docker engine, the untouched lab fails its checks kindly."""

from __future__ import annotations

import pytest
from notebook_cells import (
    assert_every_self_check_fails_kindly,
    assert_every_self_check_passes,
    assert_only_self_checks_fail,
    outputs_text,
)

from dpe_pipeline import checks
from dpe_pipeline.compose_cli import install_compose_cli
from dpe_pipeline.settings import project_dir

pytestmark = pytest.mark.notebooks

SOLUTION = project_dir() / "solutions" / "02_docker.ipynb"
LAB = project_dir() / "labs" / "02_docker.ipynb"
SELF_CHECKS = 8  # one per exercise
SOLUTION_LEARNER = "nbtest"
LAB_LEARNER = "nbtest_unfinished"


@pytest.fixture(scope="module")
def solution_run(run_notebook):
    install_compose_cli()  # the lab's last section validates the file with the real Compose CLI
    run = run_notebook(SOLUTION, SOLUTION_LEARNER)
    print(f"{SOLUTION.name}: {run.seconds:.1f} s under papermill")
    return run


@pytest.fixture(scope="module")
def lab_run(run_notebook):
    return run_notebook(LAB, LAB_LEARNER, allow_errors=True)


# --- the solution -------------------------------------------------------------------------


def test_solution_passes_every_self_check(solution_run):
    assert_every_self_check_passes(solution_run, SELF_CHECKS)


def test_solution_saves_its_dockerfile_in_the_learner_space(solution_run):
    saved = project_dir() / "var" / "labs" / f"lab_{SOLUTION_LEARNER}" / "api.Dockerfile"
    assert saved.is_file()
    checks.check_api_dockerfile(saved.read_text(encoding="utf-8"))


def test_solution_validates_the_file_with_the_compose_cli(solution_run):
    assert "docker compose config : fichier valide, 21 services." in outputs_text(solution_run.cell("validate"))


def test_solution_shows_no_published_database_or_broker(solution_run):
    shown = outputs_text(solution_run.cell("ex7-show"))
    unpublished = shown.split("Sans port publié :")[1]
    assert "postgres," in unpublished and "kafka," in unpublished
    assert "0.0.0.0" not in shown


# --- the lab, as a student receives it --------------------------------------------------------


def test_unfinished_lab_fails_each_self_check_with_a_french_hint(lab_run):
    assert_every_self_check_fails_kindly(lab_run, SELF_CHECKS, "complétez la cellule « À FAIRE »")


def test_unfinished_lab_runs_without_an_engine_up_to_its_checks(lab_run):
    # Only the self-checks fail; the cells that show an exercise's result wait for it (⏳)
    waiting = assert_only_self_checks_fail(lab_run)
    assert {"ex1-show", "ex2-save", "ex6-show", "ex8-show"} <= waiting
    assert outputs_text(lab_run.cell("setup")).startswith("Projet Compose : dpe-course")


# --- the checks refuse plausible mistakes (not only placeholders) -----------------------------

GOOD_DOCKERFILE = """\
FROM python:3.11.14-slim-bookworm
COPY requirements/core.txt requirements/core.txt
RUN pip install -r requirements/core.txt
COPY pyproject.toml ./
COPY src ./src
RUN pip install --no-deps . && useradd api
USER api
EXPOSE 5000
CMD ["python", "-m", "dpe_pipeline.api", "--host", "0.0.0.0"]
"""


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        (("FROM python:3.11.14-slim-bookworm", "FROM python:latest"), "n'est pas épinglée"),
        (("COPY src ./src", "COPY .env .env\nCOPY src ./src"), "ne copiez jamais .env"),
        (("USER api", "USER root"), "non root"),
        (('"0.0.0.0"]', '"127.0.0.1"]'), "0.0.0.0"),
        (('CMD ["python", "-m", "dpe_pipeline.api", "--host", "0.0.0.0"]', "CMD python -m dpe_pipeline.api"), "JSON"),
    ],
)
def test_dockerfile_check_names_the_mistake(mistake, hint):
    with pytest.raises(checks.CheckFailed, match=hint):
        checks.check_api_dockerfile(GOOD_DOCKERFILE.replace(*mistake))


@pytest.mark.parametrize(
    "listen",
    [
        'CMD ["python", "-m", "dpe_pipeline.api", "--host", "0.0.0.0"]',
        'CMD ["python", "-m", "dpe_pipeline.api", "--host=0.0.0.0", "--port", "5000"]',
        'ENV API_HOST=0.0.0.0\nCMD ["python", "-m", "dpe_pipeline.api"]',
        'ENV API_HOST="0.0.0.0" API_PORT=5000\nCMD ["python", "-m", "dpe_pipeline.api"]',
        'ENV API_HOST 0.0.0.0\nCMD ["python", "-m", "dpe_pipeline.api"]',
    ],
)
def test_dockerfile_check_accepts_every_way_to_listen_on_all_interfaces(listen):
    checks.check_api_dockerfile(
        GOOD_DOCKERFILE.replace('CMD ["python", "-m", "dpe_pipeline.api", "--host", "0.0.0.0"]', listen)
    )


@pytest.mark.parametrize(
    "listen",
    [
        'CMD ["python", "-m", "dpe_pipeline.api"]',
        'CMD ["python", "-m", "dpe_pipeline.api", "--host=127.0.0.1"]',
        'ENV API_HOST=127.0.0.1\nCMD ["python", "-m", "dpe_pipeline.api"]',
        'ENV API_HOST=0.0.0.0\nCMD ["python", "-m", "dpe_pipeline.api", "--host", "127.0.0.1"]',
    ],
)
def test_dockerfile_check_refuses_a_local_only_api(listen):
    dockerfile = GOOD_DOCKERFILE.replace('CMD ["python", "-m", "dpe_pipeline.api", "--host", "0.0.0.0"]', listen)
    with pytest.raises(checks.CheckFailed, match="--host"):
        checks.check_api_dockerfile(dockerfile)


def test_dockerfile_check_wants_dependencies_before_the_code():
    code_first = GOOD_DOCKERFILE.replace("COPY src ./src\n", "").replace(
        "COPY requirements/core.txt", "COPY src ./src\nCOPY requirements/core.txt"
    )
    with pytest.raises(checks.CheckFailed, match="AVANT"):
        checks.check_api_dockerfile(code_first)
    checks.check_api_dockerfile(GOOD_DOCKERFILE)


def test_other_lab2_checks_refuse_wrong_answers():
    services = checks.compose_services(include_profiles=False)
    with pytest.raises(checks.CheckFailed, match="démarre avant"):
        checks.check_start_order(["jupyter", *(name for name in services if name != "jupyter")])
    with pytest.raises(checks.CheckFailed, match="inactif"):
        checks.check_consumer_scaling(
            lambda consumers, partitions: [
                partitions // consumers + (index < partitions % consumers) for index in range(consumers)
            ],
            5,
        )
    published = checks.published_ports()
    published["jupyter"] = [("0.0.0.0", *published["jupyter"][0][1:])]
    with pytest.raises(checks.CheckFailed, match="jupyter"):
        checks.check_published_ports(published)
    with pytest.raises(checks.CheckFailed, match="il manque"):
        checks.check_secret_variables({"POSTGRES_PASSWORD"})
    with pytest.raises(checks.CheckFailed, match="postgres"):
        checks.check_image_tags({name: "latest" for name in checks.compose_services()})
