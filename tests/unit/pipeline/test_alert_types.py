"""The alert vocabulary: one definition of types, severities, ranks, labels and breaker roles."""
import pytest

from pipeline import alert_types as at
from pipeline.dedup import DEFAULT_TTLS
from pipeline.events import SEVERITY_BY_TYPE, SEVERITY_RANK
from pipeline.rulesets.book import RULES


def test_vocab001_every_type_has_a_known_severity_label_and_unit():
    for kind in at.ALERT_KINDS.values():
        assert kind.severity in at.SEVERITIES and kind.label and kind.meaning
        assert kind.breaker in (None, at.TRIP, at.PROBATION)
        assert kind.deviation_unit in (at.PERCENT, at.MULTIPLE, at.SIGMAS)


def test_vocab002_ranks_order_the_severities():
    assert sorted(at.SEVERITIES, key=lambda s: -at.SEVERITY_RANK[s]) == list(at.SEVERITIES)
    assert set(at.SEVERITY_LABEL) == set(at.SEVERITIES)


def test_vocab003_other_modules_use_the_one_definition():
    assert SEVERITY_BY_TYPE is at.SEVERITY_BY_TYPE and SEVERITY_RANK is at.SEVERITY_RANK
    assert DEFAULT_TTLS == at.DEDUP_SECONDS
    raised = {t for rule in RULES.values() for t in rule.alert_types}
    assert raised == set(at.ALERT_TYPES)


@pytest.mark.parametrize("alert_type, severity", [
    ("CIRCUIT_BREAKER", "CRITICAL"), ("TRADING_PAUSE", "CRITICAL"), ("PRICE_SPIKE", "HIGH"),
    ("LIMIT_STATE", "HIGH"), ("RETURN_OUTLIER", "HIGH"), ("VOLUME_SPIKE", "MEDIUM"),
])
def test_vocab004_severities(alert_type, severity):
    assert at.severity_of(alert_type) == severity
