"""The images are built from the native run's pins; environment.yml agrees with them too."""

from __future__ import annotations

import re
import tomllib

import yaml
from compose_env import ROOT

PYTHON_DOCKERFILE = ROOT / "services" / "python" / "Dockerfile"
SUPERSET_DOCKERFILE = ROOT / "services" / "superset" / "Dockerfile"


def requirement_pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def dockerfile_stages(dockerfile) -> dict[str, str]:
    """The text of each build stage, by name (``FROM image AS name``; unnamed stages by index)."""
    parts = re.split(r"^(?=FROM )", dockerfile.read_text(encoding="utf-8"), flags=re.M)[1:]
    stages = {}
    for index, part in enumerate(parts):
        name = re.match(r"FROM \S+(?: AS (\S+))?", part)
        stages[name.group(1) or str(index)] = part
    return stages


def dockerfile_requirements(dockerfile, stage: str | None = None) -> list[str]:
    """The repository files a Dockerfile (or one of its stages) copies in before ``pip install -r``."""
    text = dockerfile_stages(dockerfile)[stage] if stage else dockerfile.read_text(encoding="utf-8")
    copied = dict((target, source) for source, target in re.findall(r"^COPY (requirements/\S+) (\S+)$", text, re.M))
    installed = re.findall(r"pip install [^\n]*-r (\S+)", text)
    assert installed, f"{dockerfile} installs no requirements file"
    return [copied[path] for path in installed]


def test_the_python_image_installs_the_native_lock():
    assert dockerfile_requirements(PYTHON_DOCKERFILE, "runtime") == ["requirements/core.txt"]
    # ./dpe builds the native environment from the very same file
    assert "requirements/core.txt" in (ROOT / "dpe").read_text(encoding="utf-8")


def test_the_airflow_image_is_the_python_image_plus_the_airflow_lock(services):
    stages = dockerfile_stages(PYTHON_DOCKERFILE)
    assert stages["airflow"].startswith("FROM runtime AS airflow")
    assert dockerfile_requirements(PYTHON_DOCKERFILE, "airflow") == ["requirements/airflow.txt"]
    # natively, Airflow gets its own venv from the same lock and runs the tasks with the core Python
    native = (ROOT / "src" / "dpe_pipeline" / "native" / "airflow.py").read_text(encoding="utf-8")
    assert 'LOCK_FILE = "requirements/airflow.txt"' in native
    assert "DPE_CORE_PYTHON=/usr/local/bin/python" in stages["airflow"]
    for name, service in services.items():
        if name.startswith("airflow"):
            assert service["build"]["target"] == "airflow", name
        elif service.get("image", "").startswith("dpe-course/python:"):
            assert service["build"]["target"] == "runtime", name


def test_the_superset_image_installs_the_superset_lock():
    assert dockerfile_requirements(SUPERSET_DOCKERFILE) == ["requirements/superset.txt"]


def test_base_images_are_pinned_and_match_the_supported_python():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    for dockerfile in (PYTHON_DOCKERFILE, SUPERSET_DOCKERFILE):
        stages = dockerfile_stages(dockerfile)
        for image in re.findall(r"^FROM (\S+)", dockerfile.read_text(encoding="utf-8"), re.M):
            if image in stages:  # an earlier stage of the same file
                continue
            assert re.search(r":\d+\.\d+\.\d+", image), f"{dockerfile.name}: {image} is not pinned to a release"
            if image.startswith("python:"):
                assert image.startswith("python:3.11.") and ">=3.11" in requires


def test_the_python_image_has_java_17_and_the_shared_spark_jars():
    text = PYTHON_DOCKERFILE.read_text(encoding="utf-8")
    assert "openjdk-17-jre-headless" in text
    assert "COPY stack/spark/pom.xml" in text and "COPY --from=jars /opt/spark-jars" in text


def test_secrets_stay_out_of_the_build_context():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and "!.env.example" in ignored and ".git" in ignored


def test_pyproject_pins_equal_the_lock():
    """pyproject's direct dependencies are pinned to the version of requirements/core.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = requirement_pins(ROOT / "requirements" / "core.txt")
    direct = [*project["dependencies"], *(dep for group in project["optional-dependencies"].values() for dep in group)]
    for requirement in direct:
        (name, version), = requirement_pins_from_line(requirement).items()
        assert lock.get(name) == version, f"{requirement}: the lock has {name}=={lock.get(name)}"


def requirement_pins_from_line(line: str) -> dict[str, str]:
    match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)$", line)
    assert match, f"{line!r} is not pinned with =="
    return {re.sub(r"[-_.]+", "-", match.group(1)).lower(): match.group(2)}


def test_environment_yml_installs_the_same_lock_and_python():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    dependencies = environment["dependencies"]
    conda = {item.split("=")[0]: item.split("=", 1)[1] for item in dependencies if isinstance(item, str)}
    (pip_section,) = [item["pip"] for item in dependencies if isinstance(item, dict)]
    assert conda["python"] == "3.11"
    assert conda["openjdk"] == "17"
    assert "-r requirements/core.txt" in pip_section and "-e ." in pip_section
    pip_pin = re.search(r'"pip==([\d.]+)"', (ROOT / "dpe").read_text()).group(1)
    assert conda["pip"] == pip_pin
    # No package pinned twice: everything else comes from the lock
    assert set(conda) == {"python", "openjdk", "pip"}
