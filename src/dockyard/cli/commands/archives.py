"""save, load and import: images to and from tar archives."""

from __future__ import annotations

import os
import sys

from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import write_stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO


def run_save(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    output: str = opts["output"]
    if not output and sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    response = ctx.client.request("GET", "/images/get", [("names", name) for name in args])
    if output:
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise CLIError(
                f'failed to save image: invalid output path: directory "{directory}" does not exist'
            )
    write_stream(response, output)
    return 0


SAVE = Command(
    run_save,
    "[OPTIONS] IMAGE [IMAGE...]",
    "Save one or more images to a tar archive (streamed to STDOUT by default)",
    [Flag("output", "o", "string", help="Write to a file, instead of STDOUT")],
    min_args=1,
)


def _print_stream(ctx: Context, response: Any) -> None:
    """docker's jsonmessage display for a non-terminal: each `stream`/`status` line; an
    `error` ends the command with that message."""
    import json

    for line in response.lines():
        message = json.loads(line)
        if message.get("error"):
            raise CLIError(message["error"])
        if "stream" in message:
            ctx.out.write(message["stream"])
        elif "status" in message:
            ctx.out.write(message["status"] + "\n")


def _open_input(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise CLIError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None


def run_load(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    path: str = opts["input"]
    if not path and sys.stdin.isatty():
        raise CLIError("requested load from stdin, but stdin is empty")
    source = _open_input(path) if path else sys.stdin.buffer
    with source:
        response = ctx.client.request(
            "POST",
            "/images/load",
            {"quiet": "1"},
            body=source,
            headers={"Content-Type": "application/x-tar"},
        )
        _print_stream(ctx, response)
    return 0


LOAD = Command(
    run_load,
    "[OPTIONS]",
    "Load an image from a tar archive or STDIN",
    [
        Flag("input", "i", "string", help="Read from tar archive file, instead of STDIN"),
        Flag("quiet", "q", help="Suppress the load output"),
    ],
    max_args=0,
)


def run_import(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    source = args[0]
    repo = args[1] if len(args) > 1 else None
    if repo is not None:
        from dockyard import reference

        try:
            reference.parse_normalized(repo)
        except reference.InvalidReference as exc:
            raise CLIError(exc.message) from None
    query: list[tuple[str, Any]] = [("fromSrc", "-"), ("repo", repo)]
    query += [("message", opts["message"] or None), ("platform", opts["platform"] or None)]
    query += [("changes", change) for change in opts["change"]]
    if "://" in source:
        raise CLIError("importing from a URL is not supported: download the file and import it")
    stream = sys.stdin.buffer if source == "-" else _open_input(source)
    with stream:
        response = ctx.client.request(
            "POST",
            "/images/create",
            query,
            body=stream,
            headers={"Content-Type": "application/x-tar"},
        )
        _print_stream(ctx, response)
    return 0


IMPORT = Command(
    run_import,
    "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    "Import the contents from a tarball to create a filesystem image",
    [
        Flag("change", "c", "list", help="Apply Dockerfile instruction to the created image"),
        Flag("message", "m", "string", help="Set commit message for imported image"),
        Flag(
            "platform",
            kind="string",
            default=os.environ.get("DOCKER_DEFAULT_PLATFORM", ""),
            help="Set platform if server is multi-platform capable",
        ),
    ],
    min_args=1,
    max_args=2,
)
