"""REST endpoints of the what-if backtests (``/api/v1/backtests``), on the API blueprint.

Anyone signed in may read runs and their alerts; starting one needs the operator role (``app.backtests``
says why).  A started run answers 202 at once: poll ``GET /backtests/<id>`` for its progress.
"""
from __future__ import annotations

import logging
import time

from flask import Response, request

from app import backtests, params
from app.access import OPERATOR
from app.api import _args, _NotFound, _services, api, error_response, json_response
from app.auth import current_principal, requires
from pipeline.backtest import DIFFERENCES, SpecError, csv_text

logger = logging.getLogger(__name__)


@api.post("/backtests")
@requires(OPERATOR, "running backtests")
def start_backtest() -> Response:
    _args()
    fields = params.json_object(request.get_data(), backtests.SPEC_FIELDS)
    try:
        run = backtests.launch(_services(), fields, current_principal().name)
    except SpecError as exc:
        raise params.BadParameter(exc.field, exc.message) from None
    except backtests.QueueFull as exc:
        return error_response(429, "too_many_backtests", str(exc))
    return json_response(run, 202)


@api.get("/backtests")
def list_backtests() -> Response:
    args = _args("limit")
    rows = backtests.runs(_services(), params.integer(args, "limit", 20, 1, 200))
    return json_response({"count": len(rows), "runs": rows})


def _run_id(run_id: str) -> int:
    if not run_id.isdigit() or len(run_id) > 18:
        raise params.BadParameter("run_id", f"{run_id!r} is not a run id")
    return int(run_id)


@api.get("/backtests/<run_id>")
def get_backtest(run_id: str) -> Response:
    _args()
    row = backtests.run(_services(), _run_id(run_id))
    if row is None:
        raise _NotFound(f"no backtest run {run_id}")
    return json_response(row)


@api.get("/backtests/<run_id>/alerts")
def backtest_alerts(run_id: str) -> Response:
    """The run's alerts (both sides), narrowed by symbol and difference; ``format=csv`` downloads them."""
    args = _args("symbol", "difference", "format", "limit")
    rid = _run_id(run_id)
    symbol = params.optional_symbol(args)
    difference = args.get("difference") or None
    if difference is not None and difference not in DIFFERENCES:
        raise params.BadParameter("difference", f"must be one of {', '.join(DIFFERENCES)}")
    fmt = args.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise params.BadParameter("format", "must be json or csv")
    limit = params.integer(args, "limit", 1000 if fmt == "json" else 100_000, 1, 100_000)
    if backtests.run(_services(), rid) is None:
        raise _NotFound(f"no backtest run {run_id}")
    rows = backtests.alerts(_services(), rid, symbol=symbol, difference=difference, limit=limit)
    if fmt == "csv":
        name = f"stockit-backtest-{rid}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        return Response(csv_text(rows), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return json_response({"run_id": rid, "count": len(rows), "alerts": rows})
