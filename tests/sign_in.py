"""Signing in like a user, for the tests and the benchmarks: an account per role, and the sign-in form
submitted over HTTP (requests), through a Flask test client, or typed into a browser."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

import requests

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: str


def create_accounts(database_url: str, prefix: str = "test") -> dict[str, Account]:
    """A user per role (``<prefix>-<role>``) with a fresh random password, made or reset; keyed by role."""
    from app.access import CredentialError
    from app.accounts import AccountStore
    from pipeline.history import Pool

    store = AccountStore(Pool(database_url, 1, "stockit-tests"))
    accounts = {}
    try:
        for role in ROLES:
            account = Account(f"{prefix}-{role}", secrets.token_urlsafe(12), role)
            try:
                store.add_user(account.username, account.password, role)
            except CredentialError:
                store.set_password(account.username, account.password)
            accounts[role] = account
    finally:
        store.db.close()
    return accounts


def form(account: Account, next_path: str = "/") -> dict[str, str]:
    return {"username": account.username, "password": account.password, "next": next_path}


def http_session(base_url: str, account: Account, timeout: float = 10.0) -> requests.Session:
    """A requests session signed in through ``POST /login``, as a browser on that origin would."""
    session = requests.Session()
    r = session.post(base_url + "/login", data=form(account), headers={"Origin": base_url},
                     allow_redirects=False, timeout=timeout)
    if r.status_code != 303:
        raise AssertionError(f"sign-in as {account.username} failed: {r.status_code} {r.text[:300]}")
    return session


def cookie_header(session: requests.Session) -> str:
    """The ``Cookie`` header value of a signed-in session (for clients other than requests)."""
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def flask_client(client, account: Account):
    """Sign a Flask test client in (it keeps the session cookie); returns the client."""
    r = client.post("/login", data=form(account), headers={"Origin": "http://localhost"})
    assert r.status_code == 303, f"sign-in as {account.username}: {r.status_code} {r.get_data(True)[:300]}"
    return client


def browser(driver, base_url: str, account: Account, next_path: str = "/", timeout: float = 15.0):
    """Type the account into the sign-in page and submit, as a person would; wait to leave the page."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/login?next={quote(next_path)}")
    driver.find_element(By.ID, "username").send_keys(account.username)
    driver.find_element(By.ID, "password").send_keys(account.password)
    driver.find_element(By.ID, "login-submit").click()
    deadline = time.monotonic() + timeout
    while "/login" in driver.current_url:
        if time.monotonic() > deadline:
            raise AssertionError(f"still signing in after {timeout:.0f}s: {driver.page_source[:500]}")
        time.sleep(0.1)
