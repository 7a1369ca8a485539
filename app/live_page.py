"""Pieces every live page shares: the clientside function that (re)connects a WebSocket component."""
from __future__ import annotations


def ws_url_function(path: str) -> str:
    """Clientside callback body: give the WebSocket its absolute URL for ``path``; renew it once closed."""
    return ("function(n, state, url) { return window.dash_clientside.stockit.wsUrl(n, state, url, "
            f"{path!r}); }}")
