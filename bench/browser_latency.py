"""Trade-to-browser latency: a trade's event time to its price appearing on the watchlist page.

With the whole stack running (the simulator stamps each trade with the time it is made), headless
Chromium opens the watchlist.  A MutationObserver watches every price cell; when a cell's text
changes it waits for the next animation frame (the change is then on screen) and records
``now - ts`` where ``ts`` is the event time of the trade whose price the cell now shows (each row
carries it in a hidden cell).  Path measured: producer -> Kafka -> processor batch -> Redis
pub/sub -> web app hub -> WebSocket -> Dash clientside callback -> DOM -> frame.

    python bench/browser_latency.py                   # starts `stockit up` in a temp home, 60 s
    STOCKIT_BENCH_USER=... STOCKIT_BENCH_PASSWORD=... \
        python bench/browser_latency.py --url http://127.0.0.1:8088 --duration 120

Goal: p95 < 500 ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.browser

from stack import bench_account, running_stack  # noqa: E402

OBSERVER = """
window.__lat = [];
const table = document.getElementById('wl-table');
const seen = new WeakMap();
new MutationObserver(records => {
  const cells = new Set();
  for (const r of records) {
    const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    const cell = el && el.closest('.wl-last');
    if (cell) { cells.add(cell); }
  }
  for (const cell of cells) {
    if (seen.get(cell) === cell.textContent) { continue; }
    seen.set(cell, cell.textContent);
    const row = cell.closest('tr');
    const ts = parseFloat(row.querySelector('.wl-ts').textContent);
    const sym = row.querySelector('.wl-symbol').textContent;
    if (!ts) { continue; }
    requestAnimationFrame(() => window.__lat.push([sym, Date.now() - ts * 1000]));
  }
}).observe(table, {subtree: true, childList: true, characterData: true});
return true;
"""


def browser():
    from selenium import webdriver

    from tests.browser import chrome_options

    return webdriver.Chrome(options=chrome_options())


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, int(q / 100 * len(values) + 0.5) - 1))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running web app (loopback); default: start the whole stack here")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of sampling (max 600)")
    ap.add_argument("--rate", type=float, default=50.0, help="simulated trades/s when the stack is started here")
    args = ap.parse_args(argv)
    if not 0 < args.duration <= 600:
        ap.error("--duration must be in (0, 600] seconds")
    with running_stack(args.url, trade_rate=args.rate) as url:
        d = browser()
        try:
            from tests.sign_in import browser as sign_in

            sign_in(d, url, bench_account())  # lands on the watchlist
            deadline = time.monotonic() + 30
            while not d.execute_script("return !!document.querySelector('#wl-table .wl-last')"):
                if time.monotonic() > deadline:
                    raise SystemExit("the watchlist did not render")
                time.sleep(0.2)
            time.sleep(3)  # WebSocket connected, first snapshot shown
            d.execute_script(OBSERVER)
            time.sleep(args.duration)
            samples = d.execute_script("return window.__lat")
        finally:
            d.quit()
    ms = sorted(v for _, v in samples)
    if not ms:
        print(json.dumps({"samples": 0}))
        return 1
    result = {"samples": len(ms), "symbols": len({s for s, _ in samples}), "duration_s": args.duration,
              "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1), "p99_ms": round(pct(ms, 99), 1),
              "mean_ms": round(statistics.fmean(ms), 1), "min_ms": round(ms[0], 1), "max_ms": round(ms[-1], 1)}
    result["goal_p95_under_500ms"] = result["p95_ms"] < 500
    print(json.dumps(result, indent=2))
    return 0 if result["goal_p95_under_500ms"] else 1


if __name__ == "__main__":
    sys.exit(main())
