"""Alert deduplication: one alert per (type, symbol) within a TTL, with an injected clock."""
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.dedup import DEFAULT_TTLS, FALLBACK_TTL, DedupPolicy

T0 = 1_717_000_000.0


class InMemoryDedup:
    """A model of the policy over a dict and an injected clock: what the alert engine's Redis script
    decides (SET NX of the window's key with the TTL; the holder's id makes a re-seen alert itself)."""

    def __init__(self, policy: DedupPolicy):
        self.policy = policy
        self.windows: dict[str, tuple[str, float]] = {}

    def check(self, alert_type: str, symbol: str, alert_id: str, now: float) -> bool:
        """True when the alert is a duplicate; otherwise it opens (or owns) the window."""
        key = self.policy.key(alert_type, symbol)
        held = self.windows.get(key)
        if held is not None and held[1] <= now:
            held = None
        if self.policy.is_duplicate(held[0] if held else None, alert_id):
            return True
        if held is None:
            self.windows[key] = (alert_id, now + self.policy.ttl(alert_type))
        return False


@pytest.mark.parametrize("alert_type, ttl", [("CIRCUIT_BREAKER", 300.0), ("PRICE_SPIKE", 60.0),
                                             ("VOLUME_SPIKE", 30.0)])
def test_ddp001_ttl_per_alert_type(alert_type, ttl):
    d = InMemoryDedup(DedupPolicy())
    assert d.policy.ttl(alert_type) == ttl
    assert d.check(alert_type, "AAPL", "a1", T0) is False
    assert d.check(alert_type, "AAPL", "a2", T0 + 1) is True
    assert d.check(alert_type, "AAPL", "a3", T0 + ttl - 0.001) is True
    assert d.check(alert_type, "AAPL", "a4", T0 + ttl) is False          # window over: a4 opens a new one
    assert d.check(alert_type, "AAPL", "a5", T0 + ttl + 1) is True
    assert d.check(alert_type, "AAPL", "a6", T0 + 2 * ttl) is False


def test_ddp002_an_alert_is_not_a_duplicate_of_itself():
    d = InMemoryDedup(DedupPolicy())
    assert d.check("PRICE_SPIKE", "AAPL", "a1", T0) is False
    assert d.check("PRICE_SPIKE", "AAPL", "a1", T0 + 30) is False  # e.g. redelivered after a restart
    assert d.check("PRICE_SPIKE", "AAPL", "a2", T0 + 59) is True
    # re-checking does not extend the window
    assert d.check("PRICE_SPIKE", "AAPL", "a3", T0 + 60) is False


def test_ddp003_windows_are_per_type_and_symbol():
    d = InMemoryDedup(DedupPolicy())
    assert d.check("PRICE_SPIKE", "AAPL", "a1", T0) is False
    assert d.check("PRICE_SPIKE", "MSFT", "m1", T0) is False
    assert d.check("VOLUME_SPIKE", "AAPL", "a2", T0) is False
    assert d.check("CIRCUIT_BREAKER", "AAPL", "a3", T0) is False
    assert d.check("PRICE_SPIKE", "AAPL", "a4", T0 + 1) is True
    assert d.check("VOLUME_SPIKE", "AAPL", "a5", T0 + 31) is False


def test_ddp004_suppressed_alerts_do_not_extend_the_window():
    d = InMemoryDedup(DedupPolicy())
    d.check("VOLUME_SPIKE", "AAPL", "a1", T0)
    for i in range(1, 30):
        assert d.check("VOLUME_SPIKE", "AAPL", f"x{i}", T0 + i) is True
    assert d.check("VOLUME_SPIKE", "AAPL", "late", T0 + 30) is False


def test_ddp005_configured_and_fallback_ttls():
    policy = DedupPolicy({"PRICE_SPIKE": 5.0})
    assert policy.ttl("PRICE_SPIKE") == 5.0
    assert policy.ttl("CIRCUIT_BREAKER") == FALLBACK_TTL == policy.ttl("NEW_RULE")
    d = InMemoryDedup(policy)
    assert [d.check("PRICE_SPIKE", "X", i, T0 + t) for i, t in (("a", 0), ("b", 4.9), ("c", 5))] == \
        [False, True, False]
    assert DedupPolicy().ttls == DEFAULT_TTLS and DedupPolicy().ttls is not DEFAULT_TTLS


@pytest.mark.parametrize("holder, alert_id, duplicate", [
    (None, "a", False), ("a", "a", False), ("a", "b", True),
])
def test_ddp006_is_duplicate_table(holder, alert_id, duplicate):
    assert DedupPolicy.is_duplicate(holder, alert_id) is duplicate
    assert DedupPolicy.key("PRICE_SPIKE", "BTC-USD") == "PRICE_SPIKE:BTC-USD"


@settings(max_examples=150)
@given(st.lists(st.tuples(st.floats(0, 100), st.integers(0, 4)), max_size=40))
def test_ddp007_matches_a_direct_model(steps):
    """Model: an alert passes iff no other alert passed in the last ttl seconds (or it is that one)."""
    d = InMemoryDedup(DedupPolicy())
    passed: list[tuple[float, str]] = []
    now = T0
    for dt, n in steps:
        now += dt
        aid = f"id{n}"
        open_window = [(t, i) for t, i in passed if t + 60.0 > now][-1:]
        expected_dup = bool(open_window) and open_window[0][1] != aid
        assert d.check("PRICE_SPIKE", "AAPL", aid, now) is expected_dup
        if not expected_dup and not open_window:
            passed.append((now, aid))
