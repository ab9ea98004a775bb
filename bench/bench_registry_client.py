"""Push and pull (with unpack) of a one-layer image of random content (BENCH_LAYER_MB, 200 MiB
by default; the issue's figure is 1024) over loopback (MB/s) against Debian's docker-registry
and against our own registry server, dockyard beside docker and podman when they run.

Every client talks to the registry through a counting TCP proxy, so the bytes a push sends are
counted on the wire: a second push of the same image must send no layer bytes (only the
manifest and the requests' headers). MB/s is the layer's blob size over the wall time of the
command; the median of BENCH_REPEAT runs.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from common import VENV_BIN, docker_peer_env, dockyard_daemon, median, podman_env, report, run

SIZE = int(os.environ.get("BENCH_LAYER_MB", "200")) << 20
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/dockyard-bench-cache"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def layer_tar() -> Path:
    out = CACHE / f"random-{SIZE >> 20}M.tar"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with tarfile.open(tmp, "w") as tar:
            info = tarfile.TarInfo("random.bin")
            info.size, info.mtime = SIZE, 1_700_000_000
            tar.addfile(info, io.BytesIO(os.urandom(SIZE)))
        tmp.rename(out)
    return out


SERVERS = ("docker-registry", "dockyard registry")


class Registry:
    """A registry server (docker-registry, or ours) on a free port with its storage in a temp
    dir, behind a proxy that counts the bytes clients send."""

    def __init__(self, server: str = "docker-registry") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-registry-"))
        self.port = free_port()
        (self.dir / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self.log = open(self.dir / "log", "wb")  # noqa: SIM115 - closed in stop()
        if server == "docker-registry":
            argv = ["docker-registry", "serve", str(self.dir / "config.yml")]
        else:
            argv = [str(VENV_BIN / "dockyard"), "registry", "serve"]
            argv += ["--addr", f"127.0.0.1:{self.port}", "--root", str(self.dir / "data")]
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.dir / "log").read_text()) from None
                time.sleep(0.05)
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.proxy_port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 20):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._listener.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(
    tool: str,
    cli: list[str],
    env: dict[str, str],
    tar: Path,
    extra_push: list[str],
    server: str = "docker-registry",
) -> dict[str, object]:
    rows: dict[str, list[float]] = {"push": [], "pull": []}
    second_sent = -1
    blob = 0
    for i in range(REPEAT):
        registry = Registry(server)  # its own per round: every first push is first
        try:
            ref = f"{registry.address}/bench/random:{i}"
            run([*cli, "import", str(tar), ref], env)
            start = time.perf_counter()
            run([*cli, "push", *extra_push, ref], env)
            rows["push"].append(time.perf_counter() - start)
            blob = max(blob, registry.sent)
            before = registry.sent
            run([*cli, "push", *extra_push, ref], env)
            second_sent = registry.sent - before
            run([*cli, "rmi", ref], env)
            start = time.perf_counter()
            run([*cli, "pull", *extra_push, ref], env)
            rows["pull"].append(time.perf_counter() - start)
            run([*cli, "rmi", ref], env)
        finally:
            registry.stop()
    push, pull = median(rows["push"]), median(rows["pull"])
    return {
        "tool": tool,
        "server": server,
        "blob_MB": round(blob / 1e6, 1),
        "push_s": round(push, 2),
        "push_MBps": round(blob / push / 1e6, 1),
        "pull_unpack_s": round(pull, 2),
        "pull_MBps": round(blob / pull / 1e6, 1),
        "second_push_bytes_sent": second_sent,
    }


def main() -> None:
    if shutil.which("docker-registry") is None:
        print("docker-registry is not installed: skipped")
        return
    tar = layer_tar()
    results = []
    docker, podman = docker_peer_env(), podman_env()
    for server in SERVERS:  # the same clients against both servers
        with dockyard_daemon() as (env, _base):
            results.append(measure("dockyard", [str(VENV_BIN / "dockyard")], env, tar, [], server))
        if docker is not None:
            results.append(measure("docker", ["docker"], docker, tar, [], server))
        if podman is not None:
            tls = ["--tls-verify=false"]
            results.append(measure("podman", ["podman"], podman, tar, tls, server))
    report("registry_client", results)


if __name__ == "__main__":
    main()
