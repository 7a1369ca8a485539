"""docker-compose.yml, Dockerfile and .env.example checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (vendored as
compose-spec.json beside this file, from github.com/compose-spec/compose-spec, schema/compose-spec.json)
and cross-checked: hosts, ports, mounts, commands and settings must all point at something real.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import stat
import subprocess
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.ops import opsfiles

COMPOSE = opsfiles.load_compose()
SERVICES = COMPOSE["services"]
PYTHON_SERVICES = sorted(name for name, s in SERVICES.items() if "build" in s)
WORKERS = ["producer", "processor", "alert-engine", "web"]
ONE_SHOT_JOBS = ["db-migrate", "topics"]
PREFLIGHT = "preflight"
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "STOCKIT_ADMIN_PASSWORD",
           "STOCKIT_SECRET_KEY", "STOCKIT_METRICS_TOKEN")

# Host ports the README's table of services promises (and the Kafka listener for clients on the host).
SPEC_HOST_PORTS = {
    "kafka-ui": {8080: 8090},
    "timescaledb": {5432: 5433},
    "web": {8088: 8088},
    "prometheus": {9090: 9090},
    "grafana": {3000: 3001},
    "producer": {8001: 8001},
    "processor": {8002: 8002},
    "alert-engine": {8003: 8003},
    "kafka": {9092: 9092},
}
# Ports each service listens on inside the compose network.
LISTEN_PORTS = {
    "kafka": {9092, 9093, 19092},
    "kafka-ui": {8080},
    "redis": {6379},
    "timescaledb": {5432},
    "producer": {8001},
    "processor": {8002},
    "alert-engine": {8003},
    "web": {8088},
    "prometheus": {9090},
    "grafana": {3000},
}
STATEFUL = {
    "kafka": "/var/lib/kafka/data",
    "redis": "/data",
    "timescaledb": "/var/lib/postgresql/data",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}
# host:port after "//", "@", "," or at the start of a value: URLs, bootstrap lists, quorum voters.
HOST_PORT = re.compile(r"(?:^|(?<=//)|(?<=@)|(?<=,))([A-Za-z][\w.-]*):(\d{2,5})(?=$|[/,?])")


def test_compose_file_matches_the_compose_specification():
    schema = json.loads(opsfiles.COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_spec_services_are_all_there():
    expected = {"kafka", "kafka-ui", "redis", "timescaledb", "producer", "processor", "alert-engine", "web",
                "prometheus", "grafana", PREFLIGHT}
    assert expected <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert environment("kafka")["KAFKA_PROCESS_ROLES"] == "broker,controller", "Kafka must run in KRaft mode"
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb:")


def environment(name: str) -> dict[str, str]:
    return opsfiles.environment(SERVICES[name])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_restart_policy_and_health_check(name):
    service = SERVICES[name]
    if name == PREFLIGHT:  # a check that fails stays failed: no restart, nothing to probe
        assert service["restart"] == "no" and service["healthcheck"] == {"disable": True}
        return
    if name in ONE_SHOT_JOBS:
        # A job that exits has nothing to check; it is retried on failure and the workers wait for it.
        assert service["restart"] == "on-failure"
        assert service["healthcheck"] == {"disable": True}
        return
    assert service["restart"] in {"always", "unless-stopped"}
    check = service["healthcheck"]
    assert check["test"][0] in {"CMD", "CMD-SHELL"} and not check.get("disable")
    assert check["interval"] and check["retries"] >= 3


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_state_lives_in_a_named_volume(name):
    by_target = {volume.split(":")[1]: volume.split(":")[0] for volume in SERVICES[name]["volumes"]}
    assert STATEFUL[name] in by_target, f"{name} keeps no volume at {STATEFUL[name]}"
    assert by_target[STATEFUL[name]] in COMPOSE["volumes"]


@pytest.mark.parametrize("name", sorted(SPEC_HOST_PORTS))
def test_published_ports_match_spec(name):
    assert opsfiles.published_ports(SERVICES[name]) == SPEC_HOST_PORTS[name]


def test_no_unexpected_published_ports():
    published = {name for name, s in SERVICES.items() if s.get("ports")}
    assert published <= set(SPEC_HOST_PORTS)


def test_every_published_port_binds_ops_bind_address():
    """Web app and Grafana included: loopback unless .env says otherwise."""
    raw = opsfiles.load_yaml(opsfiles.COMPOSE_FILE)["services"]
    assert opsfiles.read_dotenv()["OPS_BIND_ADDRESS"] == "127.0.0.1"
    for name, service in SERVICES.items():
        for raw_entry, entry in zip(raw[name].get("ports") or [], service.get("ports") or []):
            assert raw_entry.startswith("${OPS_BIND_ADDRESS:-127.0.0.1}:"), (name, raw_entry)
            assert entry.startswith("127.0.0.1:"), (name, entry)
    assert {"web", "grafana"} <= {name for name, s in SERVICES.items() if s.get("ports")}


def test_every_host_in_an_environment_is_a_service_listening_on_that_port():
    seen = set()
    for name, service in SERVICES.items():
        for key, value in opsfiles.environment(service).items():
            for host, port in HOST_PORT.findall(value):
                seen.add(host)
                if host in LOCAL_HOSTS:
                    continue
                assert host in SERVICES, f"{name}: {key} names {host!r}, which is not a service"
                assert int(port) in LISTEN_PORTS[host], \
                    f"{name}: {key} names {host}:{port}; it listens on {LISTEN_PORTS[host]}"
    assert {"kafka", "redis", "timescaledb"} <= seen


def test_workers_depend_on_every_service_they_name():
    for name in WORKERS:
        hosts = {h for v in environment(name).values() for h, _ in HOST_PORT.findall(v)} - LOCAL_HOSTS
        assert hosts <= set(SERVICES[name].get("depends_on", {})), name


def test_health_checks_probe_the_port_the_service_listens_on():
    for name in WORKERS:
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", probe)}
        assert ports and ports <= LISTEN_PORTS[name], name


def test_every_mounted_file_exists():
    mounted = 0
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                mounted += 1
                assert (opsfiles.ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
        if "build" in service:
            assert (opsfiles.ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert mounted >= 4


def test_web_gets_its_sign_in_secrets_and_the_migration_job_the_first_admin():
    web, migrate = environment("web"), environment("db-migrate")
    assert web["STOCKIT_SECRET_KEY"] == web["STOCKIT_METRICS_TOKEN"] == "CHANGE-ME"  # from .env.example
    assert "STOCKIT_ADMIN_PASSWORD" not in web and migrate["STOCKIT_ADMIN_PASSWORD"] == "CHANGE-ME"
    assert "STOCKIT_SECRET_KEY" not in migrate


def test_init_jobs_run_before_the_workers():
    assert SERVICES["db-migrate"]["command"] == ["stockit", "db", "migrate"]
    assert SERVICES["topics"]["command"] == ["stockit", "topics"]
    for name in WORKERS:
        depends = SERVICES[name]["depends_on"]
        for job in ONE_SHOT_JOBS:
            assert depends[job] == {"condition": "service_completed_successfully"}, name
        for server in ("kafka", "redis", "timescaledb"):
            assert depends[server] == {"condition": "service_healthy"}, name


def test_python_services_share_one_image_and_bind_all_interfaces():
    assert set(WORKERS + ONE_SHOT_JOBS) == set(PYTHON_SERVICES)
    assert len({SERVICES[name]["image"] for name in PYTHON_SERVICES}) == 1
    for name in PYTHON_SERVICES:
        env = environment(name)
        assert env["STOCKIT_METRICS_HOST"] == "0.0.0.0" and env["STOCKIT_WEB_HOST"] == "0.0.0.0"
        assert urlsplit(env["DATABASE_URL"]).hostname == "timescaledb"
        assert urlsplit(env["REDIS_URL"]).hostname == "redis"


def test_every_python_service_setting_is_a_stockit_setting():
    from pipeline.settings import Settings

    known = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    for name in PYTHON_SERVICES:
        unknown = set(environment(name)) - known
        assert not unknown, f"{name} sets {unknown}, which pipeline/settings.py does not read"


def _cli_parser() -> argparse.ArgumentParser:
    from pipeline.cli import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_service_runs_a_stockit_command(name, capsys):
    command = SERVICES[name]["command"]
    assert command[0] == "stockit", f"{name} must run the stockit CLI"
    parser = _cli_parser()
    assert command[1] in _subcommands(parser), f"{name}: `stockit {command[1]}` is not a stockit command"
    try:
        parser.parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"{name}: stockit rejects `{' '.join(command)}`: {capsys.readouterr().err}")


def test_every_compose_variable_is_in_env_example():
    used = opsfiles.compose_variables(opsfiles.COMPOSE_FILE.read_text())
    missing = used - set(opsfiles.read_dotenv())
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_secrets_are_required_and_not_in_the_repository():
    text = opsfiles.COMPOSE_FILE.read_text()
    example = opsfiles.read_dotenv()
    secrets = {k for k in example if re.search(r"PASSWORD|SECRET|TOKEN", k)}
    assert set(SECRETS) <= secrets
    for key in secrets:
        assert example[key] in {"", "CHANGE-ME"}, f".env.example holds a real-looking {key}"
    for key in (*SECRETS, "GRAFANA_ADMIN_USER"):
        assert re.search(r"\$\{%s:\?" % key, text), f"compose must refuse to start without {key}"
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        opsfiles.load_compose({k: v for k, v in example.items() if k != "POSTGRES_PASSWORD"})
    assert ".env" in opsfiles.ROOT.joinpath(".dockerignore").read_text().split()


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the preflight job's check here, with ``env`` as its environment (compose's ``$$`` is ``$``)."""
    service = SERVICES[PREFLIGHT]
    return subprocess.run([*service["entrypoint"], *service["command"]], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=30)


