"""What a shim runs its container with: our in-process runtime (the default, `dockyard`) or an
installed OCI runtime binary (runc, crun). Both offer the shim the same verbs:

    create(stdio, tty) -> (init pid, pty master or None)   the init waits for start
    start()                                                the init runs the user's program
    abort()                                                undo a create that will not start
    exec(process, stdio, tty) -> (pid, pty master or None)
    pause(), resume()
    oom_killed() -> bool                                   after the init was reaped, from
                                                           the container's cgroup
    delete()                                               remove what is left of it

The processes either creates (init, exec'd processes) end up as the shim's children (it is a
child subreaper), so the shim reaps them whatever the runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from typing import Any, Protocol

from . import linux, process, syscalls
from .cgroups import Cgroup

DEFAULT = "dockyard"

Stdio = tuple[int, int, int] | None


class Driver(Protocol):
    def create(self, stdio: Stdio, tty: bool) -> tuple[int, int | None]: ...
    def start(self) -> None: ...
    def abort(self) -> None: ...
    def exec(self, proc: dict[str, Any], stdio: Stdio, tty: bool) -> tuple[int, int | None]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def oom_killed(self) -> bool: ...
    def delete(self) -> None: ...


def driver_for(request: dict[str, Any]) -> Driver:
    runtime = request.get("runtime") or {}
    if runtime.get("name", DEFAULT) == DEFAULT:
        return InProcess(request)
    return External(request, runtime)


class Helper:
    """A short-lived child that runs the runtime's code for the shim (create and start, exec).

    The shim lives as long as its container, and memory it writes after the fork stops being
    shared with the zygote: the runtime's code paths alone cost an idle shim ~2.5 MB of private
    pages (measured; see the containers issue's note). So that code runs here instead. The shim
    is a child subreaper: the processes this child creates are adopted by the shim when it exits.
    """

    def __init__(self) -> None:
        self.ours, theirs = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        )
        self.pid = os.fork()
        if self.pid == 0:
            self.ours.close()
            self.ours = theirs
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)  # the shim gone: us too
        else:
            theirs.close()

    @property
    def child(self) -> bool:
        return self.pid == 0

    def send(self, message: dict[str, Any], fd: int | None = None) -> None:
        data = json.dumps(message).encode()
        if fd is None:
            self.ours.send(data)
        else:
            process.send_fd(self.ours, fd, data)

    def receive(self) -> tuple[dict[str, Any], int | None]:
        data, fd = process.recv_message(self.ours)
        if not data:
            raise linux.ContainerError("the runtime's helper process died")
        return json.loads(data), fd

    def fail(self, exc: BaseException) -> None:
        """In the child: report an error."""
        self.send({"error": str(exc), "exit_code": getattr(exc, "exit_code", None) or 125})

    def finish(self) -> None:
        """In the shim: collect the child."""
        self.ours.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _raise_if_error(reply: dict[str, Any], default_code: int | None = None) -> None:
    if "error" in reply:
        raise linux.ContainerError(reply["error"], reply.get("exit_code") or default_code)


class InProcess:
    """Our runtime (runtime/linux.py), its code run in helpers."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.req = request
        self.id: str = request["id"]
        self.state_root: str = request["state_root"]
        self.helper: Helper | None = None

    def create(self, stdio: Stdio, tty: bool) -> tuple[int, int | None]:
        self.helper = helper = Helper()
        if helper.child:
            self._create_in_helper(helper, stdio, tty)
        created, console = helper.receive()
        _raise_if_error(created)
        return int(created["pid"]), console

    def _create_in_helper(self, helper: Helper, stdio: Stdio, tty: bool) -> None:
        """In the helper: create the container, hand back its pid (and pty), start it when
        told to, then leave (the init becomes the shim's child)."""
        code = 0
        container = None
        try:
            container = linux.create(
                self.req["bundle"],
                self.id,
                self.state_root,
                stdio=stdio,
                terminal=tty,
                cgroup_parent=self.req.get("cgroup_parent", "/dockyard"),
                die_with_creator=True,
            )
            helper.send({"pid": container.pid}, container.console)
            message, _ = helper.receive()
            if message.get("op") == "start":
                container.start()
                helper.send({"started": True})
        except BaseException as exc:
            with contextlib.suppress(Exception):
                helper.fail(exc)
            if container is not None:
                with contextlib.suppress(Exception):
                    container.delete(force=True)
            code = 1
        finally:
            os._exit(code)

    def start(self) -> None:
        assert self.helper is not None
        self.helper.send({"op": "start"})
        started, _ = self.helper.receive()
        _raise_if_error(started)
        self.helper.finish()
        self.helper = None

    def abort(self) -> None:
        if self.helper is not None:
            self.helper.finish()  # its death (or its own cleanup) takes the init with it
            self.helper = None
        with contextlib.suppress(Exception):
            linux.load(self.id, self.state_root).delete(force=True)

    def exec(self, proc: dict[str, Any], stdio: Stdio, tty: bool) -> tuple[int, int | None]:
        """Run exec_process in a helper; the process becomes ours when the helper leaves."""
        helper = Helper()
        if helper.child:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                container = linux.load(self.id, self.state_root)
                started = linux.exec_process(container, proc, stdio=stdio, terminal=tty)
                helper.send({"pid": started.pid}, started.console)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    helper.fail(exc)
                code = 1
            finally:
                os._exit(code)
        try:
            reply, console = helper.receive()
        finally:
            helper.finish()
        _raise_if_error(reply, 126)
        return int(reply["pid"]), console

    def pause(self) -> None:
        linux.load(self.id, self.state_root).pause()

    def resume(self) -> None:
        linux.load(self.id, self.state_root).resume()

    def oom_killed(self) -> bool:
        try:
            return linux.load(self.id, self.state_root).oom_killed()
        except Exception:
            return False

    def delete(self) -> None:
        linux.load(self.id, self.state_root).delete(force=True)


class External:
    """An installed runtime binary (runtime/oci_binary.py), with the bundle's cgroup read by
    our own cgroup code for the OOM count."""

    def __init__(self, request: dict[str, Any], runtime: dict[str, Any]) -> None:
        from .oci_binary import Binary

        self.req = request
        self.binary = Binary(
            runtime["path"], runtime["name"], runtime["root"], request["id"], request["dir"]
        )
        self.cgroup = Cgroup.for_path(_cgroups_path(request))

    def create(self, stdio: Stdio, tty: bool) -> tuple[int, int | None]:
        return self.binary.create(self.req["bundle"], None if tty else stdio)

    def start(self) -> None:
        self.binary.start()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.binary.delete(force=True)

    def exec(self, proc: dict[str, Any], stdio: Stdio, tty: bool) -> tuple[int, int | None]:
        return self.binary.exec(proc, stdio, tty)

    def pause(self) -> None:
        self.binary.pause()

    def resume(self) -> None:
        self.binary.resume()

    def oom_killed(self) -> bool:
        try:
            return self.cgroup.exists() and self.cgroup.oom_kill_count() > 0
        except (OSError, ValueError):
            return False

    def delete(self) -> None:
        self.binary.delete(force=True)


def _cgroups_path(request: dict[str, Any]) -> str:
    try:
        with open(os.path.join(request["bundle"], "config.json")) as f:
            path = (json.load(f).get("linux") or {}).get("cgroupsPath")
    except (OSError, ValueError):
        path = None
    return str(path or f"/dockyard/{request['id']}")
