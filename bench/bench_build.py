"""Builds, side by side with `DOCKER_BUILDKIT=0 docker build` and `podman build` (whichever run):

- cold build (`--no-cache`) of a 10-step Dockerfile, and its fully cached rebuild;
- fully cached rebuild of a 3-step Dockerfile, end to end through each CLI (median of RUNS;
  the target for ours is 40 ms);
- a cold `COPY` of a 10,000-file context.
Every RUN uses `--network none` for all tools alike. Rounds alternate the tools so that the
machine's slow and fast minutes hit all alike. Images the cold builds leave on a peer are removed
by ID at the end (never by prune: the peers are shared).

BENCH_DOCKER_HOST=unix://… measures a dockerd of your own when the shared peer is not running.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import VENV_BIN, docker_peer_env, dockyard_daemon, podman_env, report, run

RUNS = int(os.environ.get("BENCH_RUNS", "25"))
COLD_RUNS = int(os.environ.get("BENCH_BUILD_COLD_RUNS", "5"))
FILES = int(os.environ.get("BENCH_BUILD_FILES", "10000"))
BUSYBOX_TAR = Path("/tmp/dockyard-bench-cache/busybox.tar")

TEN_STEPS = """FROM busybox
ENV GREETING=hello
WORKDIR /app
COPY a.txt /app/a.txt
RUN echo one > /app/one
RUN echo two > /app/two
LABEL bench=build
COPY b.txt /app/b.txt
RUN cat /app/a.txt /app/b.txt > /app/c
CMD ["cat", "/app/c"]
"""
THREE_STEPS = """FROM busybox
RUN echo cached > /cached
CMD ["cat", "/cached"]
"""
MANY_FILES = "FROM busybox\nCOPY files /files\n"


def busybox_tar() -> Path:
    if not BUSYBOX_TAR.exists():
        BUSYBOX_TAR.parent.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).resolve().parent.parent / "scripts" / "busybox_rootfs.py"
        subprocess.run([str(VENV_BIN / "python"), str(script), str(BUSYBOX_TAR)], check=True)
    return BUSYBOX_TAR


def contexts(base: Path) -> dict[str, Path]:
    ten = base / "ten"
    ten.mkdir()
    (ten / "Dockerfile").write_text(TEN_STEPS)
    (ten / "a.txt").write_text("a\n")
    (ten / "b.txt").write_text("b\n")
    three = base / "three"
    three.mkdir()
    (three / "Dockerfile").write_text(THREE_STEPS)
    many = base / "many"
    (many / "files").mkdir(parents=True)
    (many / "Dockerfile").write_text(MANY_FILES)
    per_dir = 100
    for i in range(FILES):
        directory = many / "files" / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            directory.mkdir()
        (directory / f"f{i:05d}.txt").write_text(f"file {i}\n" * 8)
    return {"ten": ten, "three": three, "many": many}


class Tool:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.made: list[str] = []  # image IDs the cold builds made, removed at the end

    def build(self, ctx: Path, tag: str, *, cold: bool, iidfile: Path) -> float:
        cmd = [*self.argv, "build", "--network", "none", "-t", tag, "--iidfile", str(iidfile)]
        if cold:
            cmd.append("--no-cache")
        start = time.perf_counter()
        result = subprocess.run([*cmd, str(ctx)], env=self.env, capture_output=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.decode(errors='replace')}")
        if cold:
            self.made.append(iidfile.read_text().strip())
        return elapsed

    def has_busybox(self) -> bool:
        probe = [*self.argv, "image", "inspect", "busybox:latest"]
        return subprocess.run(probe, env=self.env, capture_output=True).returncode == 0

    def cleanup(self) -> None:
        for image in set(self.made):
            subprocess.run([*self.argv, "rmi", "-f", image], env=self.env, capture_output=True)


def tools(env: dict[str, str]) -> list[Tool]:
    legacy = {"DOCKER_BUILDKIT": "0"}
    found = [
        Tool("dockyard", [str(VENV_BIN / "dockyard")], env),
        Tool("docker CLI → dockyardd", ["docker"], {**env, **legacy}),
    ]
    docker_env = docker_peer_env()
    if docker_env is None and os.environ.get("BENCH_DOCKER_HOST"):
        docker_env = {**os.environ, "DOCKER_HOST": os.environ["BENCH_DOCKER_HOST"]}
    if docker_env is not None:
        found.append(Tool("docker 20.10", ["/usr/bin/docker"], {**docker_env, **legacy}))
    pod_env = podman_env()
    if pod_env is not None:
        found.append(Tool("podman 4.3", ["podman"], pod_env))
    usable = []
    for tool in found:
        if tool.name.startswith(("dockyard", "docker CLI")) or tool.has_busybox():
            usable.append(tool)
        else:
            print(f"skipping {tool.name}: no busybox:latest image there")
    return usable


def main() -> None:
    tar = busybox_tar()
    rows: list[dict[str, object]] = []
    with dockyard_daemon() as (env, _base), tempfile.TemporaryDirectory() as tmp:
        run(
            [str(VENV_BIN / "dockyard"), "import", "-c", 'CMD ["sh"]', str(tar), "busybox:latest"],
            env,
        )
        ctx = contexts(Path(tmp))
        iid = Path(tmp) / "iid"
        all_tools = tools(env)
        working = []
        for tool in all_tools:  # warm up: one build of each, which also fills the caches
            try:
                for name in ("ten", "three"):
                    tool.build(ctx[name], f"bench-{name}", cold=False, iidfile=iid)
                working.append(tool)
            except RuntimeError as exc:
                print(f"skipping {tool.name}: {exc}")
        times: dict[tuple[str, str], list[float]] = {}

        def measure(what: str, name: str, tag: str, cold: bool, rounds: int) -> None:
            for _ in range(rounds):
                for tool in working:
                    elapsed = tool.build(ctx[name], tag, cold=cold, iidfile=iid)
                    times.setdefault((what, tool.name), []).append(elapsed)

        measure("cold build, 10 steps", "ten", "bench-ten", True, COLD_RUNS)
        measure("cached rebuild, 10 steps", "ten", "bench-ten", False, RUNS)
        measure("cached rebuild, 3 steps", "three", "bench-three", False, max(RUNS, 20))
        measure(f"COPY of {FILES} files, cold", "many", "bench-many", True, max(COLD_RUNS // 2, 1))
        for tool in working:
            tool.cleanup()
        whats = list(dict.fromkeys(what for what, _ in times))
        for what in whats:
            base = statistics.median(times[(what, "dockyard")])
            for tool in working:
                value = statistics.median(times[(what, tool.name)])
                rows.append(
                    {
                        "what": f"{what} ({tool.name})",
                        "median ms": f"{1000 * value:.0f}",
                        "runs": len(times[(what, tool.name)]),
                        "vs dockyard": f"{value / base:.2f}x",
                    }
                )
    report("build", rows)


if __name__ == "__main__":
    main()
