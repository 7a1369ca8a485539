"""A dash[testing] browser plus what the page tests need: open a path, pattern-matching ids, screenshots."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
BUILD = Path(__file__).resolve().parent.parent.parent / "build" / "screenshots"  # not committed


# Runs before any script of every page (CDP injects it, so the page's CSP does not apply to it): keeps every
# Content-Security-Policy violation the browser reports, for ``csp_violations``.
CSP_RECORDER = """window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile,
                               line: e.lineNumber, sample: e.sample});
});"""


class Page:
    """dash_br plus what these tests need: sign in, open a path, pattern-matching ids, screenshots, logs."""

    def __init__(self, br, web):
        self.br, self.web = br, web
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})

    def sign_in(self, account, web=None) -> "Page":
        """Sign in through the sign-in page of ``web`` (default: this page's server), as a person would."""
        from tests import sign_in

        self.viewport(1280, 800)
        sign_in.browser(self.driver, (web or self.web).url, account)
        return self

    @property
    def driver(self):
        return self.br.driver

    def open(self, path: str = "/", wait_for: str = "#status-pill") -> "Page":
        self.viewport(1280, 800)
        self.br.server_url = self.web.url + path
        self.br.wait_for_element(wait_for, timeout=15)
        return self

    def viewport(self, width: int, height: int) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def by_id(self, **pattern):
        """The element of a pattern-matching id (Dash renders it as sorted, compact JSON)."""
        element = self.js("return document.getElementById(arguments[0])",
                          json.dumps(pattern, sort_keys=True, separators=(",", ":")))
        if element is None:
            raise LookupError(f"no element with id {pattern}")
        return element

    def wait(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except Exception as exc:  # noqa: BLE001 - element not there yet
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; last: {last!r}")

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def console_errors(self) -> list:
        return [e for e in self.br.get_logs() if e.get("level") == "SEVERE"]

    def csp_violations(self) -> list:
        """Content-Security-Policy violations reported in the current document."""
        return self.js("return window.__cspViolations || null")

    def screenshot(self, name: str, folder: Path = DOCS) -> Path:
        """Full-height screenshot at 1280 px wide into ``folder`` (docs/: shown in the README)."""
        height = max(800, self.js("return document.documentElement.scrollHeight"))
        self.viewport(1280, height)
        time.sleep(0.8)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"screenshot-{name}.png"
        self.driver.save_screenshot(str(path))
        self.viewport(1280, 800)
        return path
