"""Shared fixtures: settings per test, a real control-plane process, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.client import Client
from dockyard.settings import Settings
from tests.lanes import missing
from tests.pg import pg_bin, throwaway_postgres

ROOT = Path(__file__).resolve().parent.parent


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per reason for skipping (a missing lane names its package once, not per
    test): ``skipped 11 tests: PostgreSQL is not installed: apt-get install postgresql``."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"skipped {count} test(s): {reason}")


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Virtual environments are cached by content hash: share them across tests."""
    fixed = os.environ.get("DOCKYARD_TEST_ENV_CACHE")
    return Path(fixed) if fixed else tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Model servers started by the tests compile into a temporary cache, not ~/.cache."""
    path = tmp_path_factory.mktemp("compiled")
    before = os.environ.get("DOCKYARD_COMPILE_CACHE")
    os.environ["DOCKYARD_COMPILE_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("DOCKYARD_COMPILE_CACHE", None)
    else:
        os.environ["DOCKYARD_COMPILE_CACHE"] = before


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path, env_cache: Path) -> Settings:
    return Settings(home=home, env_cache=env_cache, resync_seconds=0.2, stop_grace_seconds=2.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A real ``python -m dockyard.api`` on 127.0.0.1 with its own DOCKYARD_HOME."""

    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)

    def start(self) -> Client:
        settings = Settings(home=self.home)
        settings.server_file.unlink(missing_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.api"],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server died: {self.log_tail()}")
            if settings.server_file.exists():
                with contextlib.suppress(Exception):
                    client = Client(settings=settings, autostart=False, timeout=30)
                    client.health()
                    self.clients.append(client)
                    return client
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_tail()}")

    @property
    def client(self) -> Client:
        return self.clients[-1]

    @property
    def auth(self) -> dict[str, str]:
        """The header a client of this server sends (its token, from its home)."""
        return {"authorization": f"Bearer {(self.home / 'token').read_text().strip()}"}

    def log_tail(self, lines: int = 30) -> str:
        path = self.home / "server.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def kill(self) -> None:
        """kill -9: the server gets no chance to clean up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for client in self.clients:
            client.close()


def server_env(
    home: Path, env_cache: Path, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_HOME=str(home),
        DOCKYARD_ENV_CACHE=str(env_cache),
        DOCKYARD_RESYNC_SECONDS="0.2",
        DOCKYARD_STOP_GRACE_SECONDS="2",
        DOCKYARD_LOG_LEVEL="warning",
        # the tests' file:// dataset sources live in temporary directories
        DOCKYARD_FILE_SOURCES=tempfile.gettempdir(),
    )
    if "DOCKYARD_COMPILE_CACHE" in os.environ:  # the session's (see compile_cache)
        env["DOCKYARD_COMPILE_CACHE"] = os.environ["DOCKYARD_COMPILE_CACHE"]
    if database_url:
        env["DOCKYARD_DATABASE_URL"] = database_url
    env.update(extra)
    return env


@pytest.fixture
def server_factory(tmp_path: Path, env_cache: Path) -> Iterator[type[ServerProcess] | object]:
    started: list[ServerProcess] = []

    def make(
        database_url: str | None = None, home: Path | None = None, **extra: str
    ) -> ServerProcess:
        h = home or tmp_path / f"home{len(started)}"
        srv = ServerProcess(h, server_env(h, env_cache, database_url, **extra))
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory: object) -> Iterator[ServerProcess]:
    srv: ServerProcess = server_factory()  # type: ignore[operator]
    srv.start()
    yield srv


# -- PostgreSQL -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (Debian's packages), or DOCKYARD_TEST_POSTGRES_URL."""
    if url := os.environ.get("DOCKYARD_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = pg_bin()
    if bindir is None:
        missing(
            "postgres",
            "PostgreSQL is not installed: apt-get install postgresql "
            "(the tests start a throwaway server of their own)",
        )
    with throwaway_postgres(bindir) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh database on the session's PostgreSQL server."""
    import psycopg

    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# -- S3 ----------------------------------------------------------------------------------
@dataclass
class S3Server:
    """moto's S3 server (a real HTTP server speaking the S3 protocol) on 127.0.0.1."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a Dockyard server or CLI needs to reach it."""
        return {
            "DOCKYARD_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"b{time.monotonic_ns()}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{endpoint}/moto-api/"), 60, message="moto's S3 server")
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def wait_until(
    predicate: object, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- Podman -------------------------------------------------------------------------------
CONF = ROOT / "deploy" / "podman" / "containers.conf"
BASE = "localhost/dockyard/base:bookworm"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "CONTAINERS_CONF": str(CONF)},
        timeout=600,
    )


@pytest.fixture(scope="session")
def base_image() -> str:
    if shutil.which("podman") is None:
        missing("podman", "Podman is not installed: apt-get install podman runc debootstrap")
    subprocess.run(
        [str(ROOT / "deploy" / "podman" / "base-image.sh"), BASE],
        check=True,
        env={**os.environ, "CONTAINERS_CONF": str(CONF)},
        timeout=1200,
    )
    return BASE
