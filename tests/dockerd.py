"""A private dockerd for tests that compare with the real thing.

It runs on its own data-root, exec-root and socket under a temp dir, in its own network
namespace: `--bridge=none` makes dockerd delete the link named docker0, and a shared dockerd on
the host may own one. CI installs docker.io, so these tests run there; they never touch a dockerd
someone else started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PrivateDockerd:
    base: Path
    socket: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.base / "docker-config"),
        }

    def docker(self, *args: str, timeout: float = 180) -> bytes:
        result = subprocess.run(
            ["docker", *args], capture_output=True, timeout=timeout, env=self.env(), input=b""
        )
        if result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
            )
        return result.stdout


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in s.recv(64)
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        queue += [int(c) for c in children]
    return found


def _unmount_under(base: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in reversed(points):
        if point.startswith(str(base) + "/"):
            subprocess.run(["umount", "-l", point], capture_output=True)


@contextmanager
def private_dockerd() -> Iterator[PrivateDockerd]:
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None or shutil.which("unshare") is None:
        raise RuntimeError("dockerd, docker and unshare must be installed (.ci/run installs them)")
    base = Path(tempfile.mkdtemp(prefix="dockyard-peer-"))
    sock = base / "docker.sock"
    with open(base / "dockerd.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                "unshare", "--net", "--", dockerd,
                "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
                "--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{sock}",
                "--bridge=none", "--iptables=false", "--ip6tables=false",
                "--containerd-namespace", f"dockyard-test-{os.getpid()}",
                "--containerd-plugins-namespace", f"dockyard-test-plugins-{os.getpid()}",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _answers(sock):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "private dockerd did not start:\n" + (base / "dockerd.log").read_text()[-3000:]
                )
            time.sleep(0.1)
        yield PrivateDockerd(base, sock, process)
    finally:
        children = _descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in [process.pid, *children]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
        for pid in children:  # its containerd, if it outlived dockerd
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
