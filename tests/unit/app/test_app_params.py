"""REST parameter validation: clean values or a BadParameter naming the parameter."""
import pytest
from werkzeug.datastructures import MultiDict

from app import params
from app.params import BadParameter


def bad(fn, *args) -> BadParameter:
    with pytest.raises(BadParameter) as info:
        fn(*args)
    return info.value


@pytest.mark.parametrize("raw, value", [(None, 50), ("", 50), ("1", 1), ("100", 100)])
def test_prm001_integer_in_range(raw, value):
    args = {} if raw is None else {"limit": raw}
    assert params.integer(args, "limit", 50, 1, 100) == value


@pytest.mark.parametrize("raw", ["0", "101", "-3", "abc", "1.5", "1e3"])
def test_prm002_integer_rejected_with_its_name(raw):
    e = bad(params.integer, {"limit": raw}, "limit", 50, 1, 100)
    assert e.parameter == "limit" and raw in e.message or "between" in e.message


def test_prm003_choice_of_window():
    assert params.choice({}, "window_seconds", 60, (60, 300, 900)) == 60
    assert params.choice({"window_seconds": "900"}, "window_seconds", 60, (60, 300, 900)) == 900
    for raw in ("120", "x", "60.0"):
        assert bad(params.choice, {"window_seconds": raw}, "window_seconds", 60, (60, 300, 900)).parameter == \
            "window_seconds"


@pytest.mark.parametrize("raw, value", [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False),
                                        ("0", False), ("no", False), ("", False)])
def test_prm004_boolean(raw, value):
    assert params.boolean({"unacked_only": raw}, "unacked_only") is value


def test_prm005_boolean_rejects_other_words():
    assert bad(params.boolean, {"unacked_only": "maybe"}, "unacked_only").parameter == "unacked_only"


@pytest.mark.parametrize("raw, value", [
    ("2026-01-01T00:00:00Z", 1767225600.0), ("2026-01-01T00:00:00", 1767225600.0),
    ("2026-01-01T01:00:00+01:00", 1767225600.0), ("2026-01-01T01:00:00 01:00", 1767225600.0),
    ("1767225600", 1767225600.0), ("1767225600.25", 1767225600.25), ("2026-01-01", 1767225600.0)])
def test_prm006_timestamp_iso_or_epoch(raw, value):
    assert params.timestamp({"start": raw}, "start") == value


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "-5", "nan", "inf", "99999999999999"])
def test_prm007_timestamp_rejected(raw):
    assert bad(params.timestamp, {"start": raw}, "start").parameter == "start"


def test_prm008_symbols_normalised_and_checked():
    assert params.symbol("aapl") == "AAPL" and params.symbol("BTC-USD") == "BTC-USD"
    for raw in ("", "-X", "A" * 30, "AB CD", "A$"):
        assert bad(params.symbol, raw).parameter == "symbol"
    assert params.optional_symbol({}) is None and params.optional_symbol({"symbol": "msft"}) == "MSFT"


def test_prm009_choices_comma_or_repeated_case_insensitive():
    args = MultiDict([("severity", "critical,High"), ("severity", "HIGH")])
    assert params.choices(args, "severity", ("CRITICAL", "HIGH", "MEDIUM")) == ["CRITICAL", "HIGH"]
    assert params.choices({}, "severity", ("CRITICAL",)) == []
    e = bad(params.choices, {"severity": "urgent"}, "severity", ("CRITICAL", "HIGH"))
    assert e.parameter == "severity" and "'URGENT'" in e.message


def test_prm010_unknown_parameters_named():
    params.only({"limit": "1"}, ["limit"])
    e = bad(params.only, {"limt": "1"}, ["limit"])
    assert e.parameter == "limt" and "limit" in e.message


@pytest.mark.parametrize("raw, value", [(None, "live"), ("", "live"), ("spx-daily", "spx-daily"),
                                        ("SPX-Daily", "spx-daily"), (" backfill ", "backfill")])
def test_prm020_source_case_insensitive_with_a_default(raw, value):
    args = {} if raw is None else {"source": raw}
    assert params.source(args, "live") == value


@pytest.mark.parametrize("raw", ["spx daily", "-x", "x" * 41, "a/b"])
def test_prm021_source_rejected_with_its_name(raw):
    with pytest.raises(BadParameter) as caught:
        params.source({"source": raw})
    assert caught.value.parameter == "source" and "not a source name" in caught.value.message
