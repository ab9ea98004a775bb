"""run, create, start and attach: making containers and wiring their stdio to ours.

`run` follows the docker CLI's order, which the daemon relies on: create (pulling on 404),
attach on its own connection, wait (its headers come back at once), start, stream, then the
wait's status code becomes our exit code."""

from __future__ import annotations

import os
import sys

from dockyard.cli import wirejson
from dockyard.cli.client import APIError
from dockyard.cli.command import BIN, CLIError, Command, Context
from dockyard.cli.flags import Flag

from .createflags import FLAGS, create_body

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _run_error(ctx: Context, message: str, path: str) -> CLIError:
    """docker's toStatusError: 127 for not found, 126 for permission denied, else 125."""
    if "executable file not found" in message or "no such file or directory" in message:
        code = 127
    elif "permission denied" in message or "cannot execute" in message:
        code = 126
    else:
        code = 125
    return CLIError(
        f"{BIN}: Error response from daemon: {message}\n\nRun '{path} --help' for more information",
        code,
    )


def create_container(
    ctx: Context, opts: dict[str, Any], image: str, command: list[str]
) -> dict[str, Any]:
    body = wirejson.dumps(create_body(opts, image, command)).encode()
    query = {"name": opts["name"] or None}
    try:
        response = ctx.client.request(
            "POST",
            "/containers/create",
            query,
            body=body,
            headers={"Content-Type": "application/json"},
        )
    except APIError as exc:
        if exc.status != 404 or "No such image" not in exc.message:
            raise _run_error(ctx, exc.message, ctx.path) from None
        from dockyard import reference

        try:
            familiar = reference.parse_normalized(image).with_default_tag().familiar()
        except reference.InvalidReference:
            familiar = image
        ctx.err.write(f"Unable to find image '{familiar}' locally\n")
        try:
            ctx.client.request("POST", "/images/create", {"fromImage": image}).read()
        except APIError as pull:
            raise _run_error(ctx, pull.message, ctx.path) from None
        try:
            response = ctx.client.request(
                "POST",
                "/containers/create",
                query,
                body=body,
                headers={"Content-Type": "application/json"},
            )
        except APIError as again:
            raise _run_error(ctx, again.message, ctx.path) from None
    created = response.json()
    for warning in created.get("Warnings") or []:
        ctx.err.write(f"WARNING: {warning}\n")
    if opts["cidfile"]:
        with open(opts["cidfile"], "x") as f:
            f.write(created["Id"])
    return created


def _resize(ctx: Context, container_id: str) -> None:
    from dockyard.cli.stream import terminal_size

    height, width = terminal_size(1)
    if height and width:
        try:
            ctx.client.request(
                "POST", f"/containers/{container_id}/resize", {"h": height, "w": width}
            ).read()
        except APIError:
            pass


def run_run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    image, command = args[0], args[1:]
    created = create_container(ctx, opts, image, command)
    container_id = created["Id"]
    if opts["detach"]:
        try:
            ctx.client.request("POST", f"/containers/{container_id}/start").read()
        except APIError as exc:
            raise _run_error(ctx, exc.message, ctx.path) from None
        ctx.print(container_id)
        return 0
    tty, interactive = opts["tty"], opts["interactive"]
    if tty and interactive and not os.isatty(0):
        raise CLIError("the input device is not a TTY", 1)
    attach = [a.lower() for a in opts["attach"]] or (
        ["stdin", "stdout", "stderr"] if interactive else ["stdout", "stderr"]
    )
    query = {
        "stream": 1,
        "stdin": 1 if "stdin" in attach else None,
        "stdout": 1 if "stdout" in attach else None,
        "stderr": 1 if "stderr" in attach else None,
    }
    sock, leftover = ctx.client.hijack("POST", f"/containers/{container_id}/attach", query)
    condition = "removed" if opts["rm"] else "next-exit"
    waiter = ctx.client.request(
        "POST", f"/containers/{container_id}/wait", {"condition": condition}
    )
    try:
        ctx.client.request("POST", f"/containers/{container_id}/start").read()
    except APIError as exc:
        sock.close()
        if opts["rm"]:
            waiter.read()  # the daemon removes it; wait for that, as docker does
        raise _run_error(ctx, exc.message, ctx.path) from None
    return _stream_and_wait(
        ctx, container_id, sock, leftover, waiter, tty=tty, stdin="stdin" in attach
    )


