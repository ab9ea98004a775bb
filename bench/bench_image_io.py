"""Import and save of a ~500 MiB root filesystem (MB/s), dockyard vs docker and podman.

The root filesystem is real files copied from this machine's /usr (a Debian-like mix of many
small files and some big ones), tarred once and cached under /tmp. Each tool imports the same
tar and saves the result; we report the median of a few runs and the throughput of the tar.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from common import docker_peer_env, dockyard_daemon, median, podman_env, report, run, timed

TARGET = int(os.environ.get("BENCH_ROOTFS_MB", "500")) * 1024 * 1024
CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/dockyard-bench-cache"))
MAX_FILE = 4 << 20
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def rootfs_tar() -> Path:
    out = CACHE / f"rootfs-{TARGET >> 20}M-v2.tar"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    total = 0
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for top in ("/usr/lib", "/usr/share", "/usr/bin", "/usr/libexec", "/usr/include", "/usr/local/lib"):
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


def main() -> None:
    tar = rootfs_tar()
    size_mb = tar.stat().st_size / 1e6
    files = sum(1 for _ in tarfile.open(tar))
    print(f"root filesystem tar: {size_mb:.0f} MB, {files} entries; {REPEAT} runs each, medians")
    rows = []
    save_to = CACHE / "saved.tar"

    with dockyard_daemon() as (env, _base):
        bin_ = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "dockyard")
        rmi = lambda: run([bin_, "rmi", "-f", "bench/rootfs:1"], env) if run([bin_, "images", "-q", "bench/rootfs:1"], env).stdout.strip() else None  # noqa: E731
        t_import = timed(lambda: run([bin_, "import", str(tar), "bench/rootfs:1"], env), REPEAT, before=rmi)
        t_save = timed(lambda: run([bin_, "save", "-o", str(save_to), "bench/rootfs:1"], env), REPEAT)
        rows.append(row("dockyard", size_mb, t_import, t_save))

    docker_env = docker_peer_env()
    if docker_env is not None:
        drmi = lambda: run(["docker", "rmi", "-f", "bench/rootfs:1"], docker_env) if run(["docker", "images", "-q", "bench/rootfs:1"], docker_env).stdout.strip() else None  # noqa: E731
        t_import = timed(lambda: run(["docker", "import", str(tar), "bench/rootfs:1"], docker_env), REPEAT, before=drmi)
        t_save = timed(lambda: run(["docker", "save", "-o", str(save_to), "bench/rootfs:1"], docker_env), REPEAT)
        drmi()
        rows.append(row("docker 20.10", size_mb, t_import, t_save))

    pod_env = podman_env()
    if pod_env is not None:
        prmi = lambda: run(["podman", "rmi", "-f", "bench/rootfs:1"], pod_env) if run(["podman", "images", "-q", "bench/rootfs:1"], pod_env).stdout.strip() else None  # noqa: E731
        t_import = timed(lambda: run(["podman", "import", "-q", str(tar), "bench/rootfs:1"], pod_env), REPEAT, before=prmi)
        t_save = timed(lambda: run(["podman", "save", "-q", "-o", str(save_to), "bench/rootfs:1"], pod_env), REPEAT, before=lambda: save_to.unlink(missing_ok=True))
        prmi()
        rows.append(row("podman 4.3", size_mb, t_import, t_save))

    save_to.unlink(missing_ok=True)
    base = rows[0]
    for r in rows:
        r["import vs dockyard"] = f"{float(base['import s']) / float(r['import s']):.2f}x" if r is not base else "1.00x"
    report("image_io", rows)
    shutil.rmtree(CACHE / "unused", ignore_errors=True)


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
