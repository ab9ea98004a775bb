"""Import and save of a ~500 MiB root filesystem (MB/s), dockyard vs docker and podman.

The root filesystem is real files copied from this machine's /usr (a Debian-like mix of many
small files and some big ones), tarred once and cached under /tmp. Each tool imports the same
tar and saves the result; we report the median of a few runs and the throughput of the tar.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from common import (
    VENV_BIN,
    docker_peer_env,
    dockyard_daemon,
    median,
    podman_env,
    report,
    run,
    timed,
)

TARGET = int(os.environ.get("BENCH_ROOTFS_MB", "500")) * 1024 * 1024
CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/dockyard-bench-cache"))
MAX_FILE = 4 << 20
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
IMAGE = "bench/rootfs:1"


def rootfs_tar() -> Path:
    out = CACHE / f"rootfs-{TARGET >> 20}M-v2.tar"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    total = 0
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for top in (
            "/usr/lib",
            "/usr/share",
            "/usr/bin",
            "/usr/libexec",
            "/usr/include",
            "/usr/local/lib",
        ):
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                for name in sorted(filenames):
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    if not (os.path.islink(path) or os.path.isfile(path)):
                        continue
                    if st.st_size > MAX_FILE:  # keep the mix Debian-like: mostly small files
                        continue
                    tar.add(path, arcname=path.lstrip("/"), recursive=False)
                    total += st.st_size + 512
                    if total >= TARGET:
                        break
                if total >= TARGET:
                    break
            if total >= TARGET:
                break
    tmp.rename(out)
    return out


class Tool:
    """A docker-like command line: `<argv> import|save|images|rmi ...` against one store."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], quiet: bool = False):
        self.name, self.argv, self.env = name, argv, env
        self.q = ["-q"] if quiet else []

    def import_(self, tar: Path) -> None:
        run([*self.argv, "import", *self.q, str(tar), IMAGE], self.env)

    def save(self, out: Path) -> None:
        out.unlink(missing_ok=True)
        run([*self.argv, "save", *self.q, "-o", str(out), IMAGE], self.env)

    def remove(self) -> None:
        if run([*self.argv, "images", "-q", IMAGE], self.env).stdout.strip():
            run([*self.argv, "rmi", "-f", IMAGE], self.env)


def main() -> None:
    tar = rootfs_tar()
    size_mb = tar.stat().st_size / 1e6
    with tarfile.open(tar) as archive:
        files = sum(1 for _ in archive)
    print(f"root filesystem tar: {size_mb:.0f} MB, {files} entries; {REPEAT} runs each, medians")
    out = CACHE / "saved.tar"
    with dockyard_daemon() as (env, _base):
        tools = [Tool("dockyard", [str(VENV_BIN / "dockyard")], env)]
        docker_env = docker_peer_env()
        if docker_env is not None:
            tools.append(Tool("docker 20.10", ["docker"], docker_env))
        pod_env = podman_env()
        if pod_env is not None:
            tools.append(Tool("podman 4.3", ["podman"], pod_env, quiet=True))
        # Rounds alternate the tools, so that the disk's slow and fast minutes hit all alike.
        times: dict[str, tuple[list[float], list[float]]] = {t.name: ([], []) for t in tools}
        for _ in range(REPEAT):
            for tool in tools:
                tool.remove()
                times[tool.name][0].extend(timed(lambda t=tool: t.import_(tar), 1))
                times[tool.name][1].extend(timed(lambda t=tool: t.save(out), 1))
        for tool in tools:
            tool.remove()
        rows = [row(t.name, size_mb, *times[t.name]) for t in tools]
    out.unlink(missing_ok=True)
    ours = rows[0]
    for r in rows:
        r["dockyard import speed-up"] = f"{float(r['import s']) / float(ours['import s']):.2f}x"
        r["dockyard save speed-up"] = f"{float(r['save s']) / float(ours['save s']):.2f}x"
    report("image_io", rows)


def row(tool: str, size_mb: float, t_import: list[float], t_save: list[float]) -> dict[str, object]:
    mi, ms = median(t_import), median(t_save)
    return {
        "tool": tool,
        "import s": f"{mi:.2f}",
        "import MB/s": f"{size_mb / mi:.0f}",
        "save s": f"{ms:.2f}",
        "save MB/s": f"{size_mb / ms:.0f}",
    }


if __name__ == "__main__":
    main()
