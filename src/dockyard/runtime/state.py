"""A container's state on disk, its live status, and OCI hooks.

<state_root>/<id>/
  state.json    the runtime-spec `state` (ociVersion, id, status, pid, bundle, annotations) as
                of the last transition (`status()` recomputes it from the kernel), and under
                "dockyard" what later operations by another process (the CLI, a restarted
                daemon) need: the init's start time (so a recycled PID is never mistaken for
                it), the cgroup path, hooks, the seccomp profile and process for exec
  exec.fifo     present from create until start: the init blocks opening it for writing

Status as runc derives it: the init is gone (or a zombie, or a different process with its PID)
-> "stopped"; exec.fifo still there -> "created"; the freezer says frozen -> "paused"; else
"running".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

OCI_VERSION = "1.2.0"  # the runtime-spec version whose state and lifecycle we implement
STATE_FILE = "state.json"
FIFO = "exec.fifo"
_ID = re.compile(r"^[\w+.-]+$")


def valid_id(container_id: str) -> bool:
    return bool(container_id) and bool(_ID.match(container_id)) and container_id not in (".", "..")


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks); None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@dataclass
class Record:
    """Everything persisted about one container (state.json's "dockyard" object)."""

    id: str
    bundle: str
    pid: int
    pid_start: int | None
    created: str
    cgroup_path: str
    cgroup_created_top: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seccomp: dict[str, Any] | None = None
    rootfs: str = ""
    process: dict[str, Any] = field(default_factory=dict)  # the defaults for `exec`
    status: str = "created"
    oom_kills: int = 0
    exit_status: int | None = None


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, path)


def save(state_dir: str, record: Record, status: str) -> None:
    """One file: the OCI state, plus our own record under "dockyard" (the spec allows
    additional properties), written to a new file and renamed over the old one."""
    record.status = status
    data = oci_state(record, status)
    data["dockyard"] = dict(vars(record))  # shallow: asdict() deep-copies, 5x slower
    write_json(os.path.join(state_dir, STATE_FILE), data)


def load(state_dir: str) -> Record:
    with open(os.path.join(state_dir, STATE_FILE)) as f:
        return Record(**json.load(f)["dockyard"])


def oci_state(record: Record, status: str) -> dict[str, Any]:
    state: dict[str, Any] = {"ociVersion": OCI_VERSION, "id": record.id, "status": status}
    if status in ("created", "running", "paused", "creating"):
        state["pid"] = record.pid
    state["bundle"] = record.bundle
    state["annotations"] = dict(record.annotations)
    return state


def alive(record: Record) -> bool:
    return record.pid > 0 and proc_start_time(record.pid) == record.pid_start


class HookError(Exception):
    pass


def run_hooks(
    kind: str, hooks: list[dict[str, Any]] | None, state: dict[str, Any], *, warn_only: bool = False
) -> list[str]:
    """Run one hook list in order, the container state as JSON on stdin.

    A failing hook raises HookError (or is returned as a warning for poststop, whose failures
    the spec says must not stop the lifecycle).
    """
    warnings = []
    payload = json.dumps(state).encode()
    for hook in hooks or ():
        path = hook.get("path", "")
        args = hook.get("args") or [path]
        env = dict(kv.split("=", 1) for kv in hook.get("env") or () if "=" in kv)
        try:
            result = subprocess.run(
                args,
                executable=path,
                input=payload,
                env=env,
                capture_output=True,
                timeout=hook.get("timeout"),
                close_fds=True,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            message = f"{kind} hook {path}: {e}"
        else:
            if result.returncode == 0:
                continue
            detail = result.stderr.decode(errors="replace").strip()
            message = f"{kind} hook {path} exited {result.returncode}: {detail}"
        if not warn_only:
            raise HookError(message)
        warnings.append(message)
    return warnings


def remove_dir(state_dir: str) -> None:
    for name in (STATE_FILE, FIFO, f"{STATE_FILE}.tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state_dir, name))
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(state_dir)
