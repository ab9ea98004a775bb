"""Isolation, proven with real containers run through the daemon: what a container can see and
do (processes, hostname, mounts, /proc and /sys, capabilities, users, network, limits) and what
it cannot (see the host, signal another container, change its image or another container)."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon

DEFAULT_CAPS = 0x00000000A80425FB  # docker's default set
CAP_NET_ADMIN = 12


def run(daemon: Daemon, *args: str, check: bool = True) -> str:
    """`dockyard run --rm ARGS`: the container's output (stdout and stderr together)."""
    result = daemon.dockyard("run", "--rm", *args, check=check)
    return result.stdout.decode() + result.stderr.decode()


def inspect(daemon: Daemon, ref: str, template: str = "{{json .}}") -> str:
    return daemon.dockyard("inspect", "-f", template, ref).stdout.decode().strip()


def status_caps(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", text, re.M)}


def mount_points(mountinfo: str) -> list[str]:
    return [line.split()[4] for line in mountinfo.splitlines() if line.strip()]


# -- processes, hostname, mounts ---------------------------------------------------------------
def test_pid_1_is_the_command_and_no_host_process_is_visible(daemon: Daemon) -> None:
    out = run(daemon, "busybox", "ps", "-o", "pid,comm")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rows == [["1", "ps"]], out  # the command itself is PID 1, alone in its namespace
    listing = run(daemon, "busybox", "ls", "/proc").split()
    assert [entry for entry in listing if entry.isdigit()] == ["1"], listing
    # A shell sees itself as 1 and its child as 2; never one of the host's PIDs.
    out = run(daemon, "busybox", "sh", "-c", "echo $$; ps -o pid,comm; true")
    assert out.split() == ["1", "PID", "COMMAND", "1", "sh", "2", "ps"], out
    assert str(os.getpid()) not in listing


def test_hostname_defaults_to_the_short_id_and_h_sets_it(daemon: Daemon) -> None:
    cid = daemon.dockyard("run", "-d", "busybox", "sh", "-c", "hostname; cat /etc/hostname")
    cid_text = cid.stdout.decode().strip()
    try:
        daemon.dockyard("wait", cid_text)
        logs = daemon.dockyard("logs", cid_text).stdout.decode().split()
        assert logs == [cid_text[:12], cid_text[:12]]
        assert inspect(daemon, cid_text, "{{.Config.Hostname}}") == cid_text[:12]
    finally:
        daemon.dockyard("rm", "-f", cid_text)
    out = run(daemon, "-h", "isolated-host", "busybox", "sh", "-c", "hostname; cat /etc/hostname")
    assert out.split() == ["isolated-host", "isolated-host"]
    assert os.uname().nodename != "isolated-host"  # the host's own name did not change


def test_no_host_mount_and_no_host_path_is_visible(daemon: Daemon, tmp_path: Path) -> None:
    secret = tmp_path / "host-only-file"
    secret.write_text("host\n")
    out = run(
        daemon,
        "busybox",
        "sh",
        "-c",
        f"cat /proc/self/mountinfo; echo ===; test -e {secret} && echo VISIBLE; "
        f"test -e {daemon.base} && echo VISIBLE; test -e /work && echo VISIBLE; echo done",
    )
    mountinfo, _, rest = out.partition("===")
    assert "VISIBLE" not in rest and "done" in rest, rest
    points = mount_points(mountinfo)
    assert points[0] == "/"
    allowed = ("/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts")
    strays = [p for p in points[1:] if not p.startswith(allowed)]
    assert not strays, f"host mounts visible in the container: {strays}"
    with open("/proc/self/mountinfo") as f:
        host_points = set(mount_points(f.read()))
    host_only = host_points - {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"}
    host_only = {p for p in host_only if not p.startswith(allowed)}
    assert not host_only & set(points)
    assert " / / " in mountinfo.splitlines()[0]  # its root is its own (overlay or vfs) root


def test_read_only_and_masked_paths(daemon: Daemon) -> None:
    script = (
        "for p in /proc/sys/kernel/domainname /proc/sysrq-trigger /sys/kernel/uevent_helper; do "
        '  if (echo x > "$p") 2>/dev/null; then echo "WROTE $p"; fi; '
        "done; "
        "touch /sys/x 2>/dev/null && echo WROTE /sys; "
        'echo "kcore=$(cat /proc/kcore 2>/dev/null | wc -c)"; '
        'echo "keys=$(cat /proc/keys 2>/dev/null | wc -c)"; '
        'echo "timer_list=$(cat /proc/timer_list 2>/dev/null | wc -c)"; '
        'echo "firmware=$(ls -A /sys/firmware | wc -l)"; '
        'echo "acpi=$(ls -A /proc/acpi | wc -l)"; '
        "grep -E ' /proc/(sys|bus|fs|irq) ' /proc/self/mountinfo"
    )
    out = run(daemon, "busybox", "sh", "-c", script)
    assert "WROTE" not in out, out
    for name in ("kcore", "keys", "timer_list", "firmware", "acpi"):
        assert f"{name}=0" in out, out
    ro_lines = [line for line in out.splitlines() if "/proc/" in line and " - " in line]
    assert len(ro_lines) == 4, out
    assert all(line.split()[5].split(",")[0] == "ro" for line in ro_lines), ro_lines
    # On the host the masked /sys/firmware is not empty, so the mask is what hides it.
    if os.path.isdir("/sys/firmware") and os.listdir("/sys/firmware"):
        assert "firmware=0" in out


def test_read_only_root(daemon: Daemon) -> None:
    script = (
        "touch /x 2>/dev/null && echo WROTE /x; "
        "touch /tmp/x 2>/dev/null && echo WROTE /tmp/x; "
        "echo ok > /dev/shm/x && echo shm-ok; "
        "grep ' / / ' /proc/self/mountinfo"
    )
    out = run(daemon, "--read-only", "busybox", "sh", "-c", script)
    assert "WROTE" not in out, out
    assert "shm-ok" in out  # docker keeps /dev/shm writable
    root = [line for line in out.splitlines() if " / / " in line]
    assert root and root[0].split()[5].split(",")[0] == "ro", out
    # Without the flag the same writes succeed.
    out = run(daemon, "busybox", "sh", "-c", "touch /x && touch /tmp/x && echo wrote")
    assert "wrote" in out


# -- resource limits -----------------------------------------------------------------------------
def test_memory_limit_kills_with_137_and_oom_killed(daemon: Daemon) -> None:
    name = "iso-oom"
    result = daemon.dockyard(
        "run",
        "--name",
        name,
        "-m",
        "20m",
        "busybox",
        "sh",
        "-c",
        'x=a; while true; do x="$x$x"; done',
        check=False,
    )
    try:
        assert result.returncode == 137, result
        assert inspect(daemon, name, "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137"
        assert inspect(daemon, name, "{{.HostConfig.Memory}}") == str(20 << 20)
    finally:
        daemon.dockyard("rm", "-f", name)


def test_pids_limit_holds(daemon: Daemon) -> None:
    # An inner shell forks until it cannot (then it dies of it); PID 1 counts what is left
    # with shell builtins only, as any fork of its own would fail too.
    script = (
        'sh -c "i=0; while [ \\$i -lt 40 ]; do sleep 30 & i=\\$((i+1)); done" 2>/dev/null; '
        'echo "inner=$?"; set -- /proc/[0-9]*; echo "procs=$#"; '
        "for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do "
        '  [ -r $f ] && read m < $f && echo "max=$m"; '
        "done; kill -9 -1 2>/dev/null; true"
    )
    out = run(daemon, "--pids-limit", "10", "busybox", "sh", "-c", script)
    values = dict(re.findall(r"^(\w+)=(\S+)$", out, re.M))
    assert values.get("inner") != "0", out  # the fork loop hit the limit
    assert 2 <= int(values["procs"]) <= 10, out
    assert values.get("max") == "10", out


def test_ulimit(daemon: Daemon) -> None:
    out = run(
        daemon, "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"
    )
    assert out.split() == ["1024", "2048"]


# -- between containers, and against the image ----------------------------------------------------
def test_a_container_cannot_signal_another(daemon: Daemon) -> None:
    name = "iso-victim"
    daemon.dockyard("run", "-d", "--name", name, "busybox", "sleep", "1000")
    try:
        pid = int(inspect(daemon, name, "{{.State.Pid}}"))
        assert pid > 10
        out = run(daemon, "busybox", "sh", "-c", f"kill -9 {pid}; echo rc=$?", check=False)
        assert "rc=0" not in out, out
        assert "No such process" in out or "can't kill" in out, out
        os.kill(pid, 0)  # still alive
        assert inspect(daemon, name, "{{.State.Running}} {{.State.Pid}}") == f"true {pid}"
        # Nor can it see it: its /proc has only its own processes.
        listing = run(daemon, "busybox", "ls", "/proc").split()
        assert str(pid) not in listing
    finally:
        daemon.dockyard("rm", "-f", name)


def test_files_written_in_one_container_are_not_seen_in_another(daemon: Daemon) -> None:
    name = "iso-writer"
    daemon.dockyard(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "echo secret > /etc/only-here; echo x >> /etc/passwd; echo ready; sleep 1000",
    )
    try:
        wait_for_log(daemon, name, "ready")
        pid = int(inspect(daemon, name, "{{.State.Pid}}"))
        assert Path(f"/proc/{pid}/root/etc/only-here").read_text() == "secret\n"
        out = run(
            daemon,
            "busybox",
            "sh",
            "-c",
            "test -e /etc/only-here && echo SEEN; tail -1 /etc/passwd",
        )
        assert "SEEN" not in out
        assert out.strip().endswith("/bin/false"), out  # busybox's last passwd line, unchanged
    finally:
        daemon.dockyard("rm", "-f", name)


def wait_for_log(daemon: Daemon, name: str, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in daemon.dockyard("logs", name).stdout.decode():
        assert time.monotonic() < deadline, f"{name} never printed {text!r}"
        time.sleep(0.05)


def _saved_layers(daemon: Daemon, image: str) -> tuple[list[str], dict[str, str]]:
    """The layer paths of `save`'s manifest and the sha256 of every blob in the archive."""
    import hashlib

    data = daemon.dockyard("save", image).stdout
    digests = {}
    manifest = None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if not member.isfile():
                continue
            content = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                manifest = json.loads(content)
            digests[member.name] = hashlib.sha256(content).hexdigest()
    assert manifest is not None
    return manifest[0]["Layers"], digests


def test_image_is_unchanged_by_a_container_writing_over_its_files(daemon: Daemon) -> None:
    before = inspect(daemon, "busybox", "{{.Id}} {{.Size}} {{json .RootFS.Layers}}")
    layers_before, blobs_before = _saved_layers(daemon, "busybox")
    original = run(daemon, "busybox", "cat", "/etc/passwd")
    name = "iso-vandal"
    daemon.dockyard(
        "run",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "echo evil >> /etc/passwd; rm /etc/group; rm -rf /usr; echo new > /bin/new-file; "
        "chmod 777 /root; echo ok",
    )
    try:
        out = run(
            daemon,
            "busybox",
            "sh",
            "-c",
            "cat /etc/passwd; test -e /etc/group && echo group-ok; test -d /usr && echo usr-ok; "
            "test -e /bin/new-file && echo NEW; stat -c %a /root",
        )
        assert out.startswith(original), out
        assert "evil" not in out and "NEW" not in out
        assert "group-ok" in out and "usr-ok" in out and out.strip().endswith("700")
        assert inspect(daemon, "busybox", "{{.Id}} {{.Size}} {{json .RootFS.Layers}}") == before
        layers_after, blobs_after = _saved_layers(daemon, "busybox")
        assert layers_after == layers_before
        assert {k: blobs_after[k] for k in layers_after} == {
            k: blobs_before[k] for k in layers_before
        }
    finally:
        daemon.dockyard("rm", "-f", name)


# -- privileges ------------------------------------------------------------------------------------
def test_default_capabilities_are_dockers(daemon: Daemon) -> None:
    caps = status_caps(run(daemon, "busybox", "grep", "^Cap", "/proc/self/status"))
    assert caps["CapEff"] == DEFAULT_CAPS, hex(caps["CapEff"])
    assert caps["CapPrm"] == DEFAULT_CAPS
    assert caps["CapBnd"] == DEFAULT_CAPS
    assert caps["CapInh"] == 0 and caps["CapAmb"] == 0


def test_cap_drop_all_and_cap_add(daemon: Daemon) -> None:
    caps = status_caps(
        run(daemon, "--cap-drop", "ALL", "busybox", "grep", "^Cap", "/proc/self/status")
    )
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == 0
    # Without CAP_CHOWN even root cannot give a file away.
    out = run(
        daemon, "--cap-drop", "ALL", "busybox", "sh", "-c", "touch /f; chown 1:1 /f; echo rc=$?"
    )
    assert "rc=1" in out, out
    caps = status_caps(
        run(daemon, "--cap-add", "NET_ADMIN", "busybox", "grep", "^Cap", "/proc/self/status")
    )
    assert caps["CapEff"] == DEFAULT_CAPS | (1 << CAP_NET_ADMIN)
    # NET_ADMIN is what lets it change its own interfaces.
    assert "rc=0" not in run(daemon, "busybox", "sh", "-c", "ip link set lo down; echo rc=$?")
    out = run(
        daemon, "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", "ip link set lo down; echo rc=$?"
    )
    assert "rc=0" in out, out


def test_privileged_gets_every_capability_and_writable_proc_sys(daemon: Daemon) -> None:
    with open("/proc/self/status") as f:
        host = status_caps(f.read())
    out = run(
        daemon,
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "grep ^Cap /proc/self/status; grep ' /sys ' /proc/self/mountinfo",
    )
    caps = status_caps(out)
    assert caps["CapEff"] == caps["CapBnd"] == host["CapBnd"], out
    sys_line = [line for line in out.splitlines() if " /sys " in line]
    assert sys_line and sys_line[0].split()[5].split(",")[0] == "rw", out


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("nobody", "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"),
        ("1000:1000", "uid=1000 gid=1000 groups=1000"),
    ],
)
def test_user(daemon: Daemon, user: str, expected: str) -> None:
    out = run(
        daemon,
        "-u",
        user,
        "busybox",
        "sh",
        "-c",
        "id; grep ^Cap /proc/self/status; touch /etc/x 2>/dev/null && echo WROTE; true",
    )
    assert out.splitlines()[0] == expected
    caps = status_caps(out)
    assert caps["CapEff"] == 0 and caps["CapPrm"] == 0  # a non-root user keeps none
    assert caps["CapBnd"] == DEFAULT_CAPS
    assert "WROTE" not in out


def test_network_none_has_only_lo_and_it_is_up(daemon: Daemon) -> None:
    out = run(
        daemon,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ip -o link; echo ===; ls /sys/class/net",
    )
    links, _, names = out.partition("===")
    rows = [line for line in links.splitlines() if line.strip()]
    assert len(rows) == 1, out
    assert re.match(r"1: lo: <[^>]*\bUP\b[^>]*>", rows[0]), rows[0]
    assert names.split() == ["lo"]
