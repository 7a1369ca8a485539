"""Stock-IT workers as real child processes of a fault test: started, frozen, killed and read by PID.

``python -m pipeline.cli processor`` (or ``alert-engine``) with the environment of the test's
Settings (``Settings.to_env``), this checkout first on PYTHONPATH, its metrics on a free loopback
port and its log in a file.  ``WorkerProcesses.stop_all()`` kills whatever is still running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

from pipeline.settings import Settings
from pipeline.stack.servers import _die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[2]
METRICS_PORT_ENV = {"processor": "STOCKIT_PROCESSOR_METRICS_PORT",
                    "alert-engine": "STOCKIT_ALERT_METRICS_PORT"}


class WorkerProcess:
    """One worker process. ``name`` tells it apart in logs and reports."""

    def __init__(self, command: str, settings: Settings, log_dir: Path, name: str):
        self.command, self.name = command, name
        self.metrics_port = free_port()
        self.log_path = Path(log_dir) / f"{name}.log"
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, **settings.to_env(), METRICS_PORT_ENV[command]: str(self.metrics_port),
               "STOCKIT_METRICS_HOST": "127.0.0.1", "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", command], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)  # none outlives a killed test session
        self.pid = self.proc.pid
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a clean shutdown: checkpoint, leave the group); SIGKILL after ``timeout``."""
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not stop within {timeout:.0f}s of SIGTERM\n"
                                     f"{self.log_tail()}")
        return self.proc.returncode

    def rss_bytes(self) -> Optional[int]:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def metrics(self) -> str:
        """The worker's /metrics text ('' while it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return f"--- {self.log_path} ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class WorkerProcesses:
    """The workers one test started; ``stop_all`` leaves none running."""

    def __init__(self, settings: Settings, log_dir: Path):
        self.settings = settings
        self.log_dir = Path(log_dir)
        self.started: list[WorkerProcess] = []

    def processor(self, settings: Optional[Settings] = None, name: Optional[str] = None) -> WorkerProcess:
        return self._start("processor", settings, name)

    def alert_engine(self, settings: Optional[Settings] = None, name: Optional[str] = None) -> WorkerProcess:
        return self._start("alert-engine", settings, name)

    def _start(self, command: str, settings: Optional[Settings], name: Optional[str]) -> WorkerProcess:
        w = WorkerProcess(command, settings or self.settings, self.log_dir,
                          name or f"{command}-{len(self.started) + 1}")
        self.started.append(w)
        return w

    def logs(self) -> str:
        return "\n".join(w.log_tail() for w in self.started)

    def stop_all(self) -> None:
        for w in self.started:
            if w.alive():
                w.signal(signal.SIGKILL)
            try:
                w.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
