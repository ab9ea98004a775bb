"""exec: run a command in a running container (docker cli/command/container/exec.go).

The docker CLI's order: check the container exists (so "No such container" wins), check the
terminal, create the exec instance, then either start it detached or start it on a hijacked
connection and stream it; the exit code comes from the exec's inspect afterwards (the process's
own code, or 126/127 when it could not be run)."""

from __future__ import annotations

import json
import os
import sys

from dockyard.cli.client import APIError
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import validate_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ESCAPE = b"\x10\x11"  # ctrl-p, ctrl-q
CHUNK = 65536
_CTRL = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


def detach_keys(keys: str) -> bytes:
    """moby/term ToBytes: "ctrl-p,ctrl-q" → b"\\x10\\x11"; ValueError for an unknown key."""
    out = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            out += key.encode()[:1]
        elif len(key) == 6 and key.startswith("ctrl-") and key[5] in _CTRL:
            out.append(_CTRL.index(key[5]))
        elif key == "DEL":
            out.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


def _env(opts: dict[str, Any]) -> list[str]:
    """docker's ReadKVEnvStrings: the --env-file lines, then the -e values."""
    env: list[str] = []
    for path in opts["env-file"]:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise CLIError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
        from dockyard.errors import InvalidParameter
        from dockyard.flagvalues import parse_env_file

        try:
            env += parse_env_file(data, os.environ.get, filename=path)
        except InvalidParameter as exc:
            raise CLIError(exc.message) from None
    return env + list(opts["env"])


def _terminal_size() -> tuple[int, int]:
    from dockyard.cli.stream import terminal_size

    return terminal_size(1)


