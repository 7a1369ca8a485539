"""REST API ``/api/v1``: JSON over the speed layer (Redis) and the history (PostgreSQL).

Every parameter is validated (``app.params``); a bad one gets a 400 naming it, an unknown symbol a
404, an unreachable store a 503 — all as ``{"error": {...}}`` JSON, never an HTML page or a 500.
The speed-layer endpoints (prices, recent trades, order book, movers) show the live source; the
history endpoints take ``source`` (candles: the live source by default; trades and alerts: every
source by default, each row naming its own).
The OpenAPI document at ``/api/v1/openapi.json`` (``app.openapi``) describes these responses.
"""
from __future__ import annotations

import logging
import time

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app import market, params
from app.access import OPERATOR
from app.auth import current_principal, requires
from app.openapi import openapi_for
from app.services import Unavailable
from app.services import current as _services  # the one accessor of the web's services (app.services)
from pipeline.alert_types import ALERT_SEVERITIES, ALERT_TYPES
from pipeline.breaker import OPEN, BreakerPolicy

logger = logging.getLogger(__name__)
api = Blueprint("api", __name__, url_prefix="/api/v1")


def json_response(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def error_response(status: int, code: str, message: str, **extra) -> Response:
    return json_response({"error": {"status": status, "code": code, "message": message, **extra}}, status)


def _args(*allowed: str):
    params.only(request.args, allowed)
    return request.args


def _known_ticker(symbol: str) -> dict:
    ticker = _services().speed(lambda r: r.price(symbol))
    if ticker is None:
        raise _NotFound(f"no price for symbol {symbol!r}: the pipeline has not seen it")
    return ticker


class _NotFound(Exception):
    pass


# --- prices ----------------------------------------------------------------------------------------
@api.get("/prices")
def prices() -> Response:
    _args()
    data = _services().speed(lambda r: r.prices())
    rows = [market.ticker_view(s, data[s]) for s in sorted(data)]
    return json_response({"count": len(rows), "prices": rows})


@api.get("/prices/<symbol>")
def price(symbol: str) -> Response:
    _args()
    sym = params.symbol(symbol)
    return json_response(market.ticker_view(sym, _known_ticker(sym)))


# --- candles and trades ------------------------------------------------------------------------------
@api.get("/ohlcv/<symbol>")
def ohlcv(symbol: str) -> Response:
    args = _args("window_seconds", "limit", "start", "end", "include_open", "source")
    sym = params.symbol(symbol)
    windows = _services().settings.window_list
    window = params.choice(args, "window_seconds", windows[0], windows)
    limit = params.integer(args, "limit", 120, 1, 5000)
    start, end = params.timestamp(args, "start"), params.timestamp(args, "end")
    _check_range(start, end)
    include_open = params.boolean(args, "include_open", True)
    live = _services().settings.live_source
    source = params.source(args, live)
    candles = _services().history(lambda h: h.candles(sym, window, limit=limit, start=start, end=end,
                                                      source=source))
    # The speed layer holds the live source's open candles only.
    open_candle = _services().speed(lambda r: r.open_candle(sym, window)) if include_open and source == live \
        else None
    return json_response({"symbol": sym, "window_seconds": window, "source": source, "count": len(candles),
                          "candles": candles, "open_candle": open_candle})


@api.get("/trades/history")
def trades_history() -> Response:
    args = _args("symbol", "start", "end", "limit", "source")
    sym = params.optional_symbol(args)
    start, end = params.timestamp(args, "start"), params.timestamp(args, "end")
    _check_range(start, end)
    limit = params.integer(args, "limit", 100, 1, 10000)
    source = params.source(args)
    rows = _services().history(lambda h: h.trades(sym, start, end, limit, source))
    return json_response({"symbol": sym, "source": source, "count": len(rows), "trades": rows})


@api.get("/sources")
def sources() -> Response:
    _args()
    live = _services().settings.live_source
    stored = _services().history(lambda h: h.sources())
    return json_response({"live": live, "sources": sorted({live, *stored})})


@api.get("/trades/<symbol>")
def trades(symbol: str) -> Response:
    args = _args("limit")
    sym = params.symbol(symbol)
    limit = params.integer(args, "limit", 50, 1, 100)
    rows = _services().speed(lambda r: r.trades(sym, limit))
    return json_response({"symbol": sym, "count": len(rows), "trades": rows})


@api.get("/trades/<symbol>/pressure")
def trade_pressure(symbol: str) -> Response:
    args = _args("limit")
    sym = params.symbol(symbol)
    limit = params.integer(args, "limit", 100, 1, 100)
    rows = _services().speed(lambda r: r.trades(sym, limit))
    if not rows:
        raise _NotFound(f"no recent trades for symbol {sym!r}")
    return json_response({"symbol": sym, **market.pressure(rows)})


@api.get("/orderbook/<symbol>")
def orderbook(symbol: str) -> Response:
    args = _args("depth")
    sym = params.symbol(symbol)
    depth = params.integer(args, "depth", 10, 1, 50)
    ticker = _known_ticker(sym)
    recent = _services().speed(lambda r: r.trades(sym, 50))
    return json_response({"symbol": sym, **market.order_book(sym, ticker, recent, depth)})


# --- alerts ----------------------------------------------------------------------------------------
@api.get("/alerts")
def alerts() -> Response:
    args = _args("unacked_only", "severity", "type", "symbol", "limit", "since", "source")
    unacked = params.boolean(args, "unacked_only", False)
    severities = params.choices(args, "severity", ALERT_SEVERITIES)
    types = params.choices(args, "type", ALERT_TYPES)
    sym = params.optional_symbol(args)
    limit = params.integer(args, "limit", 100, 1, 1000)
    since = params.timestamp(args, "since")
    source = params.source(args)
    rows = _services().history(lambda h: h.alerts(unacked_only=unacked, severities=severities, types=types,
                                                  symbol=sym, limit=limit, since=since, source=source))
    return json_response({"count": len(rows), "alerts": rows})


@api.post("/alerts/<alert_id>/ack")
@requires(OPERATOR, "acknowledging alerts")
def acknowledge(alert_id: str) -> Response:
    """Acknowledged by whoever is signed in (or ``token:<name>``): there is no free-text author."""
    _args()
    if not alert_id or len(alert_id) > 128:
        raise params.BadParameter("alert_id", "must be 1 to 128 characters")
    if request.data:
        try:
            body = orjson.loads(request.data)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise params.BadParameter("body", "must be empty or an empty JSON object")
        if body:
            raise params.BadParameter(sorted(body)[0], "unknown field: the acknowledgement is recorded under "
                                                       "the signed-in user or API token")
    by = current_principal().name
    row = _services().history(lambda h: h.acknowledge(alert_id, by))
    if row is None:
        raise _NotFound(f"no alert with id {alert_id!r}")
    return json_response(row)


# --- statistics and state ----------------------------------------------------------------------------
@api.get("/stats/movers")
def stats_movers() -> Response:
    args = _args("limit")
    limit = params.integer(args, "limit", 5, 1, 50)
    return json_response(market.movers(_services().speed(lambda r: r.prices()), limit))


@api.get("/stats/summary")
def stats_summary() -> Response:
    _args()
    svc = _services()
    counters = svc.speed(lambda r: r.summary())
    symbols = svc.speed(lambda r: r.symbols())
    try:
        history = svc.history(lambda h: h.counts())
    except Unavailable:
        history = None
    status = svc.status()
    return json_response({"pipeline": counters, "symbols": symbols, "symbol_count": len(symbols),
                          "history": history, "status": status.state, "message": status.message})


@api.get("/breakers")
def breakers() -> Response:
    args = _args("source")
    svc = _services()
    s = svc.settings
    source = params.source(args, s.live_source)
    raw = svc.speed(lambda r: r.breakers(source))
    live = source == s.live_source
    symbols = svc.speed(lambda r: r.symbols()) if live else ()  # the live symbols
    # A replay's breakers are shown as its alerts left them: the wall clock is not their time.
    rows = market.breaker_view(raw, symbols, time.time() if live else None,
                               BreakerPolicy(s.breaker_open_seconds, s.breaker_probation_seconds))
    return json_response({"source": source, "count": len(rows),
                          "open": sum(r["state"] == OPEN for r in rows), "breakers": rows})


@api.get("/health")
def health() -> Response:
    _args()
    svc = _services()
    status = svc.status(max_age=0.0)
    healthy = status.redis and status.database is not False
    overall = "ok" if healthy and status.state == "ok" else "degraded" if healthy else "down"
    if current_principal() is None:  # open to anyone (load balancers, compose): the verdict, no details
        return json_response({"status": overall}, 200 if healthy else 503)
    workers = {}
    if status.redis:
        for name in ("producer", "processor", "alert-engine"):
            try:
                beat = svc.speed(lambda r, n=name: r.heartbeat(n))
            except Unavailable:
                beat = None
            workers[name] = {"alive": beat is not None,
                             "age_seconds": round(time.time() - beat["ts"], 3) if beat and "ts" in beat else None}
    body = {"status": overall, "pipeline": status.state, "message": status.message, "redis": status.redis,
            "database": bool(status.database), "last_trade_age_seconds": status.last_trade_age, "workers": workers,
            "database_unavailable_since": status.database_unavailable_since}
    return json_response(body, 200 if healthy else 503)


@api.get("/openapi.json")
def openapi() -> Response:
    _args()
    return json_response(openapi_for(_services().settings.window_list))


@api.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str) -> Response:
    """Anything else under /api/v1 is a JSON 404 (or 405), not the Dash page the catch-all would serve."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != "api.unknown":
            allowed.append(method)
    if allowed:
        return error_response(405, "method_not_allowed", f"use {' or '.join(allowed)} on {request.path}")
    return error_response(404, "not_found", f"no endpoint {request.path}; see /api/v1/openapi.json")


# --- errors ----------------------------------------------------------------------------------------
def _check_range(start, end) -> None:
    if start is not None and end is not None and end <= start:
        raise params.BadParameter("end", "must be later than start")


@api.errorhandler(params.BadParameter)
def _bad_parameter(exc: params.BadParameter) -> Response:
    return error_response(400, "bad_parameter", exc.message, parameter=exc.parameter)


@api.errorhandler(_NotFound)
def _not_found(exc: _NotFound) -> Response:
    return error_response(404, "not_found", str(exc))


@api.errorhandler(Unavailable)
def _unavailable(exc: Unavailable) -> Response:
    logger.warning("API %s: %s", request.path, exc)
    return error_response(503, f"{exc.service}_unavailable", f"the {exc.service} is unreachable; try again shortly",
                          service=exc.service)


def init_app(server: Flask) -> None:
    from app import api_backtests, api_lifecycle, api_quality  # noqa: F401 - their routes join the blueprint

    server.register_blueprint(api)

    @server.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            return error_response(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
        return exc

    @server.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        logger.exception("unhandled error on %s", request.path)
        if request.path.startswith("/api/"):
            return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")
        return Response("Internal server error", status=500, mimetype="text/plain")
