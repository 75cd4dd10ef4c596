"""Real Redis and PostgreSQL servers for the tests, on loopback, in temporary directories.

Binaries come from Debian's ``redis-server`` and ``postgresql`` packages
(``scripts/setup_system.sh`` installs them). PostgreSQL refuses to run as root: as root the
cluster is created and run as the ``postgres`` user (made by the Debian package) through
``runuser``; as anyone else, as that user. A test that needs a missing binary is skipped
with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None
    )


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A fresh Redis on 127.0.0.1 (no persistence); yields its URL."""
    binary = redis_binary()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="llmrelay-redis-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
                "--logfile",
                str(Path(tmp) / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, proc, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (PATH, else Debian's versioned dir)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).resolve().parent
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]), reverse=True
    )
    for d in dirs:
        if os.path.exists(f"{d}/initdb") and os.path.exists(f"{d}/postgres"):
            return Path(d)
    return None


def postgres_skip_reason() -> str | None:
    if postgres_bindir() is None:
        return "PostgreSQL binaries (initdb, postgres) not found: bash scripts/setup_system.sh"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    return None


@dataclass
class Postgres:
    url: str  # SQLAlchemy URL (psycopg 3)
    port: int
    pid: int  # the process started (runuser or postgres); the cluster is its descendants

    def stop_all(self, sig: int) -> list[int]:
        """Send ``sig`` to every process of the cluster, parents first; their pids.

        PostgreSQL's children each start their own session (``setsid``), so a process
        group does not reach them: the tree is walked in ``/proc``.
        """
        done: list[int] = []
        todo = [self.pid]
        while todo:
            pid = todo.pop(0)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                done.append(pid)
            todo += _children(pid)
        return done


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off); database ``llmrelay``."""
    bindir = postgres_bindir()
    assert bindir is not None
    as_root = os.geteuid() == 0
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    parent = tempfile.gettempdir()
    if as_root and not os.stat(parent).st_mode & 0o001:
        parent = "/tmp"  # the postgres user must be able to reach its directory
    tmp = tempfile.mkdtemp(prefix="llmrelay-pg-", dir=parent)
    data = Path(tmp) / "data"
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(tmp, user.pw_uid, user.pw_gid)
    os.chmod(tmp, 0o700)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    proc: subprocess.Popen[bytes] | None = None
    pg_log = open(Path(tmp) / "postgres.log", "wb")  # noqa: SIM115 (closed below)
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "llmrelay",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=120,
        )
        proc = subprocess.Popen(
            [
                *prefix,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={tmp}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=pg_log,
            env=env,
        )
        wait_port(port, proc, "postgres")
        # the port accepts before the cluster takes connections: wait until it answers
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user="llmrelay", dbname="postgres", autocommit=True
                ) as conn:
                    conn.execute("CREATE DATABASE llmrelay")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Postgres(f"postgresql+psycopg://llmrelay@127.0.0.1:{port}/llmrelay", port, proc.pid)
    finally:
        if proc is not None:
            _stop(proc)
        pg_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
