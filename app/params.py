"""Validation of REST query parameters: each reader returns a clean value or raises BadParameter."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Iterable, Mapping, Optional

from pipeline.events import SOURCE_MAX, SYMBOL_PATTERN, check_source

_SYMBOL = re.compile(SYMBOL_PATTERN)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class BadParameter(ValueError):
    """A request parameter is missing, malformed or out of range; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def only(args: Mapping[str, str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise BadParameter(unknown[0], f"unknown parameter; this endpoint accepts: {accepted}")


def symbol(value: str, name: str = "symbol") -> str:
    s = (value or "").strip().upper()
    if not _SYMBOL.match(s):
        raise BadParameter(name, f"{value!r} is not a symbol (letters, digits and . _ / -, up to 24 characters)")
    return s


def optional_symbol(args: Mapping[str, str], name: str = "symbol") -> Optional[str]:
    raw = args.get(name)
    return None if raw is None or raw == "" else symbol(raw, name)


def source(args: Mapping[str, str], default: Optional[str] = None, name: str = "source") -> Optional[str]:
    """A source of trades (case-insensitive), or ``default`` when absent."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return check_source(raw.strip().lower())
    except ValueError:
        raise BadParameter(name, f"{raw[:60]!r} is not a source name (letters, digits and . _ -, up to "
                                 f"{SOURCE_MAX} characters)") from None


def _whole_number(raw: str) -> Optional[int]:
    try:
        return int(raw)
    except ValueError:
        return None


def integer(args: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    value = _whole_number(raw)
    if value is None:
        raise BadParameter(name, f"{raw!r} is not a whole number")
    if not lo <= value <= hi:
        raise BadParameter(name, f"must be between {lo} and {hi}, got {value}")
    return value


def choice(args: Mapping[str, str], name: str, default: int, allowed: Iterable[int]) -> int:
    allowed = tuple(allowed)
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    value = _whole_number(raw)
    if value not in allowed:
        raise BadParameter(name, f"must be one of {', '.join(map(str, allowed))}, got {raw!r}")
    return value


def boolean(args: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise BadParameter(name, f"{raw!r} is not a boolean (true/false)")


def timestamp(args: Mapping[str, str], name: str) -> Optional[float]:
    """ISO-8601 (naive means UTC) or epoch seconds -> epoch seconds."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        # An unencoded "+00:00" in a query string arrives as " 00:00".
        text = re.sub(r" (\d\d:?\d\d)$", r"+\1", raw.strip())
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise BadParameter(name, f"{raw!r} is neither ISO-8601 nor epoch seconds") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        value = dt.timestamp()
    if not math.isfinite(value) or not 0 <= value < 32503680000:  # 1970 .. 3000
        raise BadParameter(name, f"{raw!r} is out of range")
    return value


def choices(args: Mapping[str, str], name: str, allowed: Iterable[str]) -> list[str]:
    """Comma-separated, case-insensitive members of ``allowed`` (repeated parameters are joined)."""
    allowed = tuple(allowed)
    getlist = getattr(args, "getlist", None)
    raws = getlist(name) if getlist else ([args[name]] if name in args else [])
    values = [v.strip().upper() for raw in raws for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise BadParameter(name, f"{bad[0]!r} is not one of {', '.join(allowed)}")
    return list(dict.fromkeys(values))


def json_object(raw: bytes, allowed: Iterable[str]) -> dict:
    """A request body that must be a JSON object of ``allowed`` fields (BadParameter names the wrong one)."""
    import orjson

    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadParameter("body", f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadParameter("body", "must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadParameter(unknown[0], f"unknown field; accepted: {', '.join(allowed)}")
    return body
