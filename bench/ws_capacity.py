"""Capacity of the web tier under streams: the API's latency while many WebSocket clients are connected.

N clients stream ``/ws/prices`` and M more sit idle on ``/ws/alerts`` (a filter that matches nothing:
a snapshot, then a heartbeat every 15 s), all held by one asyncio process (the ``websockets`` client).
Once every streaming client has its first message, for ``--duration`` seconds: GET /api/v1/prices at
a fixed rate over a few keep-alive connections (latency counted from the moment a request was due,
bench/web_load.py's client), GET /api/v1/health once a second, and every client's messages counted.
A first window makes the same requests with no stream client connected: on a machine others share,
the difference between the two is what the streams cost.

    python bench/ws_capacity.py                       # starts `stockit up` in a temp home
    python bench/ws_capacity.py --streaming 1000 --idle 200 --web-workers 2 --duration 30
    python bench/ws_capacity.py --url http://127.0.0.1:8088 --auth-header "Authorization: Bearer TOKEN"

Loopback only.  The load generator, the web server and the rest of the stack share this machine's
cores: the figures say how busy the machine was.  Goal: with 1,000 streaming and 200 idle
clients, /api/v1/prices p99 < 50 ms and every /api/v1/health answer within 1 s.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import running_stack, signed_in  # noqa: E402
from web_load import client as http_client  # noqa: E402
from web_load import percentile  # noqa: E402

from tests.sign_in import cookie_header  # noqa: E402

IDLE_PATH = "/ws/alerts?symbol=NO-SUCH-SYMBOL"
CONNECT_BATCH = 50  # handshakes in flight at once


# --- the WebSocket clients (one process, asyncio) ---------------------------------------------------
async def _hold(uri: str, headers: dict, counts: list[int], i: int, opened: list[int],
                ended: list[int]) -> None:
    from websockets.asyncio.client import connect

    try:
        async with connect(uri, additional_headers=headers, open_timeout=60, ping_interval=None,
                           max_size=2 ** 20) as ws:
            opened[0] += 1
            async for _ in ws:
                counts[i] += 1
    except Exception:  # noqa: BLE001 - counted: a refused, failed or dropped client
        pass
    finally:
        ended[0] += 1


async def _sockets(ws_url: str, streaming: int, idle: int, headers: dict, conn) -> None:
    loop = asyncio.get_running_loop()
    counts = [0] * (streaming + idle)
    opened, ended = [0], [0]
    uris = [ws_url + "/ws/prices"] * streaming + [ws_url + IDLE_PATH] * idle
    tasks = []
    started = time.monotonic()
    for first in range(0, len(uris), CONNECT_BATCH):
        batch = [asyncio.create_task(_hold(u, headers, counts, first + k, opened, ended))
                 for k, u in enumerate(uris[first:first + CONNECT_BATCH])]
        tasks += batch
        while opened[0] + ended[0] < len(tasks) and time.monotonic() - started < 120:
            await asyncio.sleep(0.02)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(1 for c in counts[:streaming] if c) + ended[0] < streaming:
        await asyncio.sleep(0.05)
    conn.send({"opened": opened[0], "failed": ended[0], "connect_s": round(time.monotonic() - started, 2),
               "streaming_with_a_message": sum(1 for c in counts[:streaming] if c)})
    for command in ("start", "stop"):
        assert await loop.run_in_executor(None, conn.recv) == command
        conn.send((time.monotonic(), list(counts), ended[0]))
    assert await loop.run_in_executor(None, conn.recv) == "close"
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def socket_process(ws_url: str, streaming: int, idle: int, headers: dict, conn) -> None:
    asyncio.run(_sockets(ws_url, streaming, idle, headers, conn))


# --- health probe and machine load -------------------------------------------------------------------
def probe_health(url: str, headers: dict, stop: threading.Event, out: list) -> None:
    """GET /api/v1/health once a second on a fresh connection; records (latency ms, status)."""
    u = urlsplit(url)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            conn.request("GET", "/api/v1/health", headers=headers)
            status = conn.getresponse().status
            conn.close()
        except (OSError, http.client.HTTPException):
            status = None
        out.append(((time.perf_counter() - started) * 1000.0, status))
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - started)))


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def listening_pids(port: int) -> list[int]:
    """The processes holding the socket that listens on loopback ``port`` (gunicorn's master and workers)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # state LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(str(fd.readlink()) in inodes for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(pids)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far (gone ones count 0)."""
    import os

    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# --- one run -------------------------------------------------------------------------------------------
def requests_window(url: str, duration: float, api_rate: float, api_connections: int, headers: dict,
                    load_pids: list[int], mark: Callable[[str], None] = lambda _: None) -> dict:
    """For ``duration`` s: GET /api/v1/prices at ``api_rate`` and /api/v1/health once a second; ``mark``
    is called with "start" and "stop" at the window's edges.  Returns latencies and CPU use."""
    ctx = mp.get_context("fork")
    server = listening_pids(urlsplit(url).port)
    out = ctx.Queue()
    start_at = time.time() + 1.0
    interval = api_connections / api_rate  # each connection's pace
    api = ctx.Process(target=http_client, args=(url, "/api/v1/prices", api_connections, interval, start_at,
                                                start_at + duration, 10 ** 7, out, headers))
    health: list = []
    stop = threading.Event()
    prober = threading.Thread(target=probe_health, args=(url, headers, stop, health))
    api.start()
    time.sleep(max(0.0, start_at - time.time()))
    mark("start")
    t0, (busy0, total0) = time.monotonic(), cpu_ticks()
    server0, load0 = cpu_seconds(server), cpu_seconds(load_pids + [api.pid])
    prober.start()
    latencies, errors = out.get(timeout=duration + 120)
    mark("stop")
    seconds, (busy1, total1) = time.monotonic() - t0, cpu_ticks()
    server1, load1 = cpu_seconds(server), cpu_seconds(load_pids + [api.pid])
    stop.set()
    prober.join()
    api.join(30)
    latencies.sort()
    health_ms = sorted(ms for ms, _ in health)
    return {
        "api_prices": {"rate_offered": api_rate, "connections": api_connections, "requests": len(latencies),
                       "errors": errors, "p50_ms": round(percentile(latencies, 50), 2),
                       "p99_ms": round(percentile(latencies, 99), 2),
                       "max_ms": round(latencies[-1], 2) if latencies else None},
        "health": {"probes": len(health), "not_200": sum(1 for _, st in health if st != 200),
                   "p50_ms": round(percentile(health_ms, 50), 1),
                   "max_ms": round(health_ms[-1], 1) if health_ms else None},
        "cpu": {"machine_busy_pct": round(100.0 * (busy1 - busy0) / max(1, total1 - total0), 1),
                "web_server_pct_of_a_core": round(100.0 * (server1 - server0) / seconds, 1),
                "web_server_processes": len(server),
                "load_generator_pct_of_a_core": round(100.0 * (load1 - load0) / seconds, 1)},
        "measured_s": round(seconds, 1),
    }


def measure(url: str, streaming: int, idle: int, duration: float, api_rate: float, api_connections: int,
            headers: dict) -> dict:
    """The requests window with ``streaming`` + ``idle`` WebSocket clients connected."""
    ctx = mp.get_context("fork")
    ours, theirs = ctx.Pipe()
    sockets = ctx.Process(target=socket_process, args=(url.replace("http", "ws", 1), streaming, idle, headers,
                                                       theirs))
    sockets.start()
    counts: dict[str, tuple] = {}

    def mark(edge: str) -> None:
        ours.send(edge)
        counts[edge] = ours.recv()

    try:
        if not ours.poll(300):
            raise SystemExit("the WebSocket clients did not finish connecting in 300 s")
        connected = ours.recv()
        window = requests_window(url, duration, api_rate, api_connections, headers, [sockets.pid], mark)
        ours.send("close")
    finally:
        sockets.join(60)
        if sockets.is_alive():
            sockets.terminate()
    (t0, counts0, ended0), (t1, counts1, ended1) = counts["start"], counts["stop"]
    rates = sorted((counts1[i] - counts0[i]) / (t1 - t0) for i in range(streaming))
    return {
        "clients": {"streaming": streaming, "idle": idle, **connected,
                    "lost_during_measurement": ended1 - ended0},
        **window,
        "stream_messages_per_client_per_s": {
            "median": round(statistics.median(rates), 2), "min": round(rates[0], 2),
            "p1": round(percentile(rates, 1), 2), "total_per_s": round(sum(rates), 1)},
    }


def parse_header(raw: Optional[str]) -> dict:
    if not raw:
        return {}
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise SystemExit(f"--auth-header must look like 'Name: value', not {raw!r}")
    return {name.strip(): value.strip()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running web app (loopback); default: start the whole stack here")
    ap.add_argument("--streaming", type=int, default=1000, help="clients on /ws/prices")
    ap.add_argument("--idle", type=int, default=200, help="clients idle on /ws/alerts")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    ap.add_argument("--api-rate", type=float, default=100.0, help="GET /api/v1/prices per second during it")
    ap.add_argument("--api-connections", type=int, default=4)
    ap.add_argument("--web-workers", type=int, help="STOCKIT_WEB_WORKERS of the stack this starts")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                    help="another setting of the stack this starts (repeatable)")
    ap.add_argument("--auth-header", help="'Name: value' sent on every request and WebSocket handshake")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the first window, the same requests without any stream client")
    args = ap.parse_args(argv)
    if not 0 < args.duration <= 600:
        ap.error("--duration must be in (0, 600] seconds")
    if args.streaming < 1 or args.idle < 0 or args.streaming + args.idle > 10_000:
        ap.error("--streaming >= 1, --idle >= 0, together at most 10,000")
    headers = parse_header(args.auth_header)
    env = dict(item.split("=", 1) for item in args.set)
    if args.web_workers:
        env["STOCKIT_WEB_WORKERS"] = str(args.web_workers)
    with running_stack(args.url, env=env) as url:
        if not headers:  # sign in like a user: the stack's first admin, or STOCKIT_BENCH_USER at --url
            headers = {"Cookie": cookie_header(signed_in(url))}
        baseline = None if args.no_baseline else requests_window(url, args.duration, args.api_rate,
                                                                 args.api_connections, headers, [])
        result = measure(url, args.streaming, args.idle, args.duration, args.api_rate, args.api_connections,
                         headers)
    result["without_stream_clients"] = baseline
    result["settings"] = env
    c = result["clients"]
    goal = (c["opened"] == args.streaming + args.idle and c["lost_during_measurement"] == 0
            and result["api_prices"]["errors"] == 0 and result["api_prices"]["p99_ms"] < 50
            and result["health"]["not_200"] == 0 and (result["health"]["max_ms"] or 1e9) < 1000
            and (result["stream_messages_per_client_per_s"]["min"] or 0) >= 0.9)
    result["goal_api_p99_under_50ms_health_under_1s"] = goal
    print(json.dumps(result, indent=2))
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
