"""REST endpoints of the alert lifecycle, on the API blueprint: snoozes (``/api/v1/snoozes``), notes on an
alert (``/api/v1/alerts/<id>/notes``) and the audit trail (``/api/v1/audit``).

Anyone signed in reads; creating or deleting a snooze and writing a note need the operator role, and
are recorded under the signed-in user (or ``token:<name>``) with their audit row.
"""
from __future__ import annotations

import logging
import time

from flask import Response, request

from app import params
from app.access import OPERATOR
from app.api import _args, _NotFound, _services, api, error_response, json_response
from app.auth import current_principal, requires
from pipeline.history.lifecycle import AlertLifecycle
from pipeline.snooze import REQUEST_FIELDS, SNOOZE_STATES, SnoozeRequestError, check_request

logger = logging.getLogger(__name__)
NOTE_MAX = 2000


def _lifecycle(fn):
    return _services().history(lambda h: fn(AlertLifecycle(h)))


def _alert_id(alert_id: str) -> str:
    if not alert_id or len(alert_id) > 128:
        raise params.BadParameter("alert_id", "must be 1 to 128 characters")
    return alert_id


# --- snoozes -------------------------------------------------------------------------------------------
@api.get("/snoozes")
def list_snoozes() -> Response:
    args = _args("state", "limit")
    state = args.get("state") or "active"
    if state not in SNOOZE_STATES:
        raise params.BadParameter("state", f"must be one of {', '.join(SNOOZE_STATES)}")
    limit = params.integer(args, "limit", 100, 1, 1000)
    rows = _lifecycle(lambda lc: lc.snoozes(state, limit))
    return json_response({"count": len(rows), "snoozes": rows})


@api.post("/snoozes")
@requires(OPERATOR, "snoozing alerts")
def create_snooze() -> Response:
    _args()
    fields = params.json_object(request.get_data(), REQUEST_FIELDS)
    try:
        req = check_request(fields, time.time())
    except SnoozeRequestError as exc:
        raise params.BadParameter(exc.field, exc.message) from None
    row = _lifecycle(lambda lc: lc.create_snooze(req, current_principal().name))
    logger.info("snooze %d by %s: %s", row["snooze_id"], current_principal().name, row["comment"][:80])
    return json_response(row, 201)


def _snooze_id(snooze_id: str) -> int:
    if not snooze_id.isdigit() or len(snooze_id) > 18:
        raise params.BadParameter("snooze_id", f"{snooze_id!r} is not a snooze id")
    return int(snooze_id)


@api.get("/snoozes/<snooze_id>")
def get_snooze(snooze_id: str) -> Response:
    _args()
    row = _lifecycle(lambda lc: lc.snooze(_snooze_id(snooze_id)))
    if row is None:
        raise _NotFound(f"no snooze {snooze_id}")
    return json_response(row)


@api.delete("/snoozes/<snooze_id>")
@requires(OPERATOR, "ending snoozes")
def delete_snooze(snooze_id: str) -> Response:
    """End a snooze now; one already over (expired or deleted) answers 409 and stays as it was."""
    _args()
    sid = _snooze_id(snooze_id)
    row, ended = _lifecycle(lambda lc: lc.delete_snooze(sid, current_principal().name))
    if row is None:
        raise _NotFound(f"no snooze {snooze_id}")
    if not ended:
        return error_response(409, "snooze_ended", f"snooze {sid} is {row['state']} already")
    return json_response(row)


# --- notes ---------------------------------------------------------------------------------------------
@api.get("/alerts/<alert_id>/notes")
def list_notes(alert_id: str) -> Response:
    _args()
    aid = _alert_id(alert_id)
    if _services().history(lambda h: h.alert(aid)) is None:
        raise _NotFound(f"no alert with id {aid!r}")
    rows = _lifecycle(lambda lc: lc.notes(aid))
    return json_response({"alert_id": aid, "count": len(rows), "notes": rows})


@api.post("/alerts/<alert_id>/notes")
@requires(OPERATOR, "annotating alerts")
def add_note(alert_id: str) -> Response:
    _args()
    aid = _alert_id(alert_id)
    body = params.json_object(request.get_data(), ("text",))
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > NOTE_MAX:
        raise params.BadParameter("text", f"the note: 1 to {NOTE_MAX} characters")
    row = _lifecycle(lambda lc: lc.add_note(aid, text.strip(), current_principal().name))
    if row is None:
        raise _NotFound(f"no alert with id {aid!r}")
    return json_response(row, 201)


# --- audit trail ---------------------------------------------------------------------------------------
@api.get("/audit")
def audit() -> Response:
    args = _args("alert_id", "snooze_id", "actor", "limit")
    alert_id = _alert_id(args["alert_id"]) if args.get("alert_id") else None
    snooze_id = _snooze_id(args["snooze_id"]) if args.get("snooze_id") else None
    actor = args.get("actor") or None
    limit = params.integer(args, "limit", 100, 1, 1000)
    rows = _lifecycle(lambda lc: lc.audit(alert_id, snooze_id, limit, actor))
    return json_response({"count": len(rows), "events": rows})
