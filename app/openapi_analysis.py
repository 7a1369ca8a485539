"""The OpenAPI description of the analysis endpoints — backtests, the alert lifecycle (snoozes, notes, audit
trail) and data quality — merged into ``app.openapi.openapi_document``."""
from __future__ import annotations

from app.openapi import (BOOL, E400, E401, E403, E404, E503, ERR, INT, NUM, STR, TIME, _list, _n, _obj, _ok,
                         _param, _ref)
from pipeline.backtest import DIFFERENCES
from pipeline.snooze import SNOOZE_STATES

E409 = {"409": {"description": "the snooze is over already (expired or deleted)", **ERR}}
E429 = {"429": {"description": "STOCKIT_BACKTEST_QUEUE backtests are queued or running already", **ERR}}
OPERATOR_NOTE = "Needs the operator or admin role; recorded under the signed-in user (or token:<name>)."
LATENCY = _obj({"n": INT, "p50": _n(NUM), "p95": _n(NUM), "max": _n(NUM)})
SPEC = _obj({"symbols": {"type": "array", "items": STR}, "start": NUM, "end": NUM, "source": _n(STR),
             "rules": {"type": "object", "nullable": True, "additionalProperties": True},
             "start_iso": TIME, "end_iso": TIME})
COUNT_ROW = _obj({"alert_type": STR, "symbol": STR, "actual": INT, "candidate": INT, "both": INT})
SUMMARY = _obj({"trades": INT, "seconds": NUM, "actual": INT, "candidate": INT, "matched": INT,
                "only_in_actual": INT, "only_in_candidate": INT,
                "counts": {"type": "array", "items": COUNT_ROW}})

SCHEMAS = {
    "BacktestRun": _obj({"run_id": INT, "requested_by": STR, "spec": SPEC,
                         "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                         "total_trades": _n(INT), "done_trades": INT, "progress": NUM,
                         "summary": {**SUMMARY, "nullable": True}, "error": _n(STR), "created_at": TIME,
                         "started_at": _n(TIME), "finished_at": _n(TIME), "updated_at": TIME}),
    "BacktestRuns": _obj({"count": INT, "runs": _list("BacktestRun")}),
    "BacktestRequest": _obj({"symbols": {"oneOf": [{"type": "array", "items": STR}, STR]},
                             "start": {"oneOf": [STR, NUM]}, "end": {"oneOf": [STR, NUM]}},
                            {"source": _n(STR),
                             "rules": {"description": "the candidate rules in the STOCKIT_RULES format (an "
                                                      "object, or JSON/YAML text); absent: the running "
                                                      "configuration",
                                       "oneOf": [{"type": "object", "additionalProperties": True}, STR]}}),
    "BacktestAlert": _obj({"alert_id": STR, "alert_type": STR, "severity": STR, "symbol": STR, "price": NUM,
                           "reference": NUM, "deviation": NUM, "trade_id": STR, "timestamp": TIME,
                           "message": STR, "side": STR, "quantity": NUM, "source": STR, "in_actual": BOOL,
                           "in_candidate": BOOL}),
    "BacktestAlerts": _obj({"run_id": INT, "count": INT, "alerts": _list("BacktestAlert")}),
    "Snooze": _obj({"snooze_id": INT, "alert_type": _n(STR), "symbol": _n(STR), "source": _n(STR),
                    "starts_at": TIME, "ends_at": TIME, "created_by": STR, "comment": STR, "created_at": TIME,
                    "deleted_at": _n(TIME), "deleted_by": _n(STR),
                    "state": {"type": "string", "enum": ["pending", "active", "expired", "deleted"]},
                    "snoozed": {**INT, "description": "alerts this snooze kept from routing"}}),
    "Snoozes": _obj({"count": INT, "snoozes": _list("Snooze")}),
    "SnoozeRequest": _obj({"comment": STR},
                          {"alert_type": _n(STR), "symbol": _n(STR), "source": _n(STR),
                           "starts_at": {"oneOf": [STR, NUM], "description": "default: now"},
                           "ends_at": {"oneOf": [STR, NUM]}, "duration_minutes": NUM}),
    "Note": _obj({"note_id": INT, "alert_id": STR, "author": STR, "body": STR, "created_at": TIME}),
    "Notes": _obj({"alert_id": STR, "count": INT, "notes": _list("Note")}),
    "AuditEvent": _obj({"event_id": _n(INT), "at": TIME, "actor": STR,
                        "action": {"type": "string", "enum": ["ack", "snooze_create", "snooze_delete",
                                                              "snooze_expire", "note"]},
                        "alert_id": _n(STR), "snooze_id": _n(INT), "detail": STR}),
    "Audit": _obj({"count": INT, "events": _list("AuditEvent")}),
    "Quality": _obj({
        "minutes": INT, "symbol": _n(STR),
        "late": {"type": "array", "items": _obj({"source": STR, "symbol": STR, "trades": INT, "late": INT,
                                                 "late_pct": NUM})},
        "late_series": {"type": "array", "items": _obj({"minute": TIME, "late": INT, "trades": INT})},
        "dead_letters": _obj({
            "totals": {"type": "array", "items": _obj({"kind": STR, "count": INT})},
            "series": {"type": "array", "items": _obj({"minute": TIME, "kind": STR, "count": INT})},
            "recent": {"type": "array", "items": _obj({
                "id": INT, "failed_at": TIME, "kind": STR, "reason": STR, "topic": STR, "partition": _n(INT),
                "offset": _n(INT), "symbol": _n(STR), "source": _n(STR), "value": STR})}}),
        "sequence_gaps": _obj({
            "exchanges": {"type": "array", "items": _obj({
                "exchange": STR, "trades": INT, "first": _n(INT), "last": _n(INT), "gaps": INT,
                "missing": INT, "repeated": INT, "missing_pct": NUM})},
            "largest": {"type": "array", "items": _obj({"exchange": STR, "symbol": STR, "ts": TIME,
                                                          "sequence": INT, "missing": INT})}}),
        "latency": {"type": "object", "nullable": True, "additionalProperties": LATENCY,
                    "description": "seconds per stage: event_to_processor, processor_to_redis (the "
                                   "processor's last minute), event_to_browser, web_to_browser (browsers' "
                                   "last 5 minutes)"}}),
    "BrowserLatency": _obj({"samples": {"type": "array", "minItems": 1, "maxItems": 200, "items": _obj({
        "stage": {"type": "string", "enum": ["event_to_browser", "web_to_browser"]},
        "seconds": {"type": "number", "minimum": 0, "maximum": 3600}})}}),
    "Recorded": _obj({"recorded": INT}),
}


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _get(summary: str, schema: str, params: list, tag: str, errors: dict | None = None) -> dict:
    return {"summary": summary, "tags": [tag], "parameters": params,
            "responses": {"200": _ok(schema, summary), **E400, **E401, **(errors or {}), **E503}}


