"""Data quality on the real servers: the processor keeps its dead letters as rows in the checkpoint
transaction, and the quality report (API, web metrics) shows late trades, dead letters with their reasons,
sequence gaps per exchange and the latency of each stage, the browser's included."""
from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from app import create_app
from pipeline.events import Trade
from pipeline.metrics import ProcessorMetrics
from pipeline.processor import Processor
from tests import sign_in
from tests.integration.helpers import produce, sql, wait_until
from tests.integration.test_api_rest import conforms

pytestmark = pytest.mark.integration
BAD = [b"not json", b'{"trade_id": "x1", "symbol": "AAPL"}', b'{"trade_id": "\x00nul", "symbol": "AAPL"']


@pytest.fixture
def viewer(servers, accounts):
    return sign_in.flask_client(create_app(servers.replace(stale_after_seconds=60)).test_client(),
                                accounts["viewer"])


def test_qlt001_late_trades_dead_letters_and_sequence_gaps(fast, run_worker, viewer):
    base = time.time() - 600
    sequences = [s for s in range(1, 41) if s not in (11, 12, 13)] + [25]  # three missing, one repeated
    trades = [Trade(f"Q-{i}", "AAPL", 100.0, 1.0, "BUY", "NASDAQ", base + i * 2, sequence=s)
              for i, s in enumerate(sequences)]
    trades += [Trade(f"F-{i}", "EUR-USD", 1.1, 1000.0, "SELL", "FX", base + i * 2, sequence=i + 1)
               for i in range(20)]
    late = Trade("Q-late", "AAPL", 100.0, 1.0, "SELL", "NASDAQ", base + 5, sequence=41)
    records = [(t.symbol.encode(), t.encode()) for t in trades] + [(b"AAPL", raw) for raw in BAD]
    records.append((b"AAPL", late.encode()))
    produce(fast, records)
    metrics = ProcessorMetrics(CollectorRegistry())
    worker = run_worker(Processor(fast, metrics).run, "processor")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM trades")[0][0] == len(trades) + 1, 30, "trades stored")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM dead_letters")[0][0] == len(BAD), 30,
               "dead letters stored")
    worker.stop()
    assert metrics.late_by_source.labels("live", "AAPL")._value.get() == 1

    body = conforms(viewer.get("/api/v1/quality?minutes=60").get_json(), "Quality")
    late = {r["symbol"]: r for r in body["late"]}
    assert (late["AAPL"]["trades"], late["AAPL"]["late"]) == (len(sequences) + 1, 1)
    assert late["EUR-USD"]["late"] == 0
    totals = {r["kind"]: r["count"] for r in body["dead_letters"]["totals"]}
    assert totals == {"bad_json": 2, "invalid_field": 1}
    recent = {r["value"].replace("\ufffd", "\x00"): r for r in body["dead_letters"]["recent"]}
    assert set(recent) == {raw.decode() for raw in BAD}, "the value kept (a NUL replaced, not refused)"
    assert all(r["reason"] and r["topic"] == fast.topic_trades and r["offset"] is not None
               for r in recent.values())
    gaps = {r["exchange"]: r for r in body["sequence_gaps"]["exchanges"]}
    assert (gaps["NASDAQ"]["gaps"], gaps["NASDAQ"]["missing"], gaps["NASDAQ"]["repeated"]) == (1, 3, 1)
    assert (gaps["FX"]["gaps"], gaps["FX"]["missing"]) == (0, 0)
    assert [(g["exchange"], g["sequence"], g["missing"]) for g in body["sequence_gaps"]["largest"]] == \
        [("NASDAQ", 14, 3)]

    exposition = viewer.get("/metrics").get_data(True)
    assert 'stockit_sequence_gaps{exchange="NASDAQ"} 1.0' in exposition
    assert 'stockit_sequence_missing{exchange="NASDAQ"} 3.0' in exposition
    assert 'stockit_late_trades{source="live",symbol="AAPL"} 1.0' in exposition


def test_qlt002_browser_latency_beacon_and_stage_latencies(clean_stores, viewer):
    samples = [{"stage": "event_to_browser", "seconds": s} for s in (0.2, 0.4, 0.9)]
    samples.append({"stage": "web_to_browser", "seconds": 0.01})
    r = viewer.post("/api/v1/quality/browser-latency", json={"samples": samples})
    assert r.status_code == 200 and conforms(r.get_json(), "Recorded") == {"recorded": 4}
    latency = viewer.get("/api/v1/quality").get_json()["latency"]
    assert latency["event_to_browser"] == {"n": 3, "p50": 0.4, "p95": 0.9, "max": 0.9}
    assert latency["web_to_browser"]["n"] == 1 and latency["event_to_processor"]["n"] == 0
    exposition = viewer.get("/metrics").get_data(True)
    assert 'web_browser_latency_seconds_count{stage="event_to_browser"} 3.0' in exposition
    for body, parameter in (({"samples": []}, "samples"),
                            ({"samples": [{"stage": "event_to_browser", "seconds": -1}]},
                             "samples[0].seconds"),
                            ({"samples": [{"stage": "kafka", "seconds": 1}]}, "samples[0].stage"),
                            ({"latency": 1}, "latency")):
        bad = viewer.post("/api/v1/quality/browser-latency", json=body)
        assert bad.status_code == 400 and bad.get_json()["error"]["parameter"] == parameter


def test_qlt003_retention_removes_old_dead_letters_and_backtests(clean_stores):
    from pipeline.migrations import apply_retention

    sql(clean_stores, """INSERT INTO dead_letters (failed_at, kind, reason) VALUES
                         (now() - interval '40 days', 'bad_json', 'old'), (now(), 'bad_json', 'new')
                         RETURNING id""")
    sql(clean_stores, """INSERT INTO backtest_runs (requested_by, spec, status, created_at) VALUES
                         ('a', '{}', 'done', now() - interval '40 days'), ('a', '{}', 'done', now()),
                         ('a', '{}', 'running', now() - interval '40 days') RETURNING run_id""")
    apply_retention(clean_stores.database_url, 30)
    assert sql(clean_stores, "SELECT reason FROM dead_letters") == [("new",)]
    kept = sql(clean_stores, "SELECT status, created_at > now() - interval '1 day' FROM backtest_runs")
    assert sorted(kept) == [("done", True), ("running", False)], "a run still going is kept"
