"""Browser tests: the production web server on the session's real stores, driven by dash[testing].

``dash_br`` (dash.testing's browser fixture) runs Debian's Chromium headless with the options of
``pytest_setup_options`` in tests/conftest.py, so plain ``python -m pytest tests`` works.
"""
from __future__ import annotations

import pytest

from tests import market_data
from tests.e2e.browser_page import Page
from tests.web_server import running_web


@pytest.fixture(scope="session")
def web(servers, tmp_path_factory):
    with running_web(servers, tmp_path_factory.mktemp("web"), STOCKIT_STALE_AFTER_SECONDS="120") as server:
        yield server


@pytest.fixture
def market(clean_stores, web):
    m = market_data.build()
    market_data.write(clean_stores, m)
    return m  # the server's caches (status, live hub) catch up within a second: tests wait for what they show


@pytest.fixture
def page(dash_br, web, accounts) -> Page:
    """The browser, signed in as an operator (who may acknowledge alerts)."""
    return Page(dash_br, web).sign_in(accounts["operator"])
