"""Standard Webhooks signing and verification, secrets, URL redaction and the start-up settings check."""
import base64
import random
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st
from standardwebhooks import Webhook

from pipeline.alert_engine import check_settings
from pipeline.settings import Settings, SettingsError
from pipeline.webhooks import (ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerificationError,
                               backoff_delay, check_url, endpoint_key, new_secret, redact_text, redact_url,
                               retryable, secret_key, sign, signed_headers, verify)

# The specification's own vector (the standard-webhooks repository, libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1_750_000_000.0
SECRET = new_secret()
BODY = b'{"alert_id":"a1","severity":"CRITICAL","symbol":"TSLA"}'


def test_whk001_signature_matches_the_specification_vector():
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    headers = {ID_HEADER: SPEC_ID, TIMESTAMP_HEADER: str(SPEC_TS), SIGNATURE_HEADER: SPEC_SIGNATURE}
    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS + 10)


@settings(max_examples=100)
@given(msg_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
       body=st.text(max_size=200).map(str.encode), nbytes=st.integers(24, 64))
def test_whk002_the_reference_library_verifies_what_we_sign_and_back(msg_id, body, nbytes):
    secret = new_secret(nbytes)
    headers = signed_headers(secret, msg_id, body)  # now: the library checks against the wall clock
    assert Webhook(secret).verify(body, headers, json_parse=False) is None
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(NOW, timezone.utc), body.decode())
    headers = {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(int(NOW)), SIGNATURE_HEADER: theirs}
    verify(secret, headers, body, now=NOW)


def good_headers(**changes) -> dict:
    return {**signed_headers(SECRET, "a1", BODY, now=NOW), **changes}


def other_secret_signature() -> str:
    return sign(new_secret(), "a1", int(NOW), BODY)


# (case, headers, body, now, words of the error)
REFUSED = [
    ("tampered_body", good_headers(), BODY.replace(b"TSLA", b"AAPL"), NOW, "no matching signature"),
    ("one_byte_appended", good_headers(), BODY + b" ", NOW, "no matching signature"),
    ("other_alert_id", good_headers(**{ID_HEADER: "a2"}), BODY, NOW, "no matching signature"),
    ("timestamp_changed", good_headers(**{TIMESTAMP_HEADER: str(int(NOW) + 1)}), BODY, NOW, "no matching"),
    ("wrong_secret", good_headers(**{SIGNATURE_HEADER: other_secret_signature()}), BODY, NOW, "no matching"),
    ("stale_by_301_s", good_headers(), BODY, NOW + 301, "tolerance"),
    ("from_the_future", good_headers(), BODY, NOW - 301, "tolerance"),
    ("missing_signature", {ID_HEADER: "a1", TIMESTAMP_HEADER: str(int(NOW))}, BODY, NOW, "missing"),
    ("missing_id", {k: v for k, v in good_headers().items() if k != ID_HEADER}, BODY, NOW, "missing"),
    ("timestamp_not_a_number", good_headers(**{TIMESTAMP_HEADER: "yesterday"}), BODY, NOW, "Unix seconds"),
    ("timestamp_enormous", good_headers(**{TIMESTAMP_HEADER: "9" * 40}), BODY, NOW, "tolerance"),
    ("signature_not_v1", good_headers(**{SIGNATURE_HEADER: "v2,abc v1"}), BODY, NOW, "no matching"),
    ("signature_garbage", good_headers(**{SIGNATURE_HEADER: "\u00e9\u00e9,,,"}), BODY, NOW, "no matching"),
    ("body_not_utf8", good_headers(), b"\xff\xfe", NOW, "cannot have been signed"),
]