def test_preflight_refuses_change_me_placeholders():
    service = SERVICES[PREFLIGHT]
    assert set(SECRETS) <= set(opsfiles.environment(service))
    refused = _preflight(opsfiles.environment(service))  # as after `cp .env.example .env`
    assert refused.returncode == 1
    named = refused.stderr.split("for:", 1)[1].split()
    assert set(named) == set(SECRETS), refused.stderr
    assert "CHANGE-ME" not in refused.stderr.split("for:", 1)[1]
    filled = {k: f"real-{k.lower()}" for k in opsfiles.environment(service)}
    assert _preflight(filled).returncode == 0
    one_left = {**filled, "STOCKIT_SECRET_KEY": "CHANGE-ME"}
    assert _preflight(one_left).returncode == 1
    for name, other in SERVICES.items():
        if name != PREFLIGHT:
            assert other["depends_on"][PREFLIGHT] == {"condition": "service_completed_successfully"}, name


def test_redis_runs_unprivileged_and_keeps_its_password_off_command_lines(tmp_path):
    """Run the redis service's start script with a stand-in redis-server that records what it was given."""
    redis = SERVICES["redis"]
    assert redis["user"] not in {"root", "0"} and not str(redis["user"]).startswith("0:")
    assert redis["command"][:2] == ["sh", "-c"]
    script = redis["command"][2].replace("/tmp/redis.conf", str(tmp_path / "redis.conf"))
    stand_in = tmp_path / "bin" / "redis-server"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\nenv > {tmp_path}/env\n')
    stand_in.chmod(0o755)
    password = "s3cret-for-the-test"
    subprocess.run(["sh", "-c", script], env={"PATH": f"{stand_in.parent}:{os.environ['PATH']}",
                                              "REDIS_PASSWORD": password}, check=True, timeout=30)
    assert password not in (tmp_path / "argv").read_text()
    assert "REDIS_PASSWORD" not in (tmp_path / "env").read_text()
    config = (tmp_path / "redis.conf").read_text()
    assert f'requirepass "{password}"' in config and "appendonly yes" in config
    assert stat.S_IMODE((tmp_path / "redis.conf").stat().st_mode) == 0o600
    assert password not in json.dumps(redis["command"])
    probe = " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH" in probe and "-a " not in probe


