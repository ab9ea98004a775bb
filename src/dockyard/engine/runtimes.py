"""The OCI runtimes a container can run under (`--runtime`), as dockerd knows its runtimes.

`dockyard` (the default) is our own runtime, run inside the shim (runtime/linux.py; its command
line is `dockyard-runtime`); `runc` and `crun` are known when their binaries are installed, and a
shim drives them (runtime/oci_binary.py) with their state under `<exec-root>/runtime-<name>`.
The set is found once, when the daemon starts, as dockerd reads its configuration.

For the daemon, a running container's runtime is a handle with pause()/resume() (asked of the
container's shim, which runs the runtime) and pids()/stats()/cgroup (read from the container's
cgroup by our own code, whoever made it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from typing import Any

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.runtime import oci_binary
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.shim_runtime import DEFAULT

DEFAULT_RUNTIME = DEFAULT


def _own_cli() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    return beside if os.path.exists(beside) else shutil.which("dockyard-runtime") or beside


class Runtimes:
    def __init__(self, exec_root: str) -> None:
        self.exec_root = exec_root
        self.paths: dict[str, str] = {DEFAULT_RUNTIME: _own_cli()}
        for name in oci_binary.EXTERNAL:
            path = oci_binary.find(name)
            if path:
                self.paths[name] = path

    def info(self) -> dict[str, Any]:
        """`Runtimes` and `DefaultRuntime` of GET /info."""
        return {
            "Runtimes": {name: {"path": path} for name, path in sorted(self.paths.items())},
            "DefaultRuntime": DEFAULT_RUNTIME,
        }

    def resolve(self, name: str | None) -> str:
        """The runtime a container gets: moby's error for one it does not know."""
        name = name or DEFAULT_RUNTIME
        if name not in self.paths:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return name

    def state_root(self, name: str, own_root: str) -> str:
        if name == DEFAULT_RUNTIME:
            return own_root
        return os.path.join(self.exec_root, f"runtime-{name}")

    def request(self, name: str) -> dict[str, Any] | None:
        """What a shim needs to drive an external runtime (None: our own)."""
        if name == DEFAULT_RUNTIME:
            return None
        if name not in self.paths:  # it was installed when the container was created
            raise DockyardError(f"unknown or invalid runtime name: {name}")
        return {"name": name, "path": self.paths[name], "root": self.state_root(name, "")}

    def force_delete(self, name: str, container_id: str) -> None:
        """What an external runtime still holds of a container whose shim died without
        deleting it (state, cgroups, processes). Its own runtime's leftovers die with the shim."""
        if name == DEFAULT_RUNTIME or name not in self.paths:
            return
        root = self.state_root(name, "")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, f"{container_id}.log"))  # see oci_binary.Binary
        if not os.path.exists(os.path.join(root, container_id)):
            return
        import subprocess

        # `delete` needs no v1-only view of the cgroups: crun refuses hybrid mode at create only.
        subprocess.run(
            [self.paths[name], "--root", root, "delete", "--force", container_id],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=30,
        )


class ShimHandle:
    """A container under an external runtime, as the daemon sees it."""

    def __init__(self, shims: Any, container_id: str, cgroups_path: str) -> None:
        self.shims = shims
        self.id = container_id
        self.cgroup = Cgroup.for_path(cgroups_path)

    def _ask(self, op: str) -> None:
        from .shims import read_frame

        with self.shims.connect(self.id, {"op": op}) as sock:
            got = read_frame(sock)
        if got is None:
            raise DockyardError(f"container {self.id}: its shim went away")
        reply = json.loads(got[1] or b"{}")
        if reply.get("error"):
            raise DockyardError(str(reply["error"]))

    def pause(self) -> None:
        self._ask("pause")

    def resume(self) -> None:
        self._ask("resume")

    def pids(self) -> list[int]:
        return self.cgroup.pids()

    def stats(self) -> dict[str, Any]:
        return self.cgroup.stats()
