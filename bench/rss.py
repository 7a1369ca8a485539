"""Peak resident memory of a running process tree, for the benchmarks.

``PeakRss(pid)`` samples in a thread, every ``interval`` seconds, the process and its descendants
(psutil) and keeps each one's kernel high-water mark (``VmHWM`` in /proc/PID/status), so a peak
between two samples is not missed.  ``peak_bytes`` is the sum of those marks: the exact peak for a
single process, an upper bound for a tree whose members peak at different times.
"""
from __future__ import annotations

import logging
import threading

import psutil

logger = logging.getLogger(__name__)


def high_water_mark(pid: int) -> int:
    """Peak RSS of one process in bytes, as the kernel counts it; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class PeakRss:
    """Context manager sampling the peak RSS of ``pid`` and its descendants until it exits."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.marks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peak-rss-{pid}", daemon=True)

    @property
    def peak_bytes(self) -> int:
        return sum(self.marks.values())

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in tree:
            mark = high_water_mark(p.pid)
            if mark > self.marks.get(p.pid, 0):
                self.marks[p.pid] = mark

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "PeakRss":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (after one last sample); ``peak_bytes`` keeps the result."""
        self._stop.set()
        self._thread.join()
        self.sample()

    def __enter__(self) -> "PeakRss":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
