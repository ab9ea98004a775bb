"""Driving an OCI runtime binary (runtime/oci_binary.py) against a fake runtime: the command lines
a shim gives it, its stdio, and how its log becomes an error (with docker's exit codes); and the
daemon's table of runtimes (engine/runtimes.py). No root needed."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.engine.runtimes import DEFAULT_RUNTIME, Runtimes
from dockyard.errors import InvalidParameter
from dockyard.runtime import oci_binary
from dockyard.runtime.process import ContainerError

# Records its argv, writes the pid file it is given, and fails the way it is told to in $FAIL.
FAKE = """#!/bin/sh
printf '%s\\n' "$@" >> "$(dirname "$0")/calls"
log=""; pid_file=""; prev=""
for a in "$@"; do
  case "$prev" in --log) log="$a";; --pid-file) pid_file="$a";; esac
  prev="$a"
done
echo "to the container's stdout"
if [ -n "$FAIL" ]; then
  printf '{"level":"warning","msg":"ignored"}\\n{"level":"error","msg":"%s"}\\n' "$FAIL" >> "$log"
  exit 1
fi
[ -n "$pid_file" ] && echo 4242 > "$pid_file"
exit 0
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "runc"
    path.parent.mkdir()
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def binary(fake: Path, tmp_path: Path) -> oci_binary.Binary:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return oci_binary.Binary(str(fake), "runc", str(tmp_path / "state"), "c1", str(work))


def calls(fake: Path) -> list[str]:
    return (fake.parent / "calls").read_text().splitlines()


def test_create_start_delete_command_lines(fake: Path, tmp_path: Path) -> None:
    rt = binary(fake, tmp_path)
    r, w = os.pipe()
    try:
        pid, console = rt.create(str(tmp_path / "bundle"), (0, w, w))
        os.close(w)
        with os.fdopen(r, "rb") as output:  # the runtime's stdio is the container's
            assert output.read() == b"to the container's stdout\n"
    finally:
        with contextlib.suppress(OSError):
            os.close(w)
    assert (pid, console) == (4242, None)
    rt.start()
    rt.pause()
    rt.resume()
    rt.kill(15, all=True)
    rt.delete(force=True)
    head = ["--root", str(tmp_path / "state"), "--log", rt.log, "--log-format", "json"]
    got = calls(fake)
    pid_file = str(tmp_path / "work" / "init.pid")
    create = [*head, "create", "--bundle", str(tmp_path / "bundle"), "--pid-file", pid_file, "c1"]
    expected = [
        *create,
        *[*head, "start", "c1"],
        *[*head, "pause", "c1"],
        *[*head, "resume", "c1"],
        *[*head, "kill", "--all", "c1", "15"],
        *[*head, "delete", "--force", "c1"],
    ]
    assert got == expected
    assert not os.path.exists(rt.log)  # removed with the container


def test_exec_writes_the_process_and_removes_it(fake: Path, tmp_path: Path) -> None:
    rt = binary(fake, tmp_path)
    proc = {"args": ["sh"], "cwd": "/", "env": ["A=1"], "user": {"uid": 0, "gid": 0}}
    assert rt.exec(proc, None, False) == (4242, None)
    args = calls(fake)
    spec = args[args.index("--process") + 1]
    assert args[args.index("exec") :] == [
        *("exec", "--detach", "--pid-file", str(tmp_path / "work" / "exec-1.pid")),
        *("--process", spec, "c1"),
    ]
    assert not os.path.exists(spec)  # gone once the process runs


@pytest.mark.parametrize(
    ("message", "code", "shown"),
    [
        (
            'runc create failed: unable to start container process: exec: \\"nosuch\\": '
            "executable file not found in $PATH",
            127,
            'runc create failed: unable to start container process: exec: "nosuch": '
            "executable file not found in $PATH",
        ),
        (  # crun's C strerror becomes Go's, which docker's exit-code rules look for
            "executable file `nosuch` not found in $PATH: No such file or directory",
            127,
            "executable file `nosuch` not found in $PATH: no such file or directory",
        ),
        ("open executable: Permission denied", 126, "open executable: permission denied"),
        ("cgroups: something else", 125, "cgroups: something else"),
    ],
)
def test_errors_come_from_the_runtime_log(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str, code: int, shown: str
) -> None:
    monkeypatch.setenv("FAIL", message)
    rt = binary(fake, tmp_path)
    with pytest.raises(ContainerError) as failed:
        rt.create(str(tmp_path / "bundle"), None)
    assert (failed.value.message, failed.value.exit_code) == (shown, code)


def test_exec_errors_are_126_unless_not_found(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = binary(fake, tmp_path)
    monkeypatch.setenv("FAIL", "exec failed: unable to start container process: boom")
    with pytest.raises(ContainerError) as failed:
        rt.exec({"args": ["x"]}, None, False)
    assert (failed.value.message, failed.value.exit_code) == ("boom", 126)


def test_a_runtime_that_says_nothing(tmp_path: Path) -> None:
    silent = tmp_path / "crun"
    silent.write_text("#!/bin/sh\nexit 3\n")
    silent.chmod(0o755)
    rt = oci_binary.Binary(str(silent), "crun", str(tmp_path / "s"), "c1", str(tmp_path))
    with pytest.raises(ContainerError, match=r"^crun exited with status 3$"):
        rt.start()


def test_runtimes_table(monkeypatch: pytest.MonkeyPatch, fake: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setattr(oci_binary, "find", lambda name: str(fake) if name == "runc" else None)
    runtimes = Runtimes(str(tmp_path / "exec"))
    info = runtimes.info()
    assert info["DefaultRuntime"] == DEFAULT_RUNTIME == "dockyard"
    assert sorted(info["Runtimes"]) == ["dockyard", "runc"]
    assert info["Runtimes"]["runc"] == {"path": str(fake)}
    assert runtimes.resolve("") == runtimes.resolve(None) == "dockyard"
    assert runtimes.resolve("runc") == "runc"
    with pytest.raises(InvalidParameter, match=r"^unknown or invalid runtime name: crun$") as bad:
        runtimes.resolve("crun")
    assert bad.value.status == 400
    assert runtimes.request("dockyard") is None
    assert runtimes.request("runc") == {
        "name": "runc",
        "path": str(fake),
        "root": str(tmp_path / "exec" / "runtime-runc"),
    }
    assert json.dumps(info)  # as /info sends it
