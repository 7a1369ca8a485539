"""Prometheus config, alert rules and Grafana provisioning checked with promtool and against the
compose file and the metrics the workers declare (pipeline/metrics.py)."""
from __future__ import annotations

import inspect
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops import opsfiles

COMPOSE = opsfiles.load_compose()
SERVICES = COMPOSE["services"]
PROMETHEUS = opsfiles.load_yaml(opsfiles.PROMETHEUS_CONFIG)
REQUIRED_ALERTS = {"WorkerDown", "ConsumerLagGrowing", "DeadLetterRecords", "NoTrades",
                   "WebhookDeliveriesFailing"}
# What the pipeline dashboard must show (README, monitoring), as a metric each topic needs.
DASHBOARD_TOPICS = {
    "throughput by symbol": "processor_trades_total",
    "produce latency percentiles": "producer_latency_seconds_bucket",
    "end-to-end latency": "processor_end_to_end_latency_seconds_bucket",
    "consumer lag": "processor_consumer_lag",
    "batch size": "processor_batch_size_bucket",
    "batch duration": "processor_batch_duration_seconds_bucket",
    "alerts by type and severity": "processor_alerts_total",
    "open circuit breakers": "alertengine_circuit_breakers_open",
    "deduplicated alerts": "alertengine_deduped_total",
    "dead-letter records": "processor_deadletter_total",
    "database flush time": "processor_db_flush_duration_seconds_bucket",
    "webhook outcomes": "alertengine_webhook_deliveries_total",
    "web request rate": "web_requests_total",
    "web request latency": "web_request_duration_seconds_bucket",
    "stream clients": "web_websocket_clients",
}
STOCKIT_METRIC = re.compile(r"\b(?:producer|processor|alertengine|web)_[a-z0-9_]+\b")


