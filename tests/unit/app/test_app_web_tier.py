"""The web tier's configuration and its pure rules: processes and connections as configured, stream cap,
when a price frame falls due."""
import pytest

from app.live import PRICE_PERIOD, frame_due, next_frame_at
from app.sockets import StreamPolicy, stream_limit
from app.web import WORKER_CLASS, gunicorn_options
from pipeline.cli import build_parser
from pipeline.settings import Settings, SettingsError


def test_web001_processes_and_connections_as_configured():
    s = Settings.from_env({"STOCKIT_WEB_WORKERS": "3", "STOCKIT_WEB_CONNECTIONS": "500"})
    options = gunicorn_options(s)
    assert (options["workers"], options["worker_connections"]) == (3, 500)
    assert options["worker_class"] == WORKER_CLASS
    assert "threads" not in options


def test_web002_cli_workers_flag():
    assert build_parser().parse_args(["web", "--workers", "5"]).workers == 5
    assert build_parser().parse_args(["web"]).workers is None


@pytest.mark.parametrize("var, raw", [
    ("STOCKIT_WEB_WORKERS", "0"), ("STOCKIT_WEB_CONNECTIONS", "5"), ("STOCKIT_STREAM_SEND_TIMEOUT", "0"),
    ("STOCKIT_STREAM_PING_INTERVAL", "0"), ("STOCKIT_STREAM_SEND_BUFFER", "10"),
    ("STOCKIT_STREAM_MAX_MESSAGE_BYTES", "0"), ("STOCKIT_STREAM_PRICE_INTERVAL", "-1")])
def test_web003_unusable_values_are_refused_naming_the_variable(var, raw):
    with pytest.raises(SettingsError, match=var):
        gunicorn_options(Settings.from_env({var: raw}))


@pytest.mark.parametrize("connections, streams", [(10, 9), (20, 18), (2000, 1800), (11, 10), (400, 360)])
def test_web004_streams_leave_a_tenth_of_the_connections_to_requests(connections, streams):
    assert stream_limit(connections) == streams
    policy = StreamPolicy.from_settings(Settings.from_env({"STOCKIT_WEB_CONNECTIONS": str(connections)}))
    assert policy.max_streams == streams


@pytest.mark.parametrize("since_last, changed, interval, due", [
    (0.10, True, 0.25, False),          # changed, but the interval has not passed
    (0.25, True, 0.25, True),
    (0.50, False, 0.25, False),         # unchanged: only the once-a-second frame
    (PRICE_PERIOD, False, 0.25, True),
    (PRICE_PERIOD, True, 5.0, True),    # an interval above the period never delays the period's frame
    (0.0, True, 0.0, True),             # interval 0: every change at once
])
def test_web005_price_frame_due(since_last, changed, interval, due):
    assert frame_due(100.0 + since_last, 100.0, changed, interval) is due
    wakes = next_frame_at(100.0, changed, interval)
    assert (wakes <= 100.0 + since_last) is due