def _change(summary: str, schema: str, status: str, tag: str, params: list, body: str | None,
            errors: dict, description: str = OPERATOR_NOTE) -> dict:
    op = {"summary": summary, "tags": [tag], "description": description, "parameters": params,
          "responses": {status: _ok(schema, summary), **E400, **E401, **E403, **errors, **E503}}
    if body:
        op["requestBody"] = _body(body)
    return op


LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1}, "at most this many")
RUN_ID = _param("run_id", "path", INT, "the backtest run's id")
SNOOZE_ID = _param("snooze_id", "path", INT, "the snooze's id")
ALERT_ID = _param("alert_id", "path", STR, "the alert's id")

PATHS = {
    "/backtests": {
        "get": _get("Backtest runs, newest first", "BacktestRuns", [LIMIT], "backtests"),
        "post": _change("Start a what-if backtest (runs in its own process; poll the run for progress)",
                        "BacktestRun", "202", "backtests", [], "BacktestRequest", E429,
                        "Needs the operator or admin role: a backtest costs CPU on the pipeline's machines. "
                        "Errors name the field (error.parameter), a bad rules key included.")},
    "/backtests/{run_id}": {"get": _get("One backtest run: status, progress, summary", "BacktestRun",
                                        [RUN_ID], "backtests", E404)},
    "/backtests/{run_id}/alerts": {"get": {
        **_get("The run's alerts: fired, raised by the candidate, or both", "BacktestAlerts",
               [RUN_ID, _param("symbol", "query", STR, "only this symbol"),
                _param("difference", "query", {"type": "string", "enum": list(DIFFERENCES)},
                       "only alerts on both sides, or only on one"),
                _param("format", "query", {"type": "string", "enum": ["json", "csv"], "default": "json"},
                       "csv: a download of every alert with its difference"), LIMIT], "backtests", E404)}},
    "/snoozes": {
        "get": _get("Snoozes, newest first", "Snoozes",
                    [_param("state", "query", {"type": "string", "enum": list(SNOOZE_STATES),
                                               "default": "active"}, "which snoozes"), LIMIT],
                    "lifecycle"),
        "post": _change("Snooze alerts of a type, symbol and/or source for a period", "Snooze", "201",
                        "lifecycle", [], "SnoozeRequest", {},
                        OPERATOR_NOTE + " Matching alerts are kept, marked snoozed and sent to no webhook. "
                                        "Give ends_at or duration_minutes (1 minute to 30 days) and a "
                                        "comment.")},
    "/snoozes/{snooze_id}": {
        "get": _get("One snooze", "Snooze", [SNOOZE_ID], "lifecycle", E404),
        "delete": _change("End a snooze now", "Snooze", "200", "lifecycle", [SNOOZE_ID], None,
                          {**E404, **E409})},
    "/alerts/{alert_id}/notes": {
        "get": _get("Notes on an alert, oldest first", "Notes", [ALERT_ID], "lifecycle", E404),
        "post": _change("Write a note on an alert", "Note", "201", "lifecycle", [ALERT_ID], "NoteRequest",
                        E404)},
    "/audit": {"get": _get("Who did what and when (acknowledgements, snoozes, notes), newest first", "Audit",
                           [_param("alert_id", "query", STR, "events of this alert (and of the snooze that "
                                                             "snoozed it)"),
                            _param("snooze_id", "query", INT, "events of this snooze"),
                            _param("actor", "query", STR, "events by this user or token:<name>"), LIMIT],
                           "lifecycle")},
    "/quality": {"get": _get("Data quality: late trades, dead letters, sequence gaps, stage latencies",
                             "Quality",
                             [_param("minutes", "query", {"type": "integer", "enum": [15, 60, 240, 1440],
                                                          "default": 60}, "the window"),
                              _param("symbol", "query", STR, "late trades of this symbol only")], "quality")},
    "/quality/browser-latency": {"post": _change(
        "Report latencies a page measured from its WebSocket ticks", "Recorded", "200", "quality", [],
        "BrowserLatency", {}, "Any signed-in user (the pages send it); must come from this site.")},
}
SCHEMAS["NoteRequest"] = _obj({"text": {"type": "string", "minLength": 1, "maxLength": 2000}})
