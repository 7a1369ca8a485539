"""Real faults on the local servers: freeze (SIGSTOP/SIGCONT) and kill (SIGKILL) then restart.

A server's processes are the one it was started as plus every process whose command line names its
data directory, and all their descendants (PostgreSQL's backends rename themselves, valkey rewrites
its command line; both stay children of the process that was started).  ``ServerFaults.heal()``
thaws whatever is frozen and restarts whatever was killed, so the session's servers are healthy
again after every test, whatever the test did.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.stack.servers import LocalServer, port_open

logger = logging.getLogger(__name__)


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _cmdline_mentions(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def server_pids(server: LocalServer) -> list[int]:
    """Every live process of ``server``: roots first, then their descendants."""
    roots = []
    if server.proc is not None and server.proc.poll() is None:
        roots.append(server.proc.pid)
    data_dir = str(server.dir)
    roots += [int(e.name) for e in Path("/proc").iterdir()
              if e.name.isdigit() and int(e.name) not in roots and _cmdline_mentions(int(e.name), data_dir)]
    tree = _children()
    found, queue = [], list(roots)
    while queue:
        pid = queue.pop(0)
        if pid not in found:
            found.append(pid)
            queue += tree.get(pid, [])
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class ServerFaults:
    """Freezes and kills the servers of a test; ``heal()`` undoes all of it."""

    def __init__(self, servers: dict[str, LocalServer]):
        self.servers = servers
        self.frozen: dict[str, list[int]] = {}
        self.killed: set[str] = set()

    def freeze(self, name: str) -> list[int]:
        pids = server_pids(self.servers[name])
        assert pids, f"no process of {name} found to freeze"
        _signal_all(pids, signal.SIGSTOP)
        self.frozen[name] = pids
        logger.info("froze %s (pids %s)", name, pids)
        return pids

    def thaw(self, name: str) -> None:
        pids = self.frozen.pop(name, [])
        _signal_all(pids + server_pids(self.servers[name]), signal.SIGCONT)
        logger.info("thawed %s", name)

    @contextmanager
    def frozen_for(self, name: str) -> Iterator[list[int]]:
        pids = self.freeze(name)
        try:
            yield pids
        finally:
            self.thaw(name)

    def kill(self, name: str) -> None:
        """SIGKILL every process of the server, as a power cut would, and reap them."""
        server = self.servers[name]
        pids = server_pids(server)
        assert pids, f"no process of {name} found to kill"
        self.killed.add(name)
        _signal_all(pids, signal.SIGKILL)
        _signal_all(pids, signal.SIGCONT)  # a frozen process dies only once it runs
        if server.proc is not None:
            server.proc.wait(30)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and not _is_zombie(pid) for pid in pids):
            assert time.monotonic() < deadline, f"{name} processes {pids} survived SIGKILL"
            time.sleep(0.05)
        logger.info("killed %s (pids %s)", name, pids)

    def restart(self, name: str) -> None:
        """Start a killed server again on its port and data directory (crash recovery included)."""
        server = self.servers[name]
        deadline = time.monotonic() + 30
        while port_open(server.port):
            assert time.monotonic() < deadline, f"port {server.port} of {name} still open after the kill"
            time.sleep(0.1)
        server.proc = None
        server.start()
        self.killed.discard(name)
        logger.info("restarted %s", name)

    def heal(self) -> None:
        for name in list(self.frozen):
            self.thaw(name)
        for name in list(self.killed):
            self.restart(name)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
