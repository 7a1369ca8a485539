"""Throughput and latency of GET /api/v1/prices under concurrent load, with the whole stack running.

Two phases over C keep-alive HTTP/1.1 connections (spread over P client processes so the client's
own GIL does not queue requests), each after a warm-up, each bounded in time:

* paced: the connections together offer a fixed rate (default 1,000 requests/s); a request's
  latency counts from the moment it was due, so a slow answer that delays the next request is
  charged to that request too (no coordinated omission);
* saturation: each connection sends its next request as soon as the answer arrives (closed loop) —
  the most the server answers per second, and the latency at that load.

    python bench/web_load.py                          # starts `stockit up` in a temp home
    STOCKIT_BENCH_USER=... STOCKIT_BENCH_PASSWORD=... \
        python bench/web_load.py --url http://127.0.0.1:8088 --rate 1000 --duration 30

Loopback only.  Goal: >= 1,000 requests/s with p99 < 25 ms (the paced phase).
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import running_stack, signed_in  # noqa: E402
from tests.sign_in import cookie_header  # noqa: E402


def client(url: str, path: str, threads: int, interval: float, start_at: float, stop_at: float, cap: int,
           out: mp.Queue, headers: Optional[dict] = None) -> None:
    """One client process: ``threads`` connections; ``interval`` > 0 paces each one; ``headers`` go with
    every request (e.g. Authorization). Puts (latencies_ms, errors)."""
    u = urlsplit(url)
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def loop(offset: float) -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        mine, bad, sent = [], 0, 0
        due = time.perf_counter() + offset
        wall_to_perf = time.perf_counter() - time.time()
        start_perf, stop_perf = start_at + wall_to_perf, stop_at + wall_to_perf
        while sent < cap:
            if interval:
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                t0 = due
                due += interval
            else:
                t0 = time.perf_counter()
            if t0 >= stop_perf:
                break
            try:
                conn.request("GET", path, headers={"Accept": "application/json", **(headers or {})})
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and body[:1] == b"{"
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            t1 = time.perf_counter()
            sent += 1
            if t0 >= start_perf:
                if ok:
                    mine.append((t1 - t0) * 1000.0)
                else:
                    bad += 1
        conn.close()
        with lock:
            lat.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=loop, args=(i * interval / max(threads, 1),)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((lat, errors[0]))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def run(url: str, path: str, connections: int, processes: int, duration: float, warmup: float, rate: float,
        max_requests: int, cookie: str) -> dict:
    """``rate`` 0 = closed loop (saturation), else the total offered requests per second."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + warmup
    stop_at = start_at + duration
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    interval = connections / rate if rate else 0.0
    cap = max(1, max_requests // connections)
    procs = [ctx.Process(target=client, args=(url, path, n, interval, start_at, stop_at, cap, out, {"Cookie": cookie}))
             for n in per if n]
    for p in procs:
        p.start()
    lat, errors = [], 0
    for _ in procs:
        part, bad = out.get(timeout=duration + warmup + 120)
        lat.extend(part)
        errors += bad
    for p in procs:
        p.join(30)
    lat.sort()
    return {"mode": f"paced at {rate:g} req/s" if rate else "saturation (closed loop)", "path": path,
            "connections": connections, "client_processes": len(procs), "duration_s": duration,
            "requests": len(lat), "errors": errors, "requests_per_s": round(len(lat) / duration, 1),
            "p50_ms": round(percentile(lat, 50), 2), "p90_ms": round(percentile(lat, 90), 2),
            "p99_ms": round(percentile(lat, 99), 2), "max_ms": round(lat[-1], 2) if lat else None,
            "mean_ms": round(statistics.fmean(lat), 2) if lat else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running web app (loopback); default: start the whole stack here")
    ap.add_argument("--path", default="/api/v1/prices")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--processes", type=int, default=4, help="client processes sharing the connections")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered requests/s of the paced phase")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per phase (after warm-up)")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--max-requests", type=int, default=2_000_000)
    ap.add_argument("--any-state", action="store_true", help="with --url: do not wait for a live pipeline")
    args = ap.parse_args(argv)
    if not 0 < args.duration <= 600:
        ap.error("--duration must be in (0, 600] seconds")
    with running_stack(args.url, require_live=not args.any_state) as url:
        user = signed_in(url)  # every request carries this session, as a signed-in browser's would
        cookie = cookie_header(user)
        before = user.get(url + "/api/v1/health", timeout=10).json()
        symbols = user.get(url + args.path, timeout=10).json().get("count")
        paced = run(url, args.path, args.connections, args.processes, args.duration, args.warmup, args.rate,
                    args.max_requests, cookie)
        saturation = run(url, args.path, args.connections, args.processes, args.duration, args.warmup, 0.0,
                         args.max_requests, cookie)
    goal = (paced["requests_per_s"] >= 0.99 * args.rate >= 990 and paced["p99_ms"] < 25
            and paced["errors"] == 0)
    print(json.dumps({"pipeline": before.get("pipeline"), "symbols_in_response": symbols, "paced": paced,
                      "saturation": saturation, "goal_1000rps_p99_under_25ms": goal}, indent=2))
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