def run_exec(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    container, command = args[0], args[1:]
    detach, tty, interactive = opts["detach"], opts["tty"], opts["interactive"]
    env = _env(opts)
    keys = opts["detach-keys"]
    if keys:
        try:
            detach_keys(keys)
        except ValueError as exc:
            raise CLIError(f"invalid detach keys ({keys}): {exc}") from None
    client = ctx.client
    client.request("GET", f"/containers/{container}/json").read()
    if not detach and tty and interactive and not os.isatty(0):
        raise CLIError("the input device is not a TTY")
    size = list(_terminal_size()) if tty else None
    body: dict[str, Any] = {
        "User": opts["user"],
        "Privileged": opts["privileged"],
        "Tty": tty,
        "AttachStdin": interactive and not detach,
        "AttachStderr": not detach,
        "AttachStdout": not detach,
        "Detach": detach,
        "DetachKeys": keys,
        "Env": env,
        "WorkingDir": opts["workdir"],
        "Cmd": command,
    }
    if size is not None:
        body["ConsoleSize"] = size
    created = client.request(
        "POST",
        f"/containers/{container}/exec",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    ).json()
    exec_id = created.get("Id") or ""
    if not exec_id:
        raise CLIError("exec ID empty")
    start = {"Detach": detach, "Tty": tty}
    if size is not None:
        start["ConsoleSize"] = size
    if detach:
        client.request(
            "POST",
            f"/exec/{exec_id}/start",
            body=json.dumps(start).encode(),
            headers={"Content-Type": "application/json"},
        ).read()
        return 0
    sys.stdout.flush()
    sock, leftover = client.hijack(
        "POST", f"/exec/{exec_id}/start", body=json.dumps(start).encode()
    )
    escape = (detach_keys(keys) if keys else DEFAULT_ESCAPE) if tty and interactive else b""
    raw = tty and interactive and os.isatty(0)
    if tty and os.isatty(0):
        _monitor_size(ctx, exec_id)
    from dockyard.cli.stream import RawTerminal

    try:
        if raw:
            with RawTerminal(0):
                detached = pump(sock, leftover, tty=tty, stdin=interactive, escape=escape)
        else:
            detached = pump(sock, leftover, tty=tty, stdin=interactive, escape=escape)
    finally:
        sock.close()
    if detached:
        raise CLIError("read escape sequence")
    status = client.get_json(f"/exec/{exec_id}/json").get("ExitCode") or 0
    return int(status)


def _resize(ctx: Context, exec_id: str) -> bool:
    height, width = _terminal_size()
    if not (height or width):
        return True
    try:
        ctx.client.request("POST", f"/exec/{exec_id}/resize", {"h": height, "w": width}).read()
    except (APIError, OSError):
        return False
    return True


def _monitor_size(ctx: Context, exec_id: str) -> None:
    """docker's MonitorTtySize: resize now (retrying a while: the process may not have started
    yet), and on every SIGWINCH."""
    import signal
    import threading
    import time

    def initial() -> None:
        for attempt in range(10):
            time.sleep((attempt + 1) * 0.01)
            if _resize(ctx, exec_id):
                return
        sys.stderr.write("failed to resize tty, using default size\n")

    if not _resize(ctx, exec_id):
        threading.Thread(target=initial, daemon=True).start()

    def on_winch(*_: object) -> None:
        threading.Thread(target=_resize, args=(ctx, exec_id), daemon=True).start()

    signal.signal(signal.SIGWINCH, on_winch)


class _Escape:
    """moby/term's escapeProxy: stdin bytes pass through, except the detach sequence; a
    partial match is held back until it completes (detach) or fails (sent after all)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.pos = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.pos]:
                self.pos += 1
                if self.pos == len(self.keys):
                    return bytes(out), True
                continue
            out += self.keys[: self.pos]
            self.pos = 0
            out.append(byte)
        return bytes(out), False


def pump(sock: Any, leftover: bytes, *, tty: bool, stdin: bool, escape: bytes = b"") -> bool:
    """Copy the stream until the daemon ends it: output (frames, or raw with a TTY) to our
    stdout/stderr; with `stdin` our stdin to the connection, half-closed at its end (without,
    half-closed now, as docker does). True when the user typed the detach keys."""
    import _socket
    import select

    from dockyard.cli.stream import _write_all

    proxy = _Escape(escape) if escape else None
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    if stdin:
        poller.register(0, select.POLLIN)
    else:
        try:
            sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
    pending = b""

    def output(data: bytes) -> None:
        nonlocal pending
        if tty:
            _write_all(1, data)
            return
        pending += data
        while len(pending) >= 8:
            size = int.from_bytes(pending[4:8], "big")
            if len(pending) < 8 + size:
                break
            stream, payload = pending[0], pending[8 : 8 + size]
            pending = pending[8 + size :]
            _write_all(2 if stream == 2 else 1, payload)

    if leftover:
        output(leftover)
    while True:
        for fd, _events in poller.poll():
            if fd == sock.fileno():
                try:
                    data = sock.recv(CHUNK)
                except OSError:
                    data = b""
                if not data:
                    return False
                output(data)
                continue
            try:
                data = os.read(0, CHUNK)
            except OSError:
                data = b""
            if not data:  # our stdin ended: so does the process's
                poller.unregister(0)
                try:
                    sock.shutdown(_socket.SHUT_WR)
                except OSError:
                    pass
                continue
            detached = False
            if proxy is not None:
                data, detached = proxy.feed(data)
            if data:
                try:
                    sock.sendall(data)
                except OSError:
                    return False
            if detached:
                return True


EXEC = Command(
    run_exec,
    "[OPTIONS] CONTAINER COMMAND [ARG...]",
    "Execute a command in a running container",
    [
        Flag("detach", "d", help="Detached mode: run command in the background"),
        Flag(
            "detach-keys", kind="string", help="Override the key sequence for detaching a container"
        ),
        Flag("env", "e", "list", help="Set environment variables", convert=validate_env),
        Flag("env-file", kind="list", help="Read in a file of environment variables"),
        Flag("interactive", "i", help="Keep STDIN open even if not attached"),
        Flag("privileged", help="Give extended privileges to the command"),
        Flag("tty", "t", help="Allocate a pseudo-TTY"),
        Flag("user", "u", "string", help='Username or UID (format: "<name|uid>[:<group|gid>]")'),
        Flag("workdir", "w", "string", help="Working directory inside the container"),
    ],
    min_args=2,
    interspersed=False,
)
