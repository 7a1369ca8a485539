"""Pure modules stay pure: importing one, in a fresh interpreter, loads no web framework and no driver."""
import json
import pkgutil
import subprocess
import sys

import pytest

import pipeline.rulesets

PURE = ("pipeline.alert_types", "pipeline.breaker", "pipeline.dedup", "pipeline.events", "pipeline.idleness",
        "pipeline.indicators", "pipeline.latency", "pipeline.partition_state", "pipeline.rules",
        "pipeline.settings", "pipeline.simulator", "pipeline.snooze", "pipeline.windows", "pipeline.rulesets",
        *(f"pipeline.rulesets.{m.name}" for m in pkgutil.iter_modules(pipeline.rulesets.__path__)),
        "app", "app.market", "app.params", "app.openapi", "app.openapi_analysis", "app.access", "app.status",
        "app.ids", "components.format", "components.theme")
NOT_IN_PURE = {"dash", "flask", "plotly", "psycopg2", "redis", "confluent_kafka"}


@pytest.mark.parametrize("module", PURE)
def test_pure001_importing_a_pure_module_loads_no_framework_or_driver(module):
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}
    assert loaded & NOT_IN_PURE == set()
