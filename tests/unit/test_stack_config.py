"""The native stack's pure parts: service order, supervisord.conf rendering, port probing."""

from __future__ import annotations

import shlex
import socket

import pytest
from supervisor.options import ServerOptions

from dpe_pipeline.native.registry import Port, Service, StackError, StackPaths, resolve_order, settings_environment
from dpe_pipeline.native.supervisor import render_config
from dpe_pipeline.settings import get_settings
from dpe_pipeline.stack import port_in_use


def service(name: str, *depends_on: str, **options) -> Service:
    options.setdefault("command", ("run", name))
    return Service(name=name, title=name.title(), depends_on=depends_on, **options)


SERVICES = {
    "postgres": service("postgres"),
    "kafka": service("kafka"),
    "api": service("api", "kafka"),
    "consumer": service("consumer", "kafka", "postgres"),
}


def test_dependencies_come_first_and_only_what_is_needed():
    assert resolve_order(SERVICES, ["kafka"]) == ["kafka"]
    assert resolve_order(SERVICES, ["consumer", "api"]) == ["kafka", "postgres", "consumer", "api"]
    assert resolve_order(SERVICES, None) == ["postgres", "kafka", "api", "consumer"]


def test_an_unknown_service_is_refused_in_french_with_the_known_ones():
    with pytest.raises(StackError, match="Service inconnu : kafak. Services disponibles : postgres, kafka, api"):
        resolve_order(SERVICES, ["kafak"])


def load_with_supervisor(tmp_path, services: dict[str, Service]) -> list:
    """Render the configuration, then read it back with supervisord's own parser."""
    paths = StackPaths(tmp_path, tmp_path / "var", tmp_path / "cache")
    paths.log_dir.mkdir(parents=True)
    config = tmp_path / "supervisord.conf"
    config.write_text(render_config(paths, services), encoding="utf-8")
    options = ServerOptions()
    options.realize(args=["-c", str(config)])
    return [process for group in options.process_group_configs for process in group.process_configs]


def test_supervisord_reads_back_commands_and_environments_exactly(tmp_path):
    tricky = service(
        "api",
        environment={"API_KEY": "a%b,c", "QUOTED": 'say "hi" twice', "EMPTY": ""},
        command=("python", "-c", "print('100%')"),
    )
    [program] = load_with_supervisor(tmp_path, {"api": tricky})

    assert shlex.split(program.command) == ["python", "-c", "print('100%')"]
    assert program.environment == {"API_KEY": "a%b,c", "QUOTED": 'say "hi" twice', "EMPTY": ""}
    assert program.stopasgroup and program.killasgroup
    assert not program.autostart
    assert program.stdout_logfile == str(tmp_path / "var" / "log" / "api.log")


def test_config_refuses_values_supervisord_would_cut(tmp_path):
    paths = StackPaths(tmp_path, tmp_path / "var", tmp_path / "cache")
    with pytest.raises(ValueError, match="supervisord.conf"):
        render_config(paths, {"api": service("api", environment={"TOKEN": "abc ;def"})})
    with pytest.raises(ValueError, match="cannot be quoted"):
        render_config(paths, {"api": service("api", environment={"TOKEN": 'ends with "'})})


def test_several_instances_get_their_own_name_log_and_number(tmp_path):
    programs = load_with_supervisor(tmp_path, {"consumer": service("consumer", instances=3)})

    assert [program.name for program in programs] == ["consumer-1", "consumer-2", "consumer-3"]
    assert [program.environment["DPE_INSTANCE"] for program in programs] == ["1", "2", "3"]
    assert programs[2].stdout_logfile == str(tmp_path / "var" / "log" / "consumer-3.log")


def test_services_see_every_setting_under_its_env_name():
    settings = get_settings()
    environment = settings_environment(settings)
    assert environment["POSTGRES_PORT"] == str(settings.postgres_port)
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == settings.kafka_bootstrap_servers
    assert environment["REPLAY_FAULT_EVERY"] == str(settings.replay_fault_every)


def test_a_listening_port_is_in_use_and_a_closed_one_is_not():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = Port("127.0.0.1", listener.getsockname()[1], "TEST_PORT")
        assert port_in_use(port)
    assert not port_in_use(port)