def test_grafana_credentials_come_from_env():
    env = environment("grafana")
    example = opsfiles.read_dotenv()
    assert env["GF_SECURITY_ADMIN_USER"] == example["GRAFANA_ADMIN_USER"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == example["GRAFANA_ADMIN_PASSWORD"]


# --- Dockerfile ------------------------------------------------------------------------------

def _stages() -> list[list[str]]:
    """Instructions of each build stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", opsfiles.DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_on_python_311_slim():
    text = opsfiles.DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    stages = _stages()
    assert len(stages) >= 2
    assert all(stage[0].split()[1] == "${PYTHON_IMAGE}" for stage in stages)
    builder = " ".join(stages[0])
    assert re.search(r"python -m venv /opt/venv", builder)
    assert re.search(r"pip install \.(\s|$)", builder), "the builder installs the project from setup.cfg"


def test_runtime_stage_copies_venv_and_project_and_runs_unprivileged():
    runtime = _stages()[-1]
    copies = [line.split()[1:] for line in runtime if line.upper().startswith("COPY")]
    sources = {args[-2] for args in copies if not args[0].startswith("--from")}
    assert {"app", "pipeline", "components", "assets", "sql"} <= sources
    assert any(args[0] == "--from=builder" and args[1] == "/opt/venv" for args in copies)
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_every_copied_path_exists():
    for stage in _stages():
        for line in stage:
            if not line.upper().startswith("COPY") or "--from=" in line:
                continue
            for source in [a for a in line.split()[1:] if not a.startswith("--")][:-1]:
                matches = list(opsfiles.ROOT.glob(source))
                assert matches or "*" in source, f"Dockerfile copies {source}, which does not exist"