def _stream_and_wait(
    ctx: Context,
    container_id: str,
    sock: Any,
    leftover: bytes,
    waiter: Any,
    *,
    tty: bool,
    stdin: bool,
) -> int:
    from dockyard.cli.stream import RawTerminal, pump

    sys.stdout.flush()
    if tty and os.isatty(1):
        _resize(ctx, container_id)
        import signal

        signal.signal(signal.SIGWINCH, lambda *_: _resize(ctx, container_id))
    with RawTerminal(0) if tty and stdin else _Nothing():
        pump(sock, leftover, tty=tty, stdin=stdin)
    sock.close()
    result = waiter.json() or {}
    error = (
        (result.get("Error") or {}).get("Message")
        if isinstance(result.get("Error"), dict)
        else None
    )
    if error and result.get("StatusCode", 0) == 0:
        ctx.err.write(f"Error waiting for container: {error}\n")
    return int(result.get("StatusCode", 0))


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


RUN = Command(
    run_run,
    "[OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Create and run a new container from an image",
    [
        *FLAGS,
        Flag("detach", "d", help="Run container in background and print container ID"),
        Flag("sig-proxy", default=True, help="Proxy received signals to the process"),
    ],
    min_args=1,
    interspersed=False,
)


def run_create(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    created = create_container(ctx, opts, args[0], args[1:])
    ctx.print(created["Id"])
    return 0


CREATE = Command(
    run_create,
    "[OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Create a new container",
    FLAGS,
    min_args=1,
    interspersed=False,
)


def run_start(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    if (opts["attach"] or opts["interactive"]) and len(args) > 1:
        raise CLIError("you cannot start and attach multiple containers at once")
    if opts["attach"] or opts["interactive"]:
        name = args[0]
        info = ctx.client.get_json(f"/containers/{name}/json")
        tty = bool(info["Config"].get("Tty"))
        stdin = bool(opts["interactive"] and info["Config"].get("OpenStdin"))
        query = {"stream": 1, "stdin": 1 if stdin else None, "stdout": 1, "stderr": 1}
        sock, leftover = ctx.client.hijack("POST", f"/containers/{info['Id']}/attach", query)
        waiter = ctx.client.request(
            "POST", f"/containers/{info['Id']}/wait", {"condition": "next-exit"}
        )
        try:
            ctx.client.request("POST", f"/containers/{info['Id']}/start").read()
        except APIError as exc:
            sock.close()
            raise CLIError(f"Error response from daemon: {exc.message}") from None
        return _stream_and_wait(ctx, info["Id"], sock, leftover, waiter, tty=tty, stdin=stdin)
    failed = []
    for name in args:
        try:
            ctx.client.request("POST", f"/containers/{name}/start").read()
            ctx.print(name)
        except APIError as exc:
            failed.append(f"Error response from daemon: {exc.message}")
    if failed:
        failed.append("Error: failed to start containers: " + ", ".join(args))
        raise CLIError("\n".join(failed))
    return 0


START = Command(
    run_start,
    "[OPTIONS] CONTAINER [CONTAINER...]",
    "Start one or more stopped containers",
    [
        Flag("attach", "a", help="Attach STDOUT/STDERR and forward signals"),
        Flag(
            "detach-keys", kind="string", help="Override the key sequence for detaching a container"
        ),
        Flag("interactive", "i", help="Attach container's STDIN"),
    ],
    min_args=1,
)


def run_attach(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    info = ctx.client.get_json(f"/containers/{args[0]}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first")
    tty = bool(info["Config"].get("Tty"))
    stdin = not opts["no-stdin"] and bool(info["Config"].get("OpenStdin"))
    query = {"stream": 1, "stdin": 1 if stdin else None, "stdout": 1, "stderr": 1}
    sock, leftover = ctx.client.hijack("POST", f"/containers/{info['Id']}/attach", query)
    waiter = ctx.client.request(
        "POST", f"/containers/{info['Id']}/wait", {"condition": "not-running"}
    )
    return _stream_and_wait(ctx, info["Id"], sock, leftover, waiter, tty=tty, stdin=stdin)


ATTACH = Command(
    run_attach,
    "[OPTIONS] CONTAINER",
    "Attach local standard input, output, and error streams to a running container",
    [
        Flag(
            "detach-keys", kind="string", help="Override the key sequence for detaching a container"
        ),
        Flag("no-stdin", help="Do not attach STDIN"),
        Flag("sig-proxy", default=True, help="Proxy all received signals to the process"),
    ],
    min_args=1,
    max_args=1,
)
