"""Shared fixtures: a real daemon on a temp data-root and socket, and the busybox base image."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the examples a fixed seed picks (.ci/run sets HYPOTHESIS_PROFILE=ci): a red CI then
# means the change broke something, not that a new random example was drawn. Developers'
# runs keep drawing new examples. No deadline: the machines are shared and noisy.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: run as root (CI does)")


@dataclass
class Daemon:
    base: Path
    data_root: Path
    exec_root: Path
    socket: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Environment for our CLI and the docker CLI to talk to this daemon only."""
        env = dict(os.environ)
        env["DOCKYARD_HOST"] = self.host
        env["DOCKER_HOST"] = self.host
        env["DOCKYARD_DATA_ROOT"] = str(self.data_root)
        env["DOCKER_CONFIG"] = str(self.base / "docker-config")
        return env

    def dockyard(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [str(VENV_BIN / "dockyard"), *args],
            env=self.env(),
            input=input if input is not None else b"",  # never the test runner's stdin
            capture_output=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"dockyard {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
            )
        return result

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["docker", *args],
            env=self.env(),
            input=input if input is not None else b"",
            capture_output=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
            )
        return result


def start_daemon(base: Path) -> Daemon:
    data_root, exec_root = base / "data", base / "exec"
    socket = exec_root / "dockyard.sock"
    log = open(base / "dockyardd.log", "ab")  # noqa: SIM115 - lives as long as the daemon
    process = subprocess.Popen(
        [
            str(VENV_BIN / "dockyardd"),
            "--data-root",
            str(data_root),
            "--exec-root",
            str(exec_root),
            "-H",
            f"unix://{socket}",
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"dockyardd did not start: {(base / 'dockyardd.log').read_text()}")
        time.sleep(0.02)
    return Daemon(base, data_root, exec_root, socket, process)


def processes_under(base: Path) -> list[int]:
    """PIDs whose command line names a path under base (our daemon's zygote and shims)."""
    found = []
    needle = str(base).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def mounts_under(base: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(base))]


def stop_daemon(daemon: Daemon) -> None:
    """Stop the daemon (it stops its containers; its shim zygote then leaves) and check that
    nothing it started or mounted is left."""
    if daemon.process.poll() is None:
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
    deadline = time.monotonic() + 15
    while processes_under(daemon.base) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = processes_under(daemon.base)
    for pid in leftover:  # ours, by PID: end them so one failure does not leak into the next
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    mounted = mounts_under(daemon.base)
    assert not leftover, f"processes left running under {daemon.base}: {leftover}"
    assert not mounted, f"mounts left under {daemon.base}: {mounted}"


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("busybox") / "busybox.tar"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "busybox_rootfs.py"), str(out)], check=True
    )
    return out


@pytest.fixture(scope="session")
def daemon(busybox_tar: Path) -> Iterator[Daemon]:
    """One daemon for the test session, with busybox:latest imported."""
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-test-"))
    d = start_daemon(base)
    try:
        d.dockyard("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        stop_daemon(d)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon of its own, empty, for tests that count what the store holds."""
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-test-"))
    d = start_daemon(base)
    try:
        yield d
    finally:
        stop_daemon(d)
        shutil.rmtree(base, ignore_errors=True)
