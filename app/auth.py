"""Who is asking: sign-in sessions (Flask-Login), API tokens, and the one guard every request passes.

``guard`` runs before every request — Dash pages and their callbacks, the REST API, WebSockets, SSE,
the docs and metrics — so no route can forget it.  Only signing in and out, the sign-in page's two
style sheets and ``GET /api/v1/health`` (without details) are open.  A request is signed in by the
session cookie or by ``Authorization: Bearer <token>``; an anonymous page request is sent to the
sign-in page, any other anonymous request gets a 401 JSON error.  State-changing requests and
WebSocket upgrades from another site get a 403 whoever sends them (``app.access.cross_site_refusal``).
Roles are checked where the action is (``requires``), which answers 403 JSON.
"""
from __future__ import annotations

import functools
import hmac
import logging
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Optional

import orjson
from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user

from app.access import Principal, bearer_token, cross_site_refusal, origin_list, token_digest
from app.accounts import AccountStore
from app.secret_key import session_secret
from app.services import Services, Unavailable
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
login_manager = LoginManager()
SESSION_COOKIE = "stockit_session"
CLAIMS = "stockit_user"          # session key: {"id", "name", "role"} as signed in
CACHE_SECONDS = 5.0              # a removed user, a revoked token or a new role takes effect within this
CACHE_ENTRIES = 10_000
HEALTH = "/api/v1/health"
LOGIN_ASSETS = frozenset({"/assets/bootstrap.min.css", "/assets/stockit.css"})
OPEN_ROUTES = frozenset({("GET", "/login"), ("HEAD", "/login"), ("POST", "/login"), ("POST", "/logout"),
                         ("GET", HEALTH), ("HEAD", HEALTH)})
METRICS = "/metrics"
NOT_PAGES = ("/api/", "/ws/", "/_", "/assets/", "/docs/assets/", METRICS)


class SessionUser(UserMixin):
    """A signed-in user as Flask-Login sees it; the id carries the session epoch (sql/004_auth.sql)."""

    def __init__(self, user_id: int, username: str, role: str, epoch: int):
        self.user_id, self.username, self.role, self.epoch = user_id, username, role, epoch

    def get_id(self) -> str:
        return f"{self.user_id}:{self.epoch}"


class PermissionDenied(Exception):
    """The principal's role does not include the one an action needs (answered as 403 JSON)."""

    def __init__(self, needed: str, action: str, principal: Optional[Principal]):
        role = principal.role if principal else "anonymous"
        super().__init__(f"{action} needs the {needed} role; you are {role}")
        self.needed = needed


class _TtlCache:
    """Values loaded at most once per ``seconds``; a failed load is not kept."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        with self._lock:
            if len(self._items) >= CACHE_ENTRIES:
                self._items.clear()
            self._items[key] = (now + self.seconds, value)
        return value


class Authenticator:
    """Turns a request into a :class:`Principal`: API token first, then the session cookie."""

    def __init__(self, settings: Settings, services: Services):
        self.services = services
        self.allowed_origins = origin_list(settings.allowed_origins)
        self.metrics_token = settings.metrics_token
        self.users = _TtlCache(CACHE_SECONDS)
        self.tokens = _TtlCache(CACHE_SECONDS)

    def accounts(self, fn: Callable[[AccountStore], Any]) -> Any:
        """Run ``fn`` on the account store over the web's PostgreSQL pool (outages raise Unavailable)."""
        return self.services.history(lambda h: fn(AccountStore(h)))

    def refusal(self) -> Optional[str]:
        return cross_site_refusal(request.method, request.headers, f"{request.scheme}://{request.host}",
                                  self.allowed_origins)

    def session_user(self, user_id: str) -> Optional[SessionUser]:
        uid_text, _, epoch = user_id.partition(":")
        try:
            uid = int(uid_text)
        except ValueError:
            return None
        try:
            row = self.users.get(uid, lambda: self.accounts(lambda a: a.user_by_id(uid)))
        except Unavailable:
            # The database is down: the signed cookie still says who signed in, so pages can show the
            # outage; removal or a new password applies again once the database answers.
            claims = session.get(CLAIMS) or {}
            if claims.get("id") != uid:
                return None
            return SessionUser(uid, claims["name"], claims["role"], int(epoch or 0))
        if row is None or str(row["session_epoch"]) != epoch:
            return None
        return SessionUser(uid, row["username"], row["role"], row["session_epoch"])

    def principal(self) -> Principal | Response | None:
        """Who sent this request; a Response when a token cannot be accepted or checked; None if nobody."""
        token = bearer_token(request.headers.get("Authorization"))
        if token is not None:
            if (request.path == METRICS and self.metrics_token
                    and hmac.compare_digest(token.encode(), self.metrics_token.encode())):
                return Principal("metrics", "", "metrics")
            digest = token_digest(token)
            try:
                row = self.tokens.get(digest, lambda: self.accounts(lambda a: a.active_token(digest)))
            except Unavailable:
                return error(503, "database_unavailable", "API tokens cannot be checked: the database is "
                                                          "unreachable; try again shortly")
            if row is None or (row["expires_ts"] is not None and row["expires_ts"] <= time.time()):
                return _unauthorized("the API token is unknown, expired or revoked")
            return Principal(f"token:{row['name']}", row["role"], "token")
        if current_user.is_authenticated:
            return Principal(current_user.username, current_user.role, "session")
        return None


