"""``/login`` and ``/logout``: the sign-in page in the app's theme, with failed attempts rate-limited.

Failed sign-ins are counted per client address and per user name by Flask-Limiter in Redis, so the
limit holds across every web process; a success costs nothing.  A wrong user name and a wrong
password get the same message and take the same time (``app.access.verify_password``).
"""
from __future__ import annotations

import logging

import limits
from flask import (Blueprint, Flask, Response, current_app, redirect, render_template_string, request,
                   session, url_for)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from app.access import MAX_PASSWORD, hash_password, needs_rehash, safe_next, verify_password
from app.auth import CLAIMS, Authenticator, SessionUser
from app.services import Unavailable
from pipeline.settings import Settings, SettingsError

logger = logging.getLogger(__name__)
login = Blueprint("login", __name__)
WRONG = "Wrong user name or password."
TOO_MANY = "Too many failed sign-ins. Wait a minute, then try again."
UNAVAILABLE = "Sign-in is unavailable: the database cannot be reached. Try again shortly."

PAGE = """<!DOCTYPE html>
<html lang="en" data-bs-theme="dark">
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stock-IT · Sign in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/bootstrap.min.css"><link rel="stylesheet" href="/assets/stockit.css">
</head>
<body class="login-page">
<main class="login-box panel">
  <div class="brand login-brand"><span>◆ </span>Stock-IT</div>
  <h1 class="login-title">Sign in</h1>
  {% if message %}
  <div class="alert alert-{{ level }} py-2" role="alert" id="login-message">{{ message }}</div>
  {% endif %}
  <form method="post" action="/login" id="login-form">
    <input type="hidden" name="next" value="{{ next }}">
    <label for="username" class="form-label">User name</label>
    <input class="form-control mb-3" id="username" name="username" autocomplete="username"
           autocapitalize="none" spellcheck="false" required {% if not username %}autofocus{% endif %}
           value="{{ username }}">
    <label for="password" class="form-label">Password</label>
    <input class="form-control mb-4" id="password" name="password" type="password"
           autocomplete="current-password" required {% if username %}autofocus{% endif %}>
    <button class="btn btn-warning w-100" type="submit" id="login-submit">Sign in</button>
  </form>
</main>
</body>
</html>"""


def _page(message: str = "", status: int = 200, level: str = "danger", username: str = "",
          target: str = "/") -> Response:
    html = render_template_string(PAGE, message=message, level=level, username=username, next=target)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _auth() -> Authenticator:
    return current_app.extensions["stockit.auth"]


@login.get("/login")
def form() -> Response:
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target, 303)
    return _page(target=target)


@login.post("/login")
def submit() -> Response:
    username = request.form.get("username", "").strip()[:128]
    password = request.form.get("password", "")[:MAX_PASSWORD]
    target = safe_next(request.form.get("next"))
    try:
        row = _auth().accounts(lambda a: a.user_by_name(username))
    except Unavailable:
        return _page(UNAVAILABLE, 503, "warning", username, target)
    if not verify_password(row["password_hash"] if row else None, password):
        logger.info("failed sign-in as %r from %s", username[:64], request.remote_addr)
        return _page(WRONG, 401, username=username, target=target)
    rehashed = hash_password(password) if needs_rehash(row["password_hash"]) else None
    try:
        _auth().accounts(lambda a: a.record_login(row["user_id"], rehashed))
    except Unavailable:
        return _page(UNAVAILABLE, 503, "warning", username, target)
    session.clear()  # nothing from before the sign-in survives it
    login_user(SessionUser(row["user_id"], row["username"], row["role"], row["session_epoch"]))
    session.permanent = True
    session[CLAIMS] = {"id": row["user_id"], "name": row["username"], "role": row["role"]}
    logger.info("%s signed in (%s) from %s", row["username"], row["role"], request.remote_addr)
    return redirect(target, 303)


@login.post("/logout")
def logout() -> Response:
    logout_user()
    session.clear()
    return redirect(url_for("login.form"), 303)


def _too_many(_limit) -> Response:
    return _page(TOO_MANY, 429, username=request.form.get("username", "")[:128],
                 target=safe_next(request.form.get("next")))


def _user_name_key() -> str:
    return "user:" + request.form.get("username", "").strip().lower()[:64]


def init_app(server: Flask, settings: Settings) -> None:
    """The sign-in views and their rate limits (one Limiter per app, storage in Redis)."""
    try:
        limits.parse_many(settings.login_rate_limit)
    except ValueError:
        raise SettingsError(f"STOCKIT_LOGIN_RATE_LIMIT={settings.login_rate_limit!r} is not a rate such as "
                            "'10 per minute'") from None
    limiter = Limiter(get_remote_address, storage_uri=settings.redis_url or "memory://",
                      strategy="moving-window", key_prefix="stockit-login", in_memory_fallback_enabled=True,
                      swallow_errors=True)
    for key in (get_remote_address, _user_name_key):
        limiter.limit(settings.login_rate_limit, key_func=key, methods=["POST"],
                      deduct_when=lambda response: response.status_code == 401,
                      on_breach=_too_many)(login)
    # Only signing in is limited: every other request leaves the limiter at its first check.
    limiter.request_filter(lambda: request.endpoint != "login.submit")
    limiter.init_app(server)
    server.extensions["stockit.login_limiter"] = limiter
    server.register_blueprint(login)
