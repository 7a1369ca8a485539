"""Typed settings from the environment: parsing, errors naming the variable, masked secrets."""
import dataclasses

import pytest

from pipeline.settings import Settings, SettingsError, _mask


def test_set001_defaults_from_an_empty_environment():
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.trade_rate, s.grace_seconds, s.spike_pct, s.breaker_pct, s.volume_multiple) == \
        (50.0, 2.0, 5.0, 10.0, 3.0)
    assert (s.rolling_window, s.min_history, s.web_port) == (100, 20, 8088)
    assert (s.producer_metrics_port, s.processor_metrics_port, s.alert_metrics_port) == (8001, 8002, 8003)
    assert s.window_list == (60, 300, 900)
    assert s.dedup_ttl_map == {"CIRCUIT_BREAKER": 300.0, "PRICE_SPIKE": 60.0, "VOLUME_SPIKE": 30.0}
    assert s.symbol_list == ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "BTC-USD", "ETH-USD", "EUR-USD",
                             "GBP-USD", "JPY-USD"]
    assert (s.topic_trades, s.topic_aggregates, s.topic_alerts) == \
        ("raw-trades", "trade-aggregates", "trade-alerts")
    assert s.rule_override_map == {} and s.webhook_url_list == []


@pytest.mark.parametrize("var, raw, field, value", [
    ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092", "kafka_bootstrap_servers", "k1:9092,k2:9092"),
    ("REDIS_URL", "redis://localhost:6380/1", "redis_url", "redis://localhost:6380/1"),
    ("STOCKIT_TRADE_RATE", "0", "trade_rate", 0.0),
    ("STOCKIT_TRADE_RATE", "2500.5", "trade_rate", 2500.5),
    ("STOCKIT_SEED", "42", "seed", 42),
    ("STOCKIT_WEB_PORT", " 9000 ", "web_port", 9000),
    ("STOCKIT_GRACE_SECONDS", "0.5", "grace_seconds", 0.5),
    ("STOCKIT_MIN_HISTORY", "5", "min_history", 5),
    ("STOCKIT_LOG_FORMAT", "json", "log_format", "json"),
])
def test_set002_parses_each_type(var, raw, field, value):
    s = Settings.from_env({var: raw})
    got = getattr(s, field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("var, raw, kind", [
    ("STOCKIT_WEB_PORT", "eighty", "int"),
    ("STOCKIT_WEB_PORT", "80.5", "int"),
    ("STOCKIT_BATCH_SIZE", "", "int"),
    ("STOCKIT_TRADE_RATE", "fast", "float"),
    ("STOCKIT_GRACE_SECONDS", "2s", "float"),
])
def test_set003_type_errors_name_the_variable(var, raw, kind):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({var: raw})
    assert var in str(info.value) and repr(raw) in str(info.value) and kind in str(info.value)


@pytest.mark.parametrize("env, prop, var", [
    ({"STOCKIT_WINDOWS": "60,abc"}, "window_list", "STOCKIT_WINDOWS"),
    ({"STOCKIT_WINDOWS": "0,60"}, "window_list", "STOCKIT_WINDOWS"),
    ({"STOCKIT_WINDOWS": " , "}, "window_list", "STOCKIT_WINDOWS"),
    ({"STOCKIT_DEDUP_TTLS": "PRICE_SPIKE=soon"}, "dedup_ttl_map", "STOCKIT_DEDUP_TTLS"),
    ({"STOCKIT_DEDUP_TTLS": "PRICE_SPIKE"}, "dedup_ttl_map", "STOCKIT_DEDUP_TTLS"),
    ({"STOCKIT_RULE_OVERRIDES": "{not json"}, "rule_override_map", "STOCKIT_RULE_OVERRIDES"),
    ({"STOCKIT_RULE_OVERRIDES": "[1, 2]"}, "rule_override_map", "STOCKIT_RULE_OVERRIDES"),
    ({"STOCKIT_SOURCE": "Live Feed"}, "live_source", "STOCKIT_SOURCE"),
    ({"STOCKIT_SOURCE": ""}, "live_source", "STOCKIT_SOURCE"),
    ({"STOCKIT_WEBHOOK_SOURCES": "live,Replay!"}, "webhook_source_list", "STOCKIT_WEBHOOK_SOURCES"),
])
def test_set004_bad_structured_values_name_the_variable(env, prop, var):
    s = Settings.from_env(env)
    with pytest.raises(SettingsError, match=var):
        getattr(s, prop)


def test_set005_structured_values():
    s = Settings.from_env({
        "STOCKIT_SYMBOLS": " aapl, btc-usd ,,", "STOCKIT_WINDOWS": "900, 60,300",
        "STOCKIT_DEDUP_TTLS": "price_spike=10, VOLUME_SPIKE = 5.5",
        "STOCKIT_RULE_OVERRIDES": '{"crypto": {"spike_pct": 8}}',
        "STOCKIT_WEBHOOK_URLS": "https://a.example/h1, https://b.example/h2",
    })
    assert s.symbol_list == ["AAPL", "BTC-USD"]
    assert s.window_list == (60, 300, 900)
    assert s.dedup_ttl_map == {"PRICE_SPIKE": 10.0, "VOLUME_SPIKE": 5.5}
    assert s.rule_override_map == {"crypto": {"spike_pct": 8}}
    assert s.webhook_url_list == ["https://a.example/h1", "https://b.example/h2"]
    assert (s.live_source, s.webhook_source_list) == ("live", ("live",))
    s = Settings.from_env({"STOCKIT_SOURCE": "feed-a", "STOCKIT_WEBHOOK_SOURCES": " feed-a, paper ,feed-a,"})
    assert (s.live_source, s.webhook_source_list) == ("feed-a", ("feed-a", "paper"))
    assert Settings.from_env({"STOCKIT_WEBHOOK_SOURCES": "*"}).webhook_source_list == ("*",)
    assert Settings.from_env({"STOCKIT_WEBHOOK_SOURCES": ""}).webhook_source_list == ()


def test_set006_overrides_win_and_an_invalid_env_value_they_replace_is_not_parsed():
    s = Settings.from_env({"STOCKIT_WEB_PORT": "not-a-port", "STOCKIT_SEED": "1"}, web_port=9999)
    assert (s.web_port, s.seed) == (9999, 1)
    assert s.replace(seed=2).seed == 2 and s.seed == 1


def test_set007_an_explicit_mapping_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("STOCKIT_WEB_PORT", "1234")
    assert Settings.from_env({}).web_port == 8088
    assert Settings.from_env().web_port == 1234


def test_set008_every_field_has_a_variable_and_a_comment():
    rows = Settings().describe()
    assert len(rows) == len(dataclasses.fields(Settings))
    names = [r[0] for r in rows]
    assert len(set(names)) == len(names)
    for var, _, doc in rows:
        assert var.startswith("STOCKIT_") or var in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL"}
        assert doc.strip()


def test_set009_describe_masks_secrets_and_shows_the_rest():
    s = Settings.from_env({
        "DATABASE_URL": "postgresql://stockit:pg-Secret-1@db:5432/stockit?sslmode=require"
                        "&password=q-Secret-2",
        "REDIS_URL": "redis://:redis-Secret-3@cache:6379/0",
        "STOCKIT_WEBHOOK_SECRET": "hmac-Secret-4",
        "STOCKIT_WEBHOOK_URLS": "https://hooks.slack.com/services/T0/B0/slack-Secret-5,"
                                "https://ops.example/hook",
        "KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
    })
    rows = {var: shown for var, shown, _ in s.describe()}
    text = "\n".join(f"{k}={v}" for k, v in rows.items())
    for n in range(1, 6):
        assert f"Secret-{n}" not in text
    assert rows["DATABASE_URL"].startswith("postgresql://stockit:****@db:5432/stockit")
    assert rows["REDIS_URL"] == "redis://:****@cache:6379/0"
    assert rows["STOCKIT_WEBHOOK_SECRET"] == "****"
    assert "hooks.slack.com" in rows["STOCKIT_WEBHOOK_URLS"] and "ops.example" in rows["STOCKIT_WEBHOOK_URLS"]
    assert rows["KAFKA_BOOTSTRAP_SERVERS"] == "broker:9092"
    assert rows["STOCKIT_WEB_PORT"] == "8088"
    # the real values are still there for the code that needs them
    assert "pg-Secret-1" in s.database_url and s.webhook_secret == "hmac-Secret-4"


@pytest.mark.parametrize("value, shown", [
    ("", ""),
    ("plain-token", "****"),
    ("host=db password=x", "****"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("postgresql://user@db/stockit", "postgresql://user@db/stockit"),
    ("https://example.com", "https://example.com"),
    ("https://example.com/", "https://example.com/"),
])
def test_set010_mask_table(value, shown):
    assert _mask(value) == shown
