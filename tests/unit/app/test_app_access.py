"""Who may do what, without I/O: roles, passwords, tokens, origins, redirects, expiry, the signing key."""
import os
import stat

import pytest

from app import access
from app.account_commands import parse_expiry
from app.secret_key import session_secret
from pipeline.settings import SettingsError

NOW = 1_790_000_000.0
OWN = "http://stockit.example:8088"


@pytest.mark.parametrize("role, needed, allowed", [
    ("viewer", "viewer", True), ("viewer", "operator", False), ("viewer", "admin", False),
    ("operator", "viewer", True), ("operator", "operator", True), ("operator", "admin", False),
    ("admin", "viewer", True), ("admin", "operator", True), ("admin", "admin", True),
    ("", "viewer", False), (None, "viewer", False), ("root", "viewer", False),
])
def test_acc001_roles_include_the_ones_below(role, needed, allowed):
    assert access.allows(role, needed) is allowed


def test_acc002_passwords_hash_with_argon2id_and_verify():
    encoded = access.hash_password("correct horse")
    assert encoded.startswith("$argon2id$") and "correct horse" not in encoded
    assert access.verify_password(encoded, "correct horse")
    assert not access.verify_password(encoded, "correct horsE")
    assert not access.verify_password(None, "correct horse")      # no such user
    assert not access.verify_password("not-a-hash", "correct horse")
    assert access.hash_password("correct horse") != encoded        # salted
    assert not access.needs_rehash(encoded)


@pytest.mark.parametrize("bad", ["", "short", "x" * 1025])
def test_acc003_password_length_is_checked(bad):
    with pytest.raises(access.CredentialError, match="password"):
        access.hash_password(bad)


@pytest.mark.parametrize("name, clean", [("Alice", "alice"), (" bob.smith@corp ", "bob.smith@corp"),
                                         ("a", "a")])
def test_acc004_user_names(name, clean):
    assert access.check_username(name) == clean


@pytest.mark.parametrize("bad", ["", "-x", "token:ci", "a b", "é", "x" * 65])
def test_acc005_bad_user_names(bad):
    with pytest.raises(access.CredentialError):
        access.check_username(bad)


def test_acc006_tokens_are_random_and_only_their_digest_is_kept():
    one, two = access.mint_token(), access.mint_token()
    assert one.plain.startswith("stk_") and len(one.plain) >= 40 and one.plain != two.plain
    assert one.digest == access.token_digest(one.plain) and len(one.digest) == 64
    assert one.plain not in one.digest
    assert one.plain.startswith(one.prefix) and len(one.prefix) == 10


@pytest.mark.parametrize("header, token", [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None),
    (None, None),
])
def test_acc007_bearer_header(header, token):
    assert access.bearer_token(header) == token


@pytest.mark.parametrize("method, headers, refused", [
    ("GET", {"Origin": "http://evil.example"}, False),                       # reads are not state changes
    ("POST", {"Origin": OWN}, False),
    ("POST", {"Origin": OWN + "/"}, False),
    ("POST", {"Origin": "HTTP://STOCKIT.EXAMPLE:8088"}, False),
    ("POST", {"Origin": "http://evil.example"}, True),
    ("POST", {"Origin": "http://stockit.example:9999"}, True),                # another port is another origin
    ("POST", {"Origin": "null"}, True),                                      # sandboxed frames, data: pages
    ("POST", {"Origin": "https://trusted.example"}, False),                  # on the allow list
    ("DELETE", {"Sec-Fetch-Site": "cross-site"}, True),
    ("PUT", {"Sec-Fetch-Site": "same-site"}, True),
    ("PATCH", {"Sec-Fetch-Site": "same-origin"}, False),
    ("POST", {}, False),                                                     # not a browser: nothing ambient
    ("GET", {"Upgrade": "websocket", "Origin": "http://evil.example"}, True),
    ("GET", {"Upgrade": "WebSocket", "Origin": OWN}, False),
    ("GET", {"Upgrade": "websocket", "Sec-Fetch-Site": "cross-site"}, True),
])
def test_acc008_cross_site_requests(method, headers, refused):
    allowed = access.origin_list("https://trusted.example/ , ")
    reason = access.cross_site_refusal(method, headers, OWN, allowed)
    assert (reason is not None) is refused


@pytest.mark.parametrize("target, safe", [
    ("/alerts?severity=HIGH", "/alerts?severity=HIGH"), ("/", "/"), (None, "/"), ("", "/"),
    ("//evil.example/x", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("evil", "/"),
    ("/login?next=/x", "/"), ("/logout", "/"), ("/a\r\nSet-Cookie: x=1", "/"), ("javascript:alert(1)", "/"),
])
def test_acc009_sign_in_redirects_stay_on_this_site(target, safe):
    assert access.safe_next(target) == safe


@pytest.mark.parametrize("text, expected", [
    (None, None), ("", None), ("30d", NOW + 30 * 86400), ("12h", NOW + 43200), ("90m", NOW + 5400),
    ("2w", NOW + 14 * 86400), ("2027-01-01", 1798761600.0), ("2027-01-01T01:00:00+01:00", 1798761600.0),
])
def test_acc010_token_expiry(text, expected):
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("bad", ["soon", "30x", "2020-01-01"])
def test_acc011_bad_token_expiry(bad):
    with pytest.raises(SettingsError):
        parse_expiry(bad, NOW)


def test_acc012_signing_key_is_generated_once_private_and_kept(tmp_path):
    assert session_secret("configured-key", tmp_path) == "configured-key"
    assert not (tmp_path / "secret_key").exists()
    key = session_secret("", tmp_path)
    assert len(key) >= 48 and session_secret("", tmp_path) == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    os.chmod(tmp_path / "secret_key", 0o644)
    assert session_secret("", tmp_path) == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left behind
