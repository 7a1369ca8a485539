"""Keep a page callback on its feet when a store is down: log, and return a fallback instead of a 500."""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

from app.services import Unavailable

logger = logging.getLogger(__name__)


def guarded(fallback: Callable[[Unavailable], Any]) -> Callable:
    """Wrap a callback: on :class:`Unavailable` return ``fallback(exc)`` (the banner says why)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Unavailable as exc:
                logger.info("%s: %s", fn.__name__, exc)
                return fallback(exc)
        return inner
    return wrap
