"""What-if backtests on the real PostgreSQL: ``stockit backtest`` (a process of its own) over a seeded
history whose alerts are known by construction, and the same through the REST API's worker processes."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from pipeline.events import Alert, Trade, alert_id_for, iso
from pipeline.history.writer import HistoryWriter
from tests import sign_in
from tests.integration.helpers import wait_until
from tests.integration.test_api_rest import conforms

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent.parent
T0 = 1_700_000_000.0
START, END = T0 - 1, T0 + 500
TUNED = {"rulesets": {"tuned": {"price_deviation": {"spike_pct": 3, "breaker_pct": 10},
                                "volume_multiple": {"volume_multiple": 6}}},
         "assign": {"default": "tuned"}}


def trades() -> list[tuple[Trade, bool]]:
    """AAPL: flat at 100, a 6 % move (a30), a 12 % move (a41), a 5x size (a45); MSFT: flat at 200, a 3.5 %
    move (m25); around them what a backtest must leave out: a late trade, trades after the range, another
    symbol."""
    rows = []
    for i in range(50):
        price = {30: 106.0, 41: 112.0}.get(i, 100.0)
        size = 50.0 if i == 45 else 10.0
        rows.append((Trade(f"a{i}", "AAPL", price, size, "BUY", "TEST", T0 + i, sequence=i), False))
    rows += [(Trade(f"m{i}", "MSFT", 207.0 if i == 25 else 200.0, 5.0, "SELL", "TEST", T0 + i + 0.5), False)
             for i in range(30)]
    rows.append((Trade("late-1", "AAPL", 150.0, 10.0, "BUY", "TEST", T0 + 46.5), True))
    rows += [(Trade(f"after{i}", "AAPL", 150.0 + i, 10.0, "BUY", "TEST", END + i), False) for i in range(3)]
    rows += [(Trade(f"g{i}", "GOOGL", 300.0 if i == 25 else 100.0, 10.0, "BUY", "TEST", T0 + i), False)
             for i in range(30)]
    return rows


def fired(trade_id: str, alert_type: str, symbol: str = "AAPL", offset: float = 0.0) -> Alert:
    severity = {"CIRCUIT_BREAKER": "CRITICAL", "PRICE_SPIKE": "HIGH", "VOLUME_SPIKE": "MEDIUM"}[alert_type]
    return Alert(alert_id=alert_id_for(trade_id, alert_type), alert_type=alert_type, severity=severity,
                 symbol=symbol, price=100.0, reference=100.0, deviation=5.0, trade_id=trade_id,
                 ts=T0 + offset, message="fired live")


# What fired: the seed rules' three alerts and one from an older configuration (a10) that no rule raises now.
ACTUAL = [fired("a10", "PRICE_SPIKE", offset=10), fired("a30", "PRICE_SPIKE", offset=30),
          fired("a41", "CIRCUIT_BREAKER", offset=41), fired("a45", "VOLUME_SPIKE", offset=45)]


def ids(*pairs) -> set[str]:
    return {alert_id_for(t, kind) for t, kind in pairs}


@pytest.fixture
def history(clean_stores):
    w = HistoryWriter(clean_stores.database_url)
    try:
        w.flush(trades=trades(), candles=[], alerts=ACTUAL)
    finally:
        w.close()
    return clean_stores


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=settings.database_url, PYTHONPATH=str(ROOT),
               STOCKIT_LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "backtest", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_bkt101_candidate_rules_against_what_fired(history, tmp_path):
    out = tmp_path / "alerts.csv"
    done = cli(history, "--symbols", "aapl,MSFT", "--start", iso(START), "--end", str(END), "--rules",
               json.dumps(TUNED), "--json-progress", "--csv", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    progress, result = lines[:-1], lines[-1]
    assert result["type"] == "result" and result["trades"] == 50 + 30  # no late trade, none out of range
    assert progress[0] == {"type": "progress", "done": 0, "total": 80} and progress[-1]["done"] == 80
    counts = {(r["alert_type"], r["symbol"]): (r["actual"], r["candidate"], r["both"])
              for r in result["counts"]}
    assert counts == {("PRICE_SPIKE", "AAPL"): (2, 1, 1), ("CIRCUIT_BREAKER", "AAPL"): (1, 1, 1),
                      ("VOLUME_SPIKE", "AAPL"): (1, 0, 0), ("PRICE_SPIKE", "MSFT"): (0, 1, 0)}
    assert (result["matched"], result["only_in_actual"], result["only_in_candidate"]) == (2, 2, 1)
    with open(out, newline="") as f:
        rows = {r["alert_id"]: r["difference"] for r in csv.DictReader(f)}
    assert rows == {**dict.fromkeys(ids(("a30", "PRICE_SPIKE"), ("a41", "CIRCUIT_BREAKER")), "both"),
                    **dict.fromkeys(ids(("a10", "PRICE_SPIKE"), ("a45", "VOLUME_SPIKE")), "only_actual"),
                    **dict.fromkeys(ids(("m25", "PRICE_SPIKE")), "only_candidate")}


def test_bkt102_the_running_configuration_and_the_report(history):
    done = cli(history, "--symbols", "AAPL,MSFT", "--start", str(START), "--end", iso(END))
    assert done.returncode == 0, done.stderr
    assert "80 trades" in done.stdout and "3 in both" in done.stdout
    assert "only in actual (fired, the candidate would not raise them): 1" in done.stdout
    assert "only in candidate (the candidate would raise them, they did not fire): 0" in done.stdout
    assert "backtest: 100%" in done.stderr and "80.0/80.0" in done.stderr, "a progress bar on stderr"


@pytest.mark.parametrize("args, field, words", [
    (("--symbols", "AAPL", "--start", "yesterday", "--end", "1"), "--start", "neither ISO-8601"),
    (("--symbols", "AAPL", "--start", "10", "--end", "5"), "--end", "later than start"),
    (("--symbols", "", "--start", "1", "--end", "5"), "--symbols", "at least one symbol"),
    (("--symbols", "AAPL", "--start", "1", "--end", "5", "--rules",
      '{"rulesets": {"x": {"price_deviation": {"spike_pct": 20}}}, "assign": {"default": "x"}}'),
     "--rules", "rulesets.x.price_deviation"),
])
def test_bkt103_bad_requests_are_refused_naming_the_option(history, args, field, words):
    done = cli(history, *args)
    assert done.returncode == 2 and done.stderr.startswith(f"stockit backtest: {field}:")
    assert words in done.stderr


@pytest.fixture
def operator_client(history, accounts):
    return sign_in.flask_client(create_app(history).test_client(), accounts["operator"])


def test_bkt104_the_api_runs_backtests_in_worker_processes(operator_client, history, accounts):
    spec = {"symbols": ["AAPL", "MSFT"], "start": iso(START), "end": END, "rules": TUNED}
    r = operator_client.post("/api/v1/backtests", json=spec)
    assert r.status_code == 202, r.get_data(True)
    run = conforms(r.get_json(), "BacktestRun")
    assert run["status"] in ("queued", "running", "done")
    assert run["requested_by"] == accounts["operator"].username

    def finished():
        body = operator_client.get(f"/api/v1/backtests/{run['run_id']}").get_json()
        return body if body["status"] in ("done", "failed") else None

    body = conforms(wait_until(finished, 90, "the backtest run to finish"), "BacktestRun")
    assert body["status"] == "done", body["error"]
    assert body["progress"] == 1.0 and body["done_trades"] == body["total_trades"] == 80
    assert (body["summary"]["matched"], body["summary"]["only_in_candidate"]) == (2, 1)
    only = conforms(operator_client.get(f"/api/v1/backtests/{run['run_id']}/alerts?difference=only_candidate")
                    .get_json(), "BacktestAlerts")
    assert [a["alert_id"] for a in only["alerts"]] == list(ids(("m25", "PRICE_SPIKE")))
    both = operator_client.get(f"/api/v1/backtests/{run['run_id']}/alerts?symbol=AAPL").get_json()
    assert {a["alert_id"] for a in both["alerts"]} == {a.alert_id for a in ACTUAL}  # a30, a41 on both sides
    csv_text = operator_client.get(f"/api/v1/backtests/{run['run_id']}/alerts?format=csv")
    assert csv_text.mimetype == "text/csv" and "attachment" in csv_text.headers["Content-Disposition"]
    assert len(list(csv.DictReader(io.StringIO(csv_text.get_data(True))))) == 5
    listed = conforms(operator_client.get("/api/v1/backtests").get_json(), "BacktestRuns")
    assert listed["runs"][0]["run_id"] == run["run_id"]


@pytest.mark.parametrize("body, parameter", [
    ({"symbols": ["AAPL"], "start": "nope", "end": END}, "start"),
    ({"symbols": "A$B", "start": START, "end": END}, "symbols"),
    ({"symbols": ["AAPL"], "start": END, "end": START}, "end"),
    ({"symbols": ["AAPL"], "start": START, "end": END, "rules": {"rulesets": {"x": {"nope": {}}}}}, "rules"),
    ({"symbols": ["AAPL"], "start": START, "end": END, "rules": "rulesets: [1"}, "rules"),
    ({"symbols": ["AAPL"], "start": START, "end": END, "speed": 3}, "speed"),
])
def test_bkt105_bad_api_requests_name_the_field(operator_client, body, parameter):
    r = operator_client.post("/api/v1/backtests", json=body)
    assert r.status_code == 400, r.get_data(True)
    assert conforms(r.get_json(), "Error")["error"]["parameter"] == parameter


def test_bkt106_roles_origin_and_the_queue_limit(history, accounts):
    spec = {"symbols": ["AAPL"], "start": START, "end": END}
    viewer = sign_in.flask_client(create_app(history).test_client(), accounts["viewer"])
    assert viewer.post("/api/v1/backtests", json=spec).status_code == 403
    assert viewer.get("/api/v1/backtests").status_code == 200, "a viewer reads runs"
    anonymous = create_app(history).test_client()
    assert anonymous.post("/api/v1/backtests", json=spec).status_code == 401
    operator = sign_in.flask_client(create_app(history.replace(backtest_queue=0)).test_client(),
                                    accounts["operator"])
    r = operator.post("/api/v1/backtests", json=spec)
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "too_many_backtests"
    forged = operator.post("/api/v1/backtests", json=spec, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403 and forged.get_json()["error"]["code"] == "cross_site_request"


def test_bkt107_one_source_at_a_time(history):
    """A replay of the same symbol in the same range is its own stream: --source picks one."""
    replay = [(Trade(f"r{i}", "AAPL", 100.0 if i != 25 else 150.0, 10.0, "BUY", "TEST", T0 + i + 0.25,
                     source="replay-2008"), False) for i in range(30)]
    w = HistoryWriter(history.database_url)
    try:
        w.flush(trades=replay, candles=[], alerts=[])
    finally:
        w.close()
    common = ("--symbols", "AAPL", "--start", str(START), "--end", str(END), "--json-progress")
    live = json.loads(cli(history, *common, "--source", "live").stdout.splitlines()[-1])
    assert live["trades"] == 50 and live["candidate"] == 3
    replayed = cli(history, *common, "--source", "replay-2008", "--csv", "/dev/stdout").stdout
    result = json.loads(replayed.splitlines()[-1])
    assert (result["trades"], result["actual"], result["candidate"]) == (30, 0, 1)
    assert alert_id_for("r25", "CIRCUIT_BREAKER") in replayed and ",replay-2008," in replayed
    both = json.loads(cli(history, *common).stdout.splitlines()[-1])
    assert both["trades"] == 80 and both["candidate"] == 4, "each source's trades against their own history"
