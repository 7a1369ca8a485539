"""REST endpoints of data quality, on the API blueprint: the figures (``GET /api/v1/quality``) and the
browser's latency beacon (``POST /api/v1/quality/browser-latency``), which any signed-in page may send:
it is a measurement, not an action, but like every POST it must come from this site (Origin check)."""
from __future__ import annotations

import logging

from flask import Response, current_app, request

from app import params, quality
from app.api import _args, _services, api, json_response
from pipeline.history.quality import WINDOWS_MINUTES

logger = logging.getLogger(__name__)


@api.get("/quality")
def quality_report() -> Response:
    args = _args("minutes", "symbol")
    minutes = params.choice(args, "minutes", 60, WINDOWS_MINUTES)
    return json_response(quality.report(_services(), minutes, params.optional_symbol(args)))


@api.post("/quality/browser-latency")
def browser_latency() -> Response:
    _args()
    body = params.json_object(request.get_data(), ("samples",))
    try:
        samples = quality.check_samples(body)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise params.BadParameter(field, message) from None
    metrics = current_app.extensions["stockit.metrics"]
    return json_response({"recorded": quality.record_browser(_services(), samples, metrics.browser_latency)})
