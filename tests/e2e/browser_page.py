"""A dash[testing] browser plus what the page tests need: open a path, pattern-matching ids, screenshots."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

# Screenshots land here (git ignores build/); `python -m tests.e2e.screenshots --update-docs` copies the
# README's to docs/.
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "build" / "screenshots"


# Runs before any script of every page (CDP injects it, so the page's CSP does not apply to it): keeps every
# Content-Security-Policy violation the browser reports, for ``csp_violations``.
CSP_RECORDER = """window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile,
                               line: e.lineNumber, sample: e.sample});
});"""

# Runs before any script of every page too: keeps each WebSocket the page opens and how many messages it
# has received, so a test can wait until a stream is connected and has sent its first message.
SOCKET_RECORDER = """window.__sockets = [];
(function () {
  var Native = window.WebSocket;
  function Recorded(url, protocols) {
    var socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    var entry = {url: String(url), socket: socket, messages: 0};
    socket.addEventListener('message', function () { entry.messages += 1; });
    window.__sockets.push(entry);
    return socket;
  }
  Recorded.prototype = Native.prototype;
  ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'].forEach(function (k) { Recorded[k] = Native[k]; });
  window.WebSocket = Recorded;
})();"""
# No Dash callback in flight and no CSS animation running (a price flash, a card sliding in).
SETTLED = """var store = window.store && window.store.getState();
var callbacks = store ? Object.assign({}, store.callbacks) : {};
delete callbacks.stored; delete callbacks.completed;
var pending = Object.values(callbacks).reduce(function (n, list) { return n + list.length; }, 0);
var moving = document.getAnimations().filter(function (a) { return a.playState === 'running'; }).length;
return pending === 0 && moving === 0;"""
# A component's property as the Dash renderer holds it (null when unset, undefined before the layout).
PROP = """var state = window.store && window.store.getState();
var path = state && state.paths && state.paths.strs && state.paths.strs[arguments[0]];
if (!path) { return undefined; }
var node = path.reduce(function (at, key) { return at && at[key]; }, state.layout);
return node && node.props && node.props[arguments[1]] !== undefined ? node.props[arguments[1]] : null;"""
STREAM_READY = """var path = arguments[0];
return window.__sockets.some(function (s) {
  return s.url.indexOf(path) >= 0 && s.socket.readyState === 1 && s.messages > 0;
});"""


class Page:
    """dash_br plus what these tests need: sign in, open a path, pattern-matching ids, screenshots, logs."""

    def __init__(self, br, web):
        self.br, self.web = br, web
        for script in (CSP_RECORDER, SOCKET_RECORDER):
            self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})

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
        """Emulate a ``width`` x ``height`` window; returns once the page has that size."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.wait(lambda: self.js("return innerWidth === arguments[0] && innerHeight === arguments[1]", width,
                                  height), 10, f"a {width}x{height} viewport")

    def prop(self, component_id: str, name: str):
        """A property of a component as the page holds it now (``n_intervals`` of an Interval, ...)."""
        return self.js(PROP, component_id, name)

    def wait_settled(self, timeout: float = 15.0) -> None:
        """Until no Dash callback is in flight and nothing on the page is animating."""
        self.wait(lambda: self.js(SETTLED), timeout, "the page to settle")

    def wait_for_stream(self, path: str, timeout: float = 15.0) -> None:
        """Until a WebSocket to ``path`` is open and has had its first message (the server is sending)."""
        self.wait(lambda: self.js(STREAM_READY, path), timeout, f"the {path} stream")

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

    def screenshot(self, name: str, folder: Path = SCREENSHOTS) -> Path:
        """Full-height screenshot at 1280 px wide, once the page has settled, into build/screenshots/ (the
        README's copies in docs/ change only by ``python -m tests.e2e.screenshots --update-docs``)."""
        height = max(800, self.js("return document.documentElement.scrollHeight"))
        self.viewport(1280, height)
        self.wait_settled()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"screenshot-{name}.png"
        self.driver.save_screenshot(str(path))
        self.viewport(1280, 800)
        return path
