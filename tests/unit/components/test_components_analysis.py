"""Views of backtests, the alert lifecycle and data quality: data in, components and figures out."""
from dash import html

from app.market import window_for
from components.backtest import counts_table, progress_view, runs_rows, timeline_figure
from components.lifecycle import alert_detail, audit_list, snooze_list, snooze_matchers
from components.quality import dead_letter_chart, fmt_seconds, gaps_table, late_table, latency_figures


def texts(component) -> list[str]:
    """Every string inside a Dash component tree, in order."""
    out = []

    def walk(node):
        if isinstance(node, (str, int, float)):
            out.append(str(node))
        elif isinstance(node, (list, tuple)):
            for n in node:
                walk(n)
        elif hasattr(node, "children"):
            walk(node.children)

    walk(component)
    return out


SUMMARY = {"trades": 80, "seconds": 0.12, "actual": 4, "candidate": 3, "matched": 2, "only_in_actual": 2,
           "only_in_candidate": 1, "counts": [
               {"alert_type": "PRICE_SPIKE", "symbol": "AAPL", "actual": 2, "candidate": 1, "both": 1},
               {"alert_type": "PRICE_SPIKE", "symbol": "MSFT", "actual": 0, "candidate": 1, "both": 0}]}
RUN = {"run_id": 7, "requested_by": "ann", "status": "done", "total_trades": 80, "done_trades": 80,
       "progress": 1.0, "summary": SUMMARY, "error": None,
       "spec": {"symbols": ["AAPL", "MSFT"], "start": 0.0, "end": 3600.0}}


def test_anl001_counts_table_rows_and_total():
    table = counts_table(SUMMARY)
    body = table.children[1].children
    assert [texts(r) for r in body] == [["Price spike", "AAPL", "2", "1", "1", "-1"],
                                        ["Price spike", "MSFT", "0", "1", "0", "+1"],
                                        ["Total", "", "4", "3", "2", "-1"]]
    assert "No alerts" in texts(counts_table({"counts": []}))[-1]


def test_anl002_progress_of_each_state():
    assert progress_view(None)[0] == 0.0
    assert progress_view({**RUN, "status": "queued", "progress": 0.0})[2].startswith("Run 7 is queued")
    running = progress_view({**RUN, "status": "running", "done_trades": 20, "progress": 0.25})
    assert running[:2] == (25.0, "25%") and "20 of 80 trades" in running[2]
    assert "80 trades in 0.12s · 4 fired" in progress_view(RUN)[2]
    assert progress_view({**RUN, "status": "failed", "error": "boom"})[2] == "Run 7 failed: boom"
    assert runs_rows([RUN])[0]["alerts"] == "4 → 3" and runs_rows([RUN])[0]["rules"] == "running config"


def test_anl003_timeline_marks_fired_and_candidate_alerts():
    alerts = [{"timestamp": "2026-01-01T00:00:01Z", "price": 10.0, "alert_type": "PRICE_SPIKE",
               "in_actual": True, "in_candidate": True},
              {"timestamp": "2026-01-01T00:00:02Z", "price": 11.0, "alert_type": "VOLUME_SPIKE",
               "in_actual": False, "in_candidate": True}]
    candles = [{"window_start": "2026-01-01T00:00:00Z", "close": 10.5}]
    fig = timeline_figure(candles, alerts, "AAPL")
    assert [t.name for t in fig.data] == ["AAPL close (1m)", "Fired (actual)", "Candidate"]
    assert list(fig.data[1].y) == [10.0] and list(fig.data[2].y) == [10.0, 11.0]
    assert fig.data[2].customdata[1][1] == "Only candidate"
    assert timeline_figure([], [], "X").layout.annotations[0].text.startswith("No candles")
    windows = (60, 300, 900)
    assert (window_for(3600, windows), window_for(5 * 86400, windows), window_for(30 * 86400, windows)) == \
        (60, 300, 900)


SNOOZE = {"snooze_id": 3, "alert_type": "VOLUME_SPIKE", "symbol": "BTC-USD", "source": None,
          "comment": "maint", "created_by": "ann", "ends_at": "2026-01-01T01:00:00Z", "snoozed": 2}


def test_anl004_lifecycle_views():
    assert snooze_matchers(SNOOZE) == "Volume spike on BTC-USD"
    anything = {"alert_type": None, "symbol": None, "source": "replay"}
    assert snooze_matchers(anything) == "any alert from replay"
    item = snooze_list([SNOOZE], {3: html.Button("End")})[0]
    assert "End" in texts(item) and "2 alerts kept back" in " ".join(texts(item))
    assert texts(snooze_list([])) == ["No snoozes in force."]
    events = [{"actor": "ann", "action": "snooze_expire", "alert_id": None, "snooze_id": 3, "detail": "",
               "at": "2026-01-01T01:00:00Z"}]
    assert texts(audit_list(events))[:3] == ["ann", " snooze expired ", "snooze #3"]
    alert = {"symbol": "BTC-USD", "alert_type": "VOLUME_SPIKE", "timestamp": "2026-01-01T00:30:00Z",
             "message": "m", "status": "snoozed", "acknowledged": False}
    shown = " ".join(texts(alert_detail(alert, SNOOZE, [], [])))
    assert "snoozed by #3: maint" in shown and "No notes." in shown
    assert "Tick one alert" in texts(alert_detail(None, None, [], []))[0]


def test_anl005_quality_views():
    assert (fmt_seconds(None), fmt_seconds(0.0123), fmt_seconds(12.3)) == ("—", "12 ms", "12.3 s")
    figures = latency_figures({"event_to_browser": {"n": 4, "p50": 0.05, "p95": 0.2, "max": 0.3}})
    assert len(figures) == 4 and "50 ms" in texts(figures[2]) and "—" in texts(figures[0])
    late = late_table([{"source": "", "symbol": "AAPL", "trades": 1200, "late": 3, "late_pct": 0.25}])
    assert texts(late.children[1].children[0]) == ["—", "AAPL", "1,200", "3", "0.25"]
    gaps = gaps_table({"exchanges": [{"exchange": "NYSE", "first": 1, "last": 20, "trades": 17, "gaps": 1,
                                      "missing": 3, "missing_pct": 15.0, "repeated": 0}],
                       "largest": [{"exchange": "NYSE", "symbol": "IBM", "ts": "2026-01-01T00:00:00Z",
                                    "sequence": 8, "missing": 3}]})
    assert "NYSE: 3 missing before #8 (IBM, 2026-01-01 00:00:00 UTC)" in texts(gaps)
    fig = dead_letter_chart([{"minute": "2026-01-01T00:00:00Z", "kind": "bad_json", "count": 2},
                             {"minute": "2026-01-01T00:00:00Z", "kind": "too_large", "count": 1}])
    assert [t.name for t in fig.data] == ["bad_json", "too_large"] and fig.layout.barmode == "stack"
