"""Shared test fixtures: tiny fake CIFAR-10 image folders (nothing is downloaded)."""

import pytest
from fakes import FakeClock, make_cifar_folder


@pytest.fixture
def nnlab_cache(tmp_path, monkeypatch):
    """Decoded-data cache in a temp folder, never the user's ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NNLAB_CACHE", str(cache))
    return cache


@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    """Time as a time budget sees it, frozen at 10 s of process age until the test advances
    it: ``nnlab.engine.budget.process_age_s`` and ``Run.clock`` read it."""
    from nnlab.engine.run import Run

    clock = FakeClock()
    monkeypatch.setattr("nnlab.engine.budget.process_age_s", clock)
    monkeypatch.setattr(Run, "clock", staticmethod(clock))
    return clock


@pytest.fixture(scope="session")
def learnable_cifar(tmp_path_factory):
    """A learnable fake CIFAR-10 image folder: 30 train and 10 test images per class."""
    root = tmp_path_factory.mktemp("cifar")
    make_cifar_folder(root, per_class=30, splits=("train",), learnable=True)
    rng_root = root / "test"
    make_cifar_folder(root / "tmp", per_class=10, splits=("test",), learnable=True)
    (root / "tmp" / "test").rename(rng_root)
    (root / "tmp").rmdir()
    return root


@pytest.fixture
def chromium() -> str:
    """The headless browser the page tests drive: skipped where it is not installed, a
    failure on CI (.ci/run installs Debian's chromium package)."""
    import os
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed here (apt-get install chromium); CI installs it")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str, how: str) -> None:
    """A server a test needs is not installed: skipped here, a failure on CI (whose .ci/run
    installs it)."""
    import os

    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: {how}")
    pytest.skip(f"{what} is not installed here ({how})")


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of the tests' own on 127.0.0.1 (a free port), its data and socket
    in a temp folder, run as the ``postgres`` user when the tests run as root (initdb and
    pg_ctl refuse root); stopped at the end. Returns a URL for SQLAlchemy/Optuna."""
    import glob
    import os
    import pwd
    import shutil
    import subprocess

    pytest.importorskip("psycopg", reason="pip install -e '.[postgres]'")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or \
        [p for p in [shutil.which("pg_ctl")] if p]
    if not found:
        _missing("PostgreSQL", "apt-get install postgresql; .ci/run installs it")
    bin_dir = os.path.dirname(found[-1])
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="nnlab-test-postgres-"))  # one the server can reach
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, sock, port = root / "data", root / "sock", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    pg(f"{bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U", "nnlab", "-E", "UTF8")
    pg("mkdir", "-p", str(sock))
    pg(f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
       f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql://nnlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def start_mlflow_server(root):
    """``mlflow server`` (the full mlflow package) on 127.0.0.1 and a free port, a SQLite
    backend and an artifact store of its own under ``root``; returns (process, URL) once it
    answers /health. The server runs in a process group of its own (it has workers):
    :func:`stop_server` ends them all."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    command = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if command is None:
        _missing("the mlflow server", "pip install -e '.[dev]' installs the full mlflow")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [command, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--allowed-hosts",
         f"127.0.0.1:{port},localhost:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"),
        start_new_session=True)
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop_server(proc)
            raise RuntimeError("mlflow server did not start: "
                               + (root / "server.log").read_text()[-1500:])
        time.sleep(0.3)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server for the session's tests: its URL."""
    proc, url = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield url
    finally:
        stop_server(proc)


def stop_server(proc) -> None:
    """SIGKILL to a server's whole process group (its workers too)."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
