"""Containers, side by side with docker, podman, runc and crun (whichever are installed):

- `run --rm --network none busybox true`, end to end through each CLI (median of RUNS);
- `version` of each CLI;
- 100 containers started `-d` from one image: time, memory per container (PSS of the engine's
  own processes per container: our shims and zygote; docker's containerd-shims; podman's
  conmons), disk per container;
- commit of a 1 GiB change (MB/s).
Rounds alternate the tools so that the machine's slow and fast minutes hit all alike.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from common import VENV_BIN, docker_peer_env, dockyard_daemon, podman_env, report, run

RUNS = int(os.environ.get("BENCH_RUNS", "25"))
MANY = int(os.environ.get("BENCH_CONTAINERS", "100"))
COMMIT_MB = int(os.environ.get("BENCH_COMMIT_MB", "1024"))
BUSYBOX_TAR = Path("/tmp/dockyard-bench-cache/busybox.tar")


def busybox_tar() -> Path:
    if not BUSYBOX_TAR.exists():
        BUSYBOX_TAR.parent.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).resolve().parent.parent / "scripts" / "busybox_rootfs.py"
        subprocess.run([str(VENV_BIN / "python"), str(script), str(BUSYBOX_TAR)], check=True)
    return BUSYBOX_TAR


def timed_once(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def pss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def pids_matching(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def du_kb(path: str) -> int:
    """Disk use under `path`, not descending into mounts (a running container's root is an
    overlay mount inside its directory: counting it would count the image's files again)."""
    out = subprocess.run(["du", "-skx", path], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def main() -> None:
    tar = busybox_tar()
    rows: list[dict[str, object]] = []
    with dockyard_daemon() as (env, base):
        run(
            [str(VENV_BIN / "dockyard"), "import", "-c", 'CMD ["sh"]', str(tar), "busybox:latest"],
            env,
        )
        tools: list[tuple[str, list[str], dict[str, str]]] = [
            ("dockyard", [str(VENV_BIN / "dockyard")], env),
            ("docker CLI → dockyardd", ["docker"], env),
        ]
        docker_env = docker_peer_env()
        if docker_env is not None:
            tools.append(("docker 20.10", ["docker"], docker_env))
        pod_env = podman_env()
        if pod_env is not None:
            tools.append(("podman 4.3", ["podman"], pod_env))
        startup: dict[str, list[float]] = {name: [] for name, _, _ in tools}
        version: dict[str, list[float]] = {name: [] for name, _, _ in tools}
        for _name, argv, tool_env in tools:  # warm each up once
            timed_once([*argv, "run", "--rm", "--network", "none", "busybox", "true"], tool_env)
        for _ in range(RUNS):
            for name, argv, tool_env in tools:
                startup[name].append(
                    timed_once(
                        [*argv, "run", "--rm", "--network", "none", "busybox", "true"], tool_env
                    )
                )
                version[name].append(
                    timed_once(
                        [*argv, "--version"] if name != "dockyard" else [*argv, "version"], tool_env
                    )
                )
        bundle = Path("/tmp/peers/bundle")
        bare: dict[str, list[float]] = {}
        for runtime in ("runc", "crun"):
            if shutil.which(runtime) and (bundle / "config.json").exists():
                bare[runtime] = [
                    timed_once(
                        [runtime, "run", "-b", str(bundle), f"bench-{runtime}-{i}"],
                        dict(os.environ),
                    )
                    for i in range(RUNS)
                ]
        for name, _, _ in tools:
            rows.append(
                {
                    "what": f"run --rm --network none busybox true ({name})",
                    "median ms": f"{1000 * statistics.median(startup[name]):.0f}",
                    "vs dockyard": f"{statistics.median(startup[name]) / statistics.median(startup['dockyard']):.2f}x",
                }
            )
        for runtime, times in bare.items():
            rows.append(
                {
                    "what": f"{runtime} run on a bare bundle",
                    "median ms": f"{1000 * statistics.median(times):.0f}",
                    "vs dockyard": f"{statistics.median(times) / statistics.median(startup['dockyard']):.2f}x",
                }
            )
        for name, _, _ in tools:
            rows.append(
                {
                    "what": f"{name} version",
                    "median ms": f"{1000 * statistics.median(version[name]):.0f}",
                    "vs dockyard": f"{statistics.median(version[name]) / statistics.median(version['dockyard']):.2f}x",
                }
            )
        rows += many_containers(env, base, docker_env, pod_env)
        rows += commits(env, docker_env, pod_env)
    report("containers", rows)


def many_containers(
    env: dict[str, str],
    base: Path,
    docker_env: dict[str, str] | None,
    pod_env: dict[str, str] | None,
) -> list[dict[str, object]]:
    rows = []
    ours = str(VENV_BIN / "dockyard")
    start = time.perf_counter()
    for _ in range(MANY):
        run([ours, "run", "-d", "--network", "none", "busybox", "sleep", "3600"], env)
    elapsed = time.perf_counter() - start
    time.sleep(1)
    mem = pss_kb(pids_matching(f"{base}/exec/zygote.sock"))
    disk = du_kb(f"{base}/data/containers") + sum(
        du_kb(str(p))
        for p in (base / "data" / "snapshots").iterdir()
        if p.name and _is_container_snapshot(p)
    )
    rows.append(
        {
            "what": f"{MANY} containers -d (dockyard): time s / PSS per container / disk per container",
            "median ms": f"{elapsed:.1f} s",
            "vs dockyard": f"{mem / MANY / 1024:.2f} MB, {disk / MANY:.0f} kB",
        }
    )
    ids = run([ours, "ps", "-q", "--no-trunc"], env).stdout.decode().split()
    run([ours, "rm", "-f", *ids], env)
    for name, tool_env, needle in (
        ("docker 20.10", docker_env, "containerd-shim"),
        ("podman 4.3", pod_env, "conmon"),
    ):
        if tool_env is None:
            continue
        argv = ["docker"] if name.startswith("docker") else ["podman"]
        before = set(pids_matching(needle))
        start = time.perf_counter()
        ids = [
            run([*argv, "run", "-d", "--network", "none", "busybox", "sleep", "3600"], tool_env)
            .stdout.decode()
            .strip()
            for _ in range(MANY)
        ]
        elapsed = time.perf_counter() - start
        time.sleep(1)
        mem = pss_kb([p for p in pids_matching(needle) if p not in before])
        rows.append(
            {
                "what": f"{MANY} containers -d ({name}): time s / PSS of its shims per container",
                "median ms": f"{elapsed:.1f} s",
                "vs dockyard": f"{mem / MANY / 1024:.2f} MB",
            }
        )
        run([*argv, "rm", "-f", *ids], tool_env)
    return rows


def _is_container_snapshot(path: Path) -> bool:
    return (path / "work").exists()


def commits(
    env: dict[str, str], docker_env: dict[str, str] | None, pod_env: dict[str, str] | None
) -> list[dict[str, object]]:
    rows = []
    write = f"head -c {COMMIT_MB * 1024 * 1024} /dev/urandom > /big"
    for name, argv, tool_env in (
        ("dockyard", [str(VENV_BIN / "dockyard")], env),
        ("docker 20.10", ["docker"], docker_env),
        ("podman 4.3", ["podman"], pod_env),
    ):
        if tool_env is None:
            continue
        cname = f"bench-commit-{os.getpid()}"
        run([*argv, "run", "--name", cname, "busybox", "sh", "-c", write], tool_env)
        start = time.perf_counter()
        image = run([*argv, "commit", cname, "bench/commit:1"], tool_env).stdout.decode().strip()
        elapsed = time.perf_counter() - start
        run([*argv, "rm", "-f", cname], tool_env)
        run([*argv, "rmi", "-f", image or "bench/commit:1"], tool_env)
        rows.append(
            {
                "what": f"commit of a {COMMIT_MB} MiB change ({name})",
                "median ms": f"{elapsed:.1f} s",
                "vs dockyard": f"{COMMIT_MB * 1.048576 / elapsed:.0f} MB/s",
            }
        )
    return rows


if __name__ == "__main__":
    main()
