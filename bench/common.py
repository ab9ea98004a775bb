"""Shared bench helpers: our daemon in a temp dir, the peers, timing and reporting."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PEERS_CONF = "/tmp/peers/containers.conf"


@contextmanager
def dockyard_daemon():
    """A dockyardd of our own; yields the environment for clients to reach it."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    sock = base / "exec" / "dockyard.sock"
    log = open(base / "dockyardd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "dockyardd"),
            "--data-root",
            str(base / "data"),
            "--exec-root",
            str(base / "exec"),
            "-H",
            f"unix://{sock}",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "dockyardd.log").read_text())
            time.sleep(0.02)
        env = dict(os.environ, DOCKYARD_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}")
        yield env, base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def docker_peer_env() -> dict[str, str] | None:
    """The dockerd that ../shared/peers/start.sh runs, if it answers."""
    if not os.path.exists("/var/run/docker.sock"):
        return None
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    ok = subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0
    return env if ok else None


def podman_env() -> dict[str, str] | None:
    if shutil.which("podman") is None:
        return None
    env = dict(os.environ)
    if os.path.exists(PEERS_CONF):
        env["CONTAINERS_CONF"] = PEERS_CONF
    return env


def run(cmd: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=env, capture_output=True, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.decode(errors='replace')}")
    return result


def timed(
    fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None
) -> list[float]:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, rows: list[dict[str, object]]) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2))
    keys = list(rows[0].keys()) if rows else []
    widths = [max(len(str(k)), *(len(str(r.get(k, ""))) for r in rows)) for k in keys]
    print("  ".join(str(k).ljust(w) for k, w in zip(keys, widths, strict=False)))
    for r in rows:
        print("  ".join(str(r.get(k, "")).ljust(w) for k, w in zip(keys, widths, strict=False)))
    sys.stdout.flush()
