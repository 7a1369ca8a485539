"""Readers of the deployment and monitoring files, shared by the tests in tests/ops/.

The compose file is read the way `docker compose` reads it after `cp .env.example .env`:
YAML merge keys resolved and ``${VAR}`` interpolated from .env.example.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
MONITORING = ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((MONITORING / "rules" / "tests").glob("*.yml"))
GRAFANA = MONITORING / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")

# Grafana's built-in variables, given the values Grafana would use for a short time range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "15m"}

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def read_dotenv(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=value lines of a dotenv file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        values[key.strip()] = value.strip().strip("'\"")
    return values


def compose_variables(text: str) -> set[str]:
    """Names of every variable the compose file interpolates."""
    return {m.group(1) or m.group(4) for m in _VARIABLE.finditer(text) if m.group(0) != "$$"}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``; an unset variable without a default is an error."""

    def substitute(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", ":?") and value == "":
            value = None
        if value is not None:
            return value
        if op in (":-", "-"):
            return arg
        raise KeyError(f"docker-compose.yml: ${{{name}}} is not set in .env.example ({arg or 'no default'})")

    return _VARIABLE.sub(substitute, text)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose sees it, interpolated from .env.example by default."""
    env = read_dotenv() if env is None else env
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), env))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping of strings (list or mapping form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """{container port: host port} of a service's short-syntax or long-syntax ``ports``."""
    out = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out[int(entry["target"])] = int(entry["published"])
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        host, container = (parts[-2], parts[-1]) if len(parts) >= 2 else (parts[0], parts[0])
        out[int(container)] = int(host)
    return out


def with_local_secrets(config: dict[str, Any], folder: Path, values: dict[str, str]) -> dict[str, Any]:
    """A Prometheus config whose ``credentials_file: /run/secrets/<name>`` (compose secrets) point at files
    written into ``folder`` with ``values[name]``, so the config runs outside compose."""
    for job in config["scrape_configs"]:
        auth = job.get("authorization") or {}
        path = auth.get("credentials_file", "")
        if path.startswith("/run/secrets/"):
            name = path.rsplit("/", 1)[1]
            local = folder / name
            local.write_text(values[name])
            local.chmod(0o600)
            auth["credentials_file"] = str(local)
    return config


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows excluded), including panels nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title / refId, PromQL with Grafana variables substituted)."""
    out = []
    for path in DASHBOARD_FILES:
        for panel in dashboard_panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                title = f"{panel['title']} / {target['refId']}"
                out.append((path.name, title, grafana_to_promql(target["expr"])))
    return out


def grafana_to_promql(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def tool(name: str) -> str:
    """Path of a Prometheus binary (Debian's package provides both)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise AssertionError(f"{name} not found: install Debian's prometheus package "
                             "(apt-get install -y prometheus)")
    return path


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` s.

    ``condition`` may raise: the last exception (or falsy value) is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = condition()
        except Exception as exc:  # reported below if the deadline passes
            result, last = None, exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