def promtool(*args: str, cwd: Path = opsfiles.ROOT) -> subprocess.CompletedProcess:
    result = subprocess.run([opsfiles.tool("promtool"), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def declared_samples() -> set[str]:
    """Sample names of every metric the workers (pipeline/metrics.py) and the web app (app/metrics.py)
    declare."""
    from prometheus_client import CollectorRegistry

    from app import metrics as web_metrics
    from pipeline import metrics as pipeline_metrics

    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("_sum", "_count", "")}
    names = set()
    for module in (pipeline_metrics, web_metrics):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and cls.__name__.endswith("Metrics"):
                for family in cls(CollectorRegistry()).registry.collect():
                    names.update(family.name + s for s in suffixes[family.type])
    return names


def alert_rules() -> list[dict]:
    return [rule for path in opsfiles.RULE_FILES for group in opsfiles.load_yaml(path)["groups"]
            for rule in group["rules"] if "alert" in rule]


def dashboards() -> list[tuple[Path, dict]]:
    return [(path, opsfiles.load_dashboard(path)) for path in opsfiles.DASHBOARD_FILES]


# --- Prometheus ------------------------------------------------------------------------------

def test_prometheus_config_is_valid(tmp_path):
    # Compose mounts the web app's metrics token at /run/secrets/; promtool checks that the file exists.
    config = opsfiles.with_local_secrets(opsfiles.load_yaml(opsfiles.PROMETHEUS_CONFIG), tmp_path,
                                         {"web-metrics-token": "token"})
    config["rule_files"] = [str(opsfiles.MONITORING / pattern) for pattern in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    promtool("check", "config", str(path))


def test_web_metrics_are_scraped_with_the_token_compose_mounts():
    web = next(job for job in PROMETHEUS["scrape_configs"] if job["job_name"] == "web")
    path = web["authorization"]["credentials_file"]
    name = path.removeprefix("/run/secrets/")
    assert web["authorization"]["type"] == "Bearer" and name in SERVICES["prometheus"]["secrets"]
    variable = opsfiles.load_compose()["secrets"][name]["environment"]
    assert variable == "STOCKIT_METRICS_TOKEN" and variable in opsfiles.environment(SERVICES["web"])


def test_alert_rules_are_valid():
    promtool("check", "rules", *map(str, opsfiles.RULE_FILES))


def test_alert_rule_unit_tests_pass():
    assert opsfiles.RULE_TEST_FILES
    promtool("test", "rules", *map(str, opsfiles.RULE_TEST_FILES))


def test_required_alerts_exist_and_each_has_a_unit_test():
    names = {rule["alert"] for rule in alert_rules()}
    assert REQUIRED_ALERTS <= names
    tested = {case["alertname"] for path in opsfiles.RULE_TEST_FILES
              for test in opsfiles.load_yaml(path)["tests"] for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert names <= tested, f"alerts never seen firing in a unit test: {sorted(names - tested)}"
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_service_is_scraped_every_5_seconds():
    assert PROMETHEUS["global"]["scrape_interval"] == "5s"
    for job in PROMETHEUS["scrape_configs"]:
        assert job.get("scrape_interval", "5s") == "5s", job["job_name"]
    metrics_services = {"producer", "processor", "alert-engine", "web", "prometheus", "grafana"}
    assert {job["job_name"] for job in PROMETHEUS["scrape_configs"]} == metrics_services


def test_scrape_targets_are_compose_services_on_their_ports():
    ports = {name: set(opsfiles.published_ports(s)) for name, s in SERVICES.items()}
    for job in PROMETHEUS["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":  # Prometheus scraping itself
                    assert job["job_name"] == "prometheus" and port == "9090"
                    continue
                assert host == job["job_name"], "job names are the compose service names"
                assert host in SERVICES, f"{target} is not a compose service"
                assert int(port) in ports[host], f"{host} does not listen on {port}"


def test_compose_mounts_the_config_and_rules_where_prometheus_reads_them():
    volumes = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["prometheus"]["volumes"]}
    command = SERVICES["prometheus"]["command"]
    config_path = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--config.file="))
    assert volumes[config_path] == "./monitoring/prometheus.yml"
    config_dir = Path(config_path).parent
    for pattern in PROMETHEUS["rule_files"]:
        rule_dir = str(config_dir / Path(pattern).parent)
        assert volumes[rule_dir] == "./monitoring/" + str(Path(pattern).parent)


def test_rules_use_only_declared_metrics():
    known = declared_samples()
    used = {name for rule in alert_rules() for name in STOCKIT_METRIC.findall(rule["expr"])}
    assert used and used <= known, f"undeclared metrics: {sorted(used - known)}"


# --- Grafana ---------------------------------------------------------------------------------

def grafana_mounts() -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in SERVICES["grafana"]["volumes"]}


def test_datasource_is_the_compose_prometheus():
    files = sorted((opsfiles.GRAFANA / "provisioning" / "datasources").glob("*.yml"))
    sources = [s for path in files for s in opsfiles.load_yaml(path)["datasources"]]
    assert len(sources) == 1
    source = sources[0]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090"
    assert grafana_mounts()["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"


def test_dashboard_provider_reads_the_mounted_dashboards():
    files = sorted((opsfiles.GRAFANA / "provisioning" / "dashboards").glob("*.yml"))
    providers = [p for path in files for p in opsfiles.load_yaml(path)["providers"]]
    assert providers
    mounts = grafana_mounts()
    for provider in providers:
        assert provider["type"] == "file"
        assert mounts[provider["options"]["path"]] == "./monitoring/grafana/dashboards"
    home = opsfiles.environment(SERVICES["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounts[str(Path(home).parent)] == "./monitoring/grafana/dashboards"
    assert (opsfiles.GRAFANA / "dashboards" / Path(home).name).is_file()


def test_pipeline_dashboard_has_13_panels_with_queries():
    dashboard = opsfiles.load_dashboard(opsfiles.GRAFANA / "dashboards" / "pipeline.json")
    panels = list(opsfiles.dashboard_panels(dashboard))
    assert len(panels) >= 13
    assert dashboard["uid"] and dashboard["title"]
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]


@pytest.mark.parametrize("path,dashboard", dashboards(), ids=lambda v: getattr(v, "name", ""))
def test_dashboard_layout_and_datasource(path, dashboard):
    datasources = [s for p in sorted((opsfiles.GRAFANA / "provisioning" / "datasources").glob("*.yml"))
                   for s in opsfiles.load_yaml(p)["datasources"]]
    uids = {s["uid"] for s in datasources}
    nested = [child for p in dashboard["panels"] if p.get("type") == "row" for child in p.get("panels", [])]
    ids = [p["id"] for p in dashboard["panels"] + nested]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
    for panel in opsfiles.dashboard_panels(dashboard):
        for target in panel["targets"]:
            assert (target.get("datasource") or panel["datasource"])["uid"] in uids, panel["title"]


def test_dashboard_covers_every_required_topic():
    exprs = " ".join(expr for _, _, expr in opsfiles.panel_queries())
    missing = [topic for topic, metric in DASHBOARD_TOPICS.items() if not re.search(rf"\b{metric}\b", exprs)]
    assert not missing, f"no panel shows {missing}"


def test_dashboard_queries_parse_and_use_declared_metrics(tmp_path):
    queries = opsfiles.panel_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)]}]}
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(path))  # promtool parses every PromQL expression
    known = declared_samples()
    used = {name for _, _, expr in queries for name in STOCKIT_METRIC.findall(expr)}
    assert not used - known, f"undeclared metrics: {sorted(used - known)}"