def error(status: int, code: str, message: str) -> Response:
    """The API's error shape: ``{"error": {"status", "code", "message"}}``."""
    body = {"error": {"status": status, "code": code, "message": message}}
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _unauthorized(message: str) -> Response:
    response = error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="stockit"'
    return response


def current_principal() -> Optional[Principal]:
    """Who the current request acts for (None on the open routes when nobody signed in)."""
    return g.get("stockit_principal")


def requires(role: str, action: str) -> Callable:
    """Decorate a view or Dash callback: principals below ``role`` get :class:`PermissionDenied` (403)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            principal = current_principal()
            if principal is None or not principal.may(role):
                raise PermissionDenied(role, action, principal)
            return fn(*args, **kwargs)
        return inner
    return wrap


def _is_page_request() -> bool:
    return (request.method in ("GET", "HEAD") and not request.path.startswith(NOT_PAGES)
            and request.headers.get("Upgrade", "").lower() != "websocket")


def guard() -> Optional[Response]:
    """The before_request check of every route (see the module docstring)."""
    auth: Authenticator = current_app.extensions["stockit.auth"]
    refusal = auth.refusal()
    if refusal:
        logger.warning("refused %s %s: %s", request.method, request.path, refusal)
        return error(403, "cross_site_request", refusal)
    if (request.method, request.path) in OPEN_ROUTES or (
            request.method in ("GET", "HEAD") and request.path in LOGIN_ASSETS):
        if request.path == HEALTH:
            found = auth.principal()
            g.stockit_principal = found if isinstance(found, Principal) else None
        return None
    found = auth.principal()
    if isinstance(found, Response):
        return found
    if found is None:
        if _is_page_request():
            return redirect(url_for("login.form", next=request.full_path.rstrip("?")))
        return _unauthorized("sign in, or send Authorization: Bearer <API token>")
    if found.kind == "metrics" and request.path != METRICS:
        return _unauthorized("the metrics token opens /metrics only")
    g.stockit_principal = found
    return None


@login_manager.user_loader
def _load_user(user_id: str) -> Optional[SessionUser]:
    return current_app.extensions["stockit.auth"].session_user(user_id)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session whose Secure flag can follow the request's scheme ("auto")."""

    def __init__(self, mode: str):
        self.mode = mode

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure if self.mode == "auto" else self.mode == "true"


def init_app(server: Flask, settings: Settings, services: Services) -> None:
    """Sessions, the guard, the sign-in views and the 403 handler on ``server``."""
    from app import login

    server.config.update(
        SECRET_KEY=session_secret(settings.secret_key, settings.home_path),
        SESSION_COOKIE_NAME=SESSION_COOKIE, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        # The cookie is signed once at sign-in and lasts its lifetime, instead of being re-signed and re-sent
        # on every response (which cost each API request more than the rest of the guard).
        SESSION_REFRESH_EACH_REQUEST=False)
    server.session_interface = _SessionInterface(settings.cookie_secure_mode)
    login_manager.session_protection = None  # no "fresh" logins: no hash of address + agent per request
    login_manager.init_app(server)
    server.extensions["stockit.auth"] = Authenticator(settings, services)
    server.before_request(guard)
    server.register_error_handler(
        PermissionDenied, lambda exc: error(403, "forbidden", str(exc)))
    login.init_app(server, settings)
