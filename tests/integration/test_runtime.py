"""The low-level runtime (dockyard.runtime.linux and the dockyard-runtime CLI) on a busybox bundle.

Root only (namespaces, mounts, cgroups). Every container runs under a cgroup parent of this
module's own; a finalizer asserts that no container cgroup, mount or state directory is left.
The bundle's config.json is written here (not by runtime/spec.py): docker-like defaults.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime import cgroups, linux

pytestmark = pytest.mark.root

PARENT = f"/dockyard-test-{os.getpid()}"
VENV_BIN = Path(sys.executable).parent

# docker's default capability set: CapEff 00000000a80425fb
DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
MASKED = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"]
MASKED += ["/proc/asound", "/proc/latency_stats", "/proc/timer_stats", "/proc/sched_debug"]
MASKED += ["/proc/scsi"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: namespaces, mounts and cgroups (CI runs as root)")


@pytest.fixture(scope="module")
def rootfs(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _root_required()
    root = tmp_path_factory.mktemp("rt-rootfs") / "rootfs"
    root.mkdir()
    with tarfile.open(busybox_tar) as tar:
        tar.extractall(root, filter="fully_trusted")  # our own reproducible tar
    return root


@pytest.fixture(scope="module", autouse=True)
def _cgroup_parent() -> Iterator[None]:
    yield
    for d in cgroups.Cgroup.for_path(PARENT).dirs.values():
        if os.path.isdir(d):
            os.rmdir(d)


def _leftovers(base: Path) -> list[str]:
    found = []
    for d in cgroups.Cgroup.for_path(PARENT).dirs.values():
        if os.path.isdir(d):
            found += [os.path.join(d, e.name) for e in os.scandir(d) if e.is_dir()]
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if line.split()[4].startswith(str(base))]
    return found


class Env:
    def __init__(self, rootfs: Path, state_root: Path) -> None:
        self.rootfs = rootfs
        self.state_root = str(state_root)
        self.containers: list[linux.Container] = []

    def create(self, spec: dict[str, Any], **kwargs: Any) -> linux.Container:
        cid = f"t-{uuid.uuid4().hex[:12]}"
        c = linux.create(spec, cid, self.state_root, cgroup_parent=PARENT, **kwargs)
        self.containers.append(c)
        return c

    def run(
        self, args: list[str], *, spec: dict[str, Any] | None = None, **process: Any
    ) -> tuple[int, str]:
        """Run to completion; (exit code, stdout+stderr)."""
        spec = spec or make_spec(self.rootfs, args, **process)
        r, w = os.pipe()
        try:
            c = self.create(spec, stdio=(_devnull(), w, w))
        finally:
            os.close(w)
        c.start()
        out = _read_all(r)
        code = c.wait(timeout=60)
        c.delete()
        assert code is not None
        return code, out


@pytest.fixture
def env(rootfs: Path, tmp_path: Path) -> Iterator[Env]:
    e = Env(rootfs, tmp_path / "state")
    yield e
    for c in e.containers:
        if os.path.isdir(c.state_dir):
            c.delete(force=True)
    assert _leftovers(rootfs.parent) == []
    assert _leftovers(tmp_path) == []
    state_root = tmp_path / "state"
    assert not state_root.exists() or list(state_root.iterdir()) == []


def make_spec(rootfs: Path, args: list[str], **process: Any) -> dict[str, Any]:
    proc: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=box",
        ],
        "cwd": "/",
        "capabilities": {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": False,
    }
    proc.update(process)
    secure = ["nosuid", "noexec", "nodev"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": proc,
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": secure},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*secure, "ro"]},
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["ro", *secure],
            },
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": secure},
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": [*secure, "mode=1777", "size=65536k"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "size=65536k"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }


def _devnull() -> int:
    return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


def _exec(c: linux.Container, proc: dict[str, Any]) -> tuple[int | None, list[str]]:
    r, w = os.pipe()
    try:
        p = linux.exec_process(c, proc, stdio=(_devnull(), w, w))
    finally:
        os.close(w)
    return p.wait(timeout=20), _read_all(r).split()


def test_pid1_is_the_command_and_host_processes_are_invisible(env: Env) -> None:
    script = "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"
    code, out = env.run(["sh", "-c", script])
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "1"
    assert set(lines[1].split()) <= {"1", "2", "3", "4", "5"}  # sh, ls, grep, sort, tr


def test_hostname_and_loopback(env: Env) -> None:
    code, out = env.run(
        ["sh", "-c", "hostname; cat /sys/class/net/lo/operstate; ls /sys/class/net"]
    )
    assert code == 0
    assert out.split() == ["box", "unknown", "lo"]  # lo is up, and the only link


def test_no_host_mounts_visible(env: Env, tmp_path: Path) -> None:
    code, out = env.run(["cat", "/proc/self/mountinfo"])
    assert code == 0
    points = {line.split()[4] for line in out.splitlines()}
    assert "/" in points and "/proc" in points and "/dev/pts" in points
    assert not any(p.startswith(("/work", str(tmp_path), "/var/lib")) for p in points)


def test_masked_and_readonly_paths_and_readonly_root(env: Env) -> None:
    script = (
        "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
        "echo 1 > /proc/sys/kernel/domainname && echo wrote-proc-sys; "
        "touch /newfile && echo wrote-root; touch /tmp/ok && echo wrote-tmp; "
        "grep ' /proc/sys ' /proc/self/mountinfo | grep -c ' ro,'"
    )
    _, out = env.run(["sh", "-c", script])
    lines = out.split("\n")
    assert lines[0].strip() == "0"  # /dev/null over /proc/keys
    assert lines[1].strip() == "0"  # an empty tmpfs over /sys/firmware
    assert "wrote-proc-sys" not in out
    assert "wrote-root" not in out
    assert "wrote-tmp" in out
    assert "Read-only file system" in out
    assert lines[-2].strip() == "1"


def test_default_and_dropped_capabilities(env: Env) -> None:
    code, out = env.run(["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"])
    assert code == 0
    assert "CapEff:\t00000000a80425fb" in out
    assert "CapBnd:\t00000000a80425fb" in out
    dropped = [c for c in DOCKER_CAPS if c not in ("CAP_NET_RAW", "CAP_CHOWN")]
    caps = {k: dropped for k in ("bounding", "effective", "permitted")}
    code, out = env.run(
        ["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"], capabilities=caps
    )
    assert "CapEff:\t00000000a80405fa" in out
    assert "CapBnd:\t00000000a80405fa" in out
    code, out = env.run(["chown", "1:1", "/tmp"], capabilities=caps)
    assert code == 1 and "Operation not permitted" in out


def test_user_switch_and_groups(env: Env) -> None:
    user = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    code, out = env.run(
        ["sh", "-c", "id; echo home=$HOME; grep CapEff /proc/self/status"], user=user
    )
    assert code == 0
    assert "uid=1000 gid=1001 groups=10,20" in out
    assert "home=/" in out
    assert "CapEff:\t0000000000000000" in out  # a non-root user gets no effective capability


def test_memory_limit_oom_kill(env: Env) -> None:
    spec = make_spec(env.rootfs, ["tail", "/dev/zero"])  # buffers an endless line
    spec["linux"]["resources"]["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
    c = env.create(spec, stdio=(_devnull(), _devnull(), _devnull()))
    notify = c.cgroup.oom_notify_fd()  # what a shim polls to learn of the OOM as it happens
    c.start()
    assert c.wait(timeout=60) == 137
    assert select.select([notify], [], [], 5)[0] == [notify]
    os.close(notify)
    assert c.oom_killed() is True
    c.delete()
    assert c.oom_killed() is True  # remembered after the cgroup is gone


def test_pids_limit_bounds_a_fork_bomb(env: Env) -> None:
    # The inner shell forks until it cannot (busybox sh then gives up); PID 1 stays.
    script = "sh -c 'while true; do sleep 30 & done'; exec sleep 30"
    spec = make_spec(env.rootfs, ["sh", "-c", script])
    spec["linux"]["resources"]["pids"] = {"limit": 12}
    c = env.create(spec, stdio=(_devnull(),) * 3)
    c.start()
    events = os.path.join(c.cgroup.dir_of("pids") or "", "pids.events")
    deadline = time.monotonic() + 20
    while Path(events).read_text().split()[-1] == "0":  # "max N": forks the limit refused
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    assert 10 <= c.stats()["pids"]["current"] <= 12
    assert c.stats()["pids"]["limit"] == 12
    assert 10 <= len(c.pids()) <= 12
    c.kill(signal.SIGKILL, all=True)
    assert c.wait(timeout=20) == 137
    c.delete()


def test_rlimits_and_clamping_to_the_host_hard_limit(env: Env) -> None:
    limits = [{"type": "RLIMIT_NOFILE", "soft": 1234, "hard": 2345}]
    code, out = env.run(["sh", "-c", "ulimit -n; ulimit -Hn"], rlimits=limits)
    assert out.split() == ["1234", "2345"]
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if host_hard == resource.RLIM_INFINITY:
        pytest.skip("the host has no hard RLIMIT_NOFILE to clamp to")
    limits = [{"type": "RLIMIT_NOFILE", "soft": 1 << 20, "hard": 1 << 20}]
    code, out = env.run(["sh", "-c", "ulimit -n; ulimit -Hn"], rlimits=limits)
    assert code == 0
    assert out.split() == [str(min(host_hard, 1 << 20))] * 2


def test_exec_errors_carry_dockers_exit_codes(env: Env) -> None:
    cases = {
        "nosuch": (127, 'exec: "nosuch": executable file not found in $PATH'),
        "/nosuch": (127, 'exec: "/nosuch": stat /nosuch: no such file or directory'),
        "/etc": (126, 'exec: "/etc": permission denied'),
        "/etc/passwd": (126, 'exec: "/etc/passwd": permission denied'),
    }
    for arg, (code, message) in cases.items():
        with pytest.raises(linux.ExecError) as info:
            env.create(make_spec(env.rootfs, [arg]))
        assert (info.value.exit_code, info.value.message) == (code, message)
    # a failed create leaves nothing behind (the fixture checks cgroups, mounts and state)


def test_terminal_mode(env: Env) -> None:
    spec = make_spec(
        env.rootfs,
        ["sh", "-c", "tty; stty size; echo $TERM"],
        terminal=True,
        consoleSize={"height": 30, "width": 100},
    )
    spec["process"]["env"].append("TERM=xterm")
    c = env.create(spec)
    assert c.console is not None
    c.start()
    out = b""
    while True:
        try:
            chunk = os.read(c.console, 4096)
        except OSError:  # EIO: the slave side is closed
            break
        if not chunk:
            break
        out += chunk
    assert c.wait(timeout=20) == 0
    c.delete()
    assert out.decode().split() == ["/dev/pts/0", "30", "100", "xterm"]


def test_pause_resume_and_stats(env: Env) -> None:
    spec = make_spec(env.rootfs, ["sh", "-c", "while true; do sleep 0.01; done"])
    c = env.create(spec, stdio=(_devnull(),) * 3)
    c.start()
    assert c.status() == "running"
    c.pause()
    assert c.status() == "paused" and c.state()["status"] == "paused"
    assert c.pid in c.pids()
    c.resume()
    assert c.status() == "running"
    stats = c.stats()
    assert stats["cpu"]["usage_ns"] > 0 and stats["memory"]["usage"] > 0
    c.kill(signal.SIGKILL)
    assert c.wait(timeout=20) == 137
    assert c.status() == "stopped"
    c.delete()


def test_exec_into_a_running_container(env: Env) -> None:
    c = env.create(make_spec(env.rootfs, ["sleep", "60"]), stdio=(_devnull(),) * 3)
    c.start()
    script = "echo $$; hostname; for n in mnt net; do readlink /proc/$$/ns/$n; readlink /proc/1/ns/$n; done"
    caps = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}
    proc = {"args": ["sh", "-c", script], "env": ["PATH=/bin"], "cwd": "/", "capabilities": caps}
    code, lines = _exec(c, proc)  # capabilities as the init's, or /proc/1/ns is out of reach
    assert code == 0
    assert lines[0] != "1" and int(lines[0]) < 10  # a pid of the container's namespace
    assert lines[1] == "box"
    assert lines[2] == lines[3] and lines[4] == lines[5]  # same mount and net namespaces
    proc = {"args": ["sh", "-c", "id -u; pwd; echo $HOME"], "env": ["PATH=/bin"], "cwd": "/tmp"}
    code, lines = _exec(c, proc | {"user": {"uid": 65534, "gid": 65534}})
    assert (code, lines) == (0, ["65534", "/tmp", "/home"])  # HOME from the image's /etc/passwd
    assert len(c.pids()) == 1  # the exec'd processes are gone again
    with pytest.raises(linux.ExecError) as info:
        linux.exec_process(c, {"args": ["nosuch"], "env": ["PATH=/bin"], "cwd": "/"})
    assert info.value.exit_code == 127
    c.kill(signal.SIGTERM)  # sleep as PID 1 has no handler: TERM is ignored, as in docker
    assert c.wait(timeout=0.3) is None
    c.kill(signal.SIGKILL)
    assert c.wait(timeout=20) == 137
    c.delete()


def test_kill_created_container_and_delete_removes_everything(env: Env) -> None:
    spec = make_spec(env.rootfs, ["sleep", "60"])
    spec["linux"]["cgroupsPath"] = "pod-a/inner/box"  # relative: under PARENT, 3 new levels
    c = env.create(spec)
    assert c.status() == "created"
    assert c.cgroup.path == f"{PARENT}/pod-a/inner/box"
    dirs = list(c.cgroup.dirs.values())
    assert all(os.path.isdir(d) for d in dirs)
    with pytest.raises(linux.ContainerError):
        c.delete()  # not stopped
    c.kill(signal.SIGTERM)  # the waiting init dies of TERM
    assert c.wait(timeout=20) == 128 + signal.SIGTERM
    c.delete()
    assert not any(os.path.exists(d) for d in dirs)
    # the levels create() made go too; the shared parent stays
    assert not any(os.path.exists(os.path.dirname(os.path.dirname(d))) for d in dirs)
    assert all(os.path.isdir(os.path.dirname(os.path.dirname(os.path.dirname(d)))) for d in dirs)
    assert not os.path.exists(c.state_dir)
    with pytest.raises(linux.ContainerError):
        linux.load(c.id, env.state_root)


def test_seccomp_profile(env: Env) -> None:
    spec = make_spec(env.rootfs, ["sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/a"])
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    code, out = env.run([], spec=spec)
    assert code == 1
    assert "Seccomp:\t2" in out
    assert "Permission denied" in out


def runtime_cli(
    state_root: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # Files, not pipes: a created container's init keeps the stdio it inherits from `create`,
    # so a pipe would not see EOF before the container exits (runc behaves the same).
    with open(state_root + ".out", "w+") as out, open(state_root + ".err", "w+") as err:
        result = subprocess.run(
            [
                str(VENV_BIN / "dockyard-runtime"),
                "--root",
                state_root,
                "--cgroup-parent",
                PARENT,
                *args,
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        out.seek(0)
        err.seek(0)
        result.stdout, result.stderr = out.read(), err.read()
    if check and result.returncode != 0:
        raise AssertionError(f"dockyard-runtime {args} exited {result.returncode}: {result.stderr}")
    return result


def test_cli_contract(env: Env, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(make_spec(env.rootfs, ["sleep", "60"])))
    cid = f"cli-{uuid.uuid4().hex[:8]}"
    pid_file = tmp_path / "pid"
    runtime_cli(env.state_root, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
    state = json.loads(runtime_cli(env.state_root, "state", cid).stdout)
    assert state["status"] == "created" and state["id"] == cid
    assert state["pid"] == int(pid_file.read_text()) and state["bundle"] == str(bundle)
    runtime_cli(env.state_root, "start", cid)
    assert json.loads(runtime_cli(env.state_root, "state", cid).stdout)["status"] == "running"
    assert runtime_cli(env.state_root, "start", cid, check=False).returncode == 1
    bad = runtime_cli(env.state_root, "delete", cid, check=False)
    assert bad.returncode == 1 and "not stopped" in bad.stderr
    runtime_cli(env.state_root, "kill", cid, "KILL")
    deadline = time.monotonic() + 20
    while json.loads(runtime_cli(env.state_root, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runtime_cli(env.state_root, "delete", cid)
    missing = runtime_cli(env.state_root, "state", cid, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # run: in the foreground, the exit code passed through, everything removed afterwards
    spec = make_spec(env.rootfs, ["sh", "-c", "echo hi; exit 3"])
    (bundle / "config.json").write_text(json.dumps(spec))
    result = runtime_cli(env.state_root, "run", "--bundle", str(bundle), cid, check=False)
    assert (result.returncode, result.stdout) == (3, "hi\n")
    assert not os.path.exists(os.path.join(env.state_root, cid))
    os.unlink(env.state_root + ".out")
    os.unlink(env.state_root + ".err")