@pytest.mark.parametrize("headers, body, now, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_whk003_verification_refuses_tampered_stale_and_malformed_requests(headers, body, now, words):
    with pytest.raises(WebhookVerificationError, match=words):
        verify(SECRET, headers, body, now=now)


@pytest.mark.parametrize("now, tolerance, ok", [
    (NOW + 300, 300.0, True), (NOW - 300, 300.0, True), (NOW + 301, 300.0, False),
    (NOW + 59, 60.0, True), (NOW + 61, 60.0, False), (NOW + 3600, 7200.0, True),
])
def test_whk004_timestamp_tolerance_is_configurable_and_five_minutes_by_default(now, tolerance, ok):
    headers = good_headers()
    if ok:
        verify(SECRET, headers, BODY, now=now, tolerance=tolerance)
    else:
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify(SECRET, headers, BODY, now=now, tolerance=tolerance)
    assert (abs(now - NOW) <= 300) == _passes_default(headers, now)


def _passes_default(headers, now) -> bool:
    try:
        verify(SECRET, headers, BODY, now=now)
        return True
    except WebhookVerificationError:
        return False


def test_whk005_any_header_case_and_a_rotated_secret_pass():
    old, new = new_secret(), new_secret()
    ours = signed_headers(new, "a1", BODY, now=NOW)
    both = f"{sign(old, 'a1', int(NOW), BODY)} {ours[SIGNATURE_HEADER]}"
    verify(new, {"Webhook-Id": "a1", "WEBHOOK-TIMESTAMP": ours[TIMESTAMP_HEADER], "webhook-signature": both},
           BODY, now=NOW)
    verify(old, {**ours, SIGNATURE_HEADER: both}, BODY, now=NOW)


@pytest.mark.parametrize("secret, words", [
    ("", "whsec_"),
    ("hunter2", "whsec_"),
    ("whsec_not base64!", "base64"),
    ("whsec_" + base64.b64encode(b"x" * 23).decode(), "23 bytes"),
    ("whsec_" + base64.b64encode(b"x" * 65).decode(), "65 bytes"),
])
def test_whk006_secrets_must_follow_the_specification(secret, words):
    with pytest.raises(ValueError, match=words):
        secret_key(secret)


def test_whk007_new_secrets_are_random_and_valid():
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(secret_key(a)) == 32


# (URL, what may be shown of it)
REDACTED = [
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://hooks.slack.com"),
    ("https://discord.com/api/webhooks/123/tok-en?wait=true", "https://discord.com"),
    ("http://user:pass@127.0.0.1:8080/hook?token=abc#frag", "http://127.0.0.1:8080"),
    ("HTTPS://Example.COM:443/path", "https://example.com:443"),
    ("http://[::1]:9000/x", "http://[::1]:9000"),
    ("  https://a.example/b  ", "https://a.example"),
    ("not a url", "<invalid URL>"),
    ("http://host:99999/x", "<invalid URL>"),
    ("/relative/path?token=x", "<invalid URL>"),
]


@pytest.mark.parametrize("url, shown", REDACTED, ids=[r[1] + "-" + str(i) for i, r in enumerate(REDACTED)])
def test_whk008_redact_url_keeps_only_scheme_and_host(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("text, expected", [
    ("ConnectionError: HTTPSConnectionPool(host='h.example', port=443): Max retries exceeded with url: "
     "https://h.example/T0K3N?k=s3cr3t (Caused by timeout)",
     "ConnectionError: HTTPSConnectionPool(host='h.example', port=443): Max retries exceeded with url: "
     "https://h.example (Caused by timeout)"),
    ("two: http://a.example/x1 and 'https://b.example:8443/y2?z'", "two: http://a.example and "
                                                                   "'https://b.example:8443'"),
    ("no url here", "no url here"),
])
def test_whk009_redact_text_cuts_every_url_in_a_message(text, expected):
    assert redact_text(text) == expected


def test_whk010_endpoint_keys_name_an_endpoint_without_holding_its_url():
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
    key = endpoint_key(url)
    assert key == endpoint_key(" " + url + " ") and key != endpoint_key(url + "Y")
    assert "XXXX" not in key and "slack" not in key and len(key) == 32


@pytest.mark.parametrize("url", ["ftp://files.example/x", "hooks.example/x", "https:///path",
                                 "http://h:port/"])
def test_whk011_only_absolute_http_urls_are_webhooks(url):
    with pytest.raises(ValueError) as info:
        check_url(url)
    assert "/x" not in str(info.value).replace("://", "")


@pytest.mark.parametrize("env, words", [
    ({"STOCKIT_WEBHOOK_URLS": "https://hooks.example/T0K3N"}, "STOCKIT_WEBHOOK_SECRET is empty"),
    ({"STOCKIT_WEBHOOK_URLS": "https://hooks.example/T0K3N", "STOCKIT_WEBHOOK_SECRET": "hunter2"}, "whsec_"),
    ({"STOCKIT_WEBHOOK_URLS": "ftp://hooks.example/T0K3N", "STOCKIT_WEBHOOK_SECRET": SECRET}, "http"),
    ({"STOCKIT_WEBHOOK_URLS": "https://h.example/T0K3N", "STOCKIT_WEBHOOK_SECRET": SECRET,
      "STOCKIT_WEBHOOK_TIMEOUT": "0"}, "STOCKIT_WEBHOOK_TIMEOUT"),
    ({"STOCKIT_WEBHOOK_WORKERS": "0"}, "STOCKIT_WEBHOOK_WORKERS"),
])
def test_whk012_the_alert_engine_refuses_a_webhook_setup_it_cannot_honour(env, words):
    with pytest.raises(SettingsError, match=words) as info:
        check_settings(Settings.from_env(env))
    assert "T0K3N" not in str(info.value)


@pytest.mark.parametrize("env", [{}, {"STOCKIT_WEBHOOK_URLS": "https://a.example/1,http://b.example:81/2",
                                      "STOCKIT_WEBHOOK_SECRET": SECRET}])
def test_whk013_no_webhooks_or_signed_webhooks_start(env):
    check_settings(Settings.from_env(env))


@pytest.mark.parametrize("status, again", [(None, True), (429, True), (500, True), (503, True), (400, False),
                                           (401, False), (404, False), (301, False), (302, False)])
def test_whk014_what_is_worth_another_try(status, again):
    assert retryable(status) is again


@pytest.mark.parametrize("attempt, low, high", [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0),
                                                (10, 30.0, 30.0)])
def test_whk015_backoff_doubles_with_jitter_and_is_capped(attempt, low, high):
    delays = [backoff_delay(attempt, 0.5, random.Random(seed)) for seed in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > (1 if low < high else 0)
