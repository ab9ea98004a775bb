"""Container commands: ps, stop, kill, restart, rm, pause, unpause, wait, rename, logs, and
inspect (containers, and the generic `inspect` that tries a container, then an image)."""

from __future__ import annotations

import os
import re
import time

from dockyard.cli.client import APIError
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    ellipsis,
    filter_flag,
    filters_json,
    go_time_string,
    inspect_output,
    since,
    truncate_id,
    write_items,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PS_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "Ports": "PORTS",
    "Names": "NAMES",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
    "State": "STATE",
}


def _go_quote(text: str) -> str:
    from dockyard.gostrconv import go_quote

    return go_quote(text)


def _image_shown(summary: dict[str, Any], trunc: bool) -> str:
    image = summary.get("Image") or ""
    if not image:
        return "<no image>"
    if not trunc:
        return image
    if truncate_id(summary.get("ImageID", "")) == truncate_id(image) and image.startswith(
        "sha256:"
    ):
        return truncate_id(image)
    from dockyard import reference

    try:
        return reference.parse_normalized(image).familiar()
    except reference.InvalidReference:
        return image


def container_row(summary: dict[str, Any], trunc: bool) -> dict[str, str]:
    from dockyard.units import human_size_precision

    created = summary.get("Created") or 0
    names = [n.removeprefix("/") for n in summary.get("Names") or []]
    if trunc:
        names = [n for n in names if "/" not in n][:1] or names[:1]
    command = summary.get("Command") or ""
    size = ""
    if "SizeRw" in summary:
        size = human_size_precision(summary.get("SizeRw") or 0, 3)
        if summary.get("SizeRootFs"):
            size += f" (virtual {human_size_precision(summary['SizeRootFs'], 3)})"
    labels = summary.get("Labels") or {}
    return {
        "ID": truncate_id(summary["Id"]) if trunc else summary["Id"],
        "Image": _image_shown(summary, trunc),
        "Command": _go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time_string(created),
        "RunningFor": since(created),
        "Status": summary.get("Status", ""),
        "State": summary.get("State", ""),
        "Ports": "",
        "Names": ",".join(names),
        "Size": size,
        "Labels": ",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        "Mounts": "",
        "LocalVolumes": "0",
        "Networks": ",".join(sorted((summary.get("NetworkSettings") or {}).get("Networks") or {})),
    }


def run_ps(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    fmt: str = opts["format"]
    size = opts["size"] or "{{.Size}}" in fmt
    limit = 1 if opts["latest"] else opts["last"]
    query = {
        "all": 1 if opts["all"] else None,
        "size": 1 if size else None,
        "limit": limit if limit and limit > 0 else None,
        "filters": filters_json(opts["filter"]),
    }
    summaries = ctx.client.get_json("/containers/json", query)
    rows = [container_row(s, not opts["no-trunc"]) for s in summaries]
    if opts["quiet"] and fmt in ("", "table"):
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    default = PS_TABLE + ("\t{{.Size}}" if opts["size"] else "")
    if fmt.startswith("table") and opts["size"] and "{{.Size}}" not in fmt and fmt != "table":
        fmt += "\t{{.Size}}"
    write_items(ctx, fmt, rows, PS_HEADERS, default, "*formatter.ContainerContext")
    return 0


PS = Command(
    run_ps,
    "[OPTIONS]",
    "List containers",
    [
        Flag("all", "a", help="Show all containers (default shows just running)"),
        filter_flag(),
        Flag("format", kind="string", help=FORMAT_HELP),
        Flag(
            "last",
            "n",
            "int",
            default=-1,
            help="Show n last created containers (includes all states)",
        ),
        Flag("latest", "l", help="Show the latest created container (includes all states)"),
        Flag("no-trunc", help="Don't truncate output"),
        Flag("quiet", "q", help="Only display container IDs"),
        Flag("size", "s", help="Display total file sizes"),
    ],
    max_args=0,
)


def _each(ctx: Context, names: list[str], action: Any, verb: str | None = None) -> int:
    """Apply `action` to each name, printing the name on success; docker's error report."""
    errors = []
    for name in names:
        try:
            action(name)
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        ctx.print(name)
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def run_stop(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"t": opts["time"] if opts["time"] != -2 else None, "signal": opts["signal"] or None}
    return _each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/stop", query).read()
    )


_TIME = Flag("time", "t", "int", default=-2, help="Seconds to wait before killing the container")

STOP = Command(
    run_stop,
    "[OPTIONS] CONTAINER [CONTAINER...]",
    "Stop one or more running containers",
    [Flag("signal", "s", "string", help="Signal to send to the container"), _TIME],
    min_args=1,
)


def run_restart(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"t": opts["time"] if opts["time"] != -2 else None, "signal": opts["signal"] or None}
    return _each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/restart", query).read()
    )


RESTART = Command(
    run_restart,
    "[OPTIONS] CONTAINER [CONTAINER...]",
    "Restart one or more containers",
    [Flag("signal", "s", "string", help="Signal to send to the container"), _TIME],
    min_args=1,
)


def run_kill(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"signal": opts["signal"] or None}
    return _each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/kill", query).read()
    )


KILL = Command(
    run_kill,
    "[OPTIONS] CONTAINER [CONTAINER...]",
    "Kill one or more running containers",
    [Flag("signal", "s", "string", help="Signal to send to the container")],
    min_args=1,
)


def run_rm(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"force": 1 if opts["force"] else None, "v": 1 if opts["volumes"] else None}
    errors = []
    for name in args:
        try:
            ctx.client.request("DELETE", f"/containers/{name}", query).read()
        except APIError as exc:
            if opts["force"] and exc.status == 404:
                continue  # docker: -f ignores containers that do not exist
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        ctx.print(name)
    if errors:
        raise CLIError("\n".join(errors))
    return 0


RM = Command(
    run_rm,
    "[OPTIONS] CONTAINER [CONTAINER...]",
    "Remove one or more containers",
    [
        Flag("force", "f", help="Force the removal of a running container (uses SIGKILL)"),
        Flag("link", "l", help="Remove the specified link"),
        Flag("volumes", "v", help="Remove anonymous volumes associated with the container"),
    ],
    min_args=1,
)


def _simple(verb: str, description: str) -> Command:
    def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
        return _each(
            ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/{verb}").read()
        )

    return Command(run, "CONTAINER [CONTAINER...]", description, min_args=1)


PAUSE = _simple("pause", "Pause all processes within one or more containers")
UNPAUSE = _simple("unpause", "Unpause all processes within one or more containers")


def run_wait(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    errors = []
    for name in args:
        try:
            result = ctx.client.request("POST", f"/containers/{name}/wait").json()
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        ctx.print(str(result.get("StatusCode", 0)))
    if errors:
        raise CLIError("\n".join(errors))
    return 0


WAIT = Command(
    run_wait,
    "CONTAINER [CONTAINER...]",
    "Block until one or more containers stop, then print their exit codes",
    min_args=1,
)


def run_rename(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    old, new = (arg.strip() for arg in args)
    if not old or not new:
        raise CLIError("Error: Neither old nor new names may be empty")
    try:
        ctx.client.request("POST", f"/containers/{old}/rename", {"name": new}).read()
    except APIError as exc:  # docker prints the daemon's error, then its own
        ctx.err.write(f"Error response from daemon: {exc.message}\n")
        raise CLIError(f"Error: failed to rename container named {old}") from None
    return 0


RENAME = Command(run_rename, "CONTAINER NEW_NAME", "Rename a container", min_args=2, max_args=2)


def run_logs(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    name = args[0]
    info = ctx.client.get_json(f"/containers/{name}/json")
    tty = bool(info["Config"].get("Tty"))
    query: dict[str, Any] = {
        "stdout": 1,
        "stderr": 1,
        "follow": 1 if opts["follow"] else None,
        "timestamps": 1 if opts["timestamps"] else None,
        "tail": opts["tail"],
        "since": _timestamp(opts["since"]) if opts["since"] else None,
        "until": _timestamp(opts["until"]) if opts["until"] else None,
    }
    response = ctx.client.request("GET", f"/containers/{info['Id']}/logs", query)
    ctx.out.flush()
    write_stream(response.chunks(), tty)
    return 0


def write_stream(chunks: Any, tty: bool) -> None:
    """A stdio body out to our stdout/stderr: docker's frames, or raw for a TTY."""
    buffer = b""
    for data in chunks:
        if tty:
            os.write(1, data)
            continue
        buffer += data
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            os.write(2 if buffer[0] == 2 else 1, buffer[8 : 8 + size])
            buffer = buffer[8 + size :]


def _timestamp(value: str) -> str:
    """docker's GetTimestamp: a duration before now, an RFC 3339 time, or seconds since the
    epoch, sent to the daemon as seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        number = value[: -len(unit)]
        if value.endswith(unit) and number.replace(".", "", 1).isdigit():
            return f"{time.time() - float(number) * units[unit]:.9f}"
    try:
        return f"{float(value):.9f}"
    except ValueError:
        pass
    from datetime import datetime

    nanos = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{1,9})(Z|[+-]\d\d:?\d\d)?", value)
    if nanos:  # RFC 3339 with nanoseconds, as `logs -t` prints (strptime's %f stops at micro)
        whole = _timestamp(nanos.group(1) + (nanos.group(3) or ""))
        return f"{whole.split('.')[0]}.{nanos.group(2).ljust(9, '0')}"
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return f"{datetime.strptime(value.replace('Z', '+0000'), fmt).timestamp():.9f}"
        except ValueError:
            continue
    raise CLIError(
        f'invalid value for "since": failed to parse value as time or duration: "{value}"', 1
    )


LOGS = Command(
    run_logs,
    "[OPTIONS] CONTAINER",
    "Fetch the logs of a container",
    [
        Flag("details", help="Show extra details provided to logs"),
        Flag("follow", "f", help="Follow log output"),
        Flag(
            "since",
            kind="string",
            help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)',
        ),
        Flag(
            "tail",
            "n",
            "string",
            default="all",
            help="Number of lines to show from the end of the logs",
        ),
        Flag("timestamps", "t", help="Show timestamps"),
        Flag(
            "until",
            kind="string",
            help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)',
        ),
    ],
    min_args=1,
    max_args=1,
)


def run_inspect_containers(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    elements, errors = [], []
    query = {"size": 1 if opts["size"] else None}
    for name in args:
        try:
            elements.append(ctx.client.get_json(f"/containers/{name}/json", query))
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
    return inspect_output(ctx, opts["format"], elements, errors)


INSPECT = Command(
    run_inspect_containers,
    "[OPTIONS] CONTAINER [CONTAINER...]",
    "Display detailed information on one or more containers",
    [
        Flag("format", "f", "string", help=INSPECT_FORMAT_HELP),
        Flag("size", "s", help="Display total file sizes"),
    ],
    min_args=1,
)


def run_inspect_any(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    """docker inspect: each name as a container, else as an image (or as --type says)."""
    kind = opts["type"]
    if kind not in ("", "container", "image"):
        raise CLIError(f'"{kind}" is not a valid value for --type')
    elements, errors = [], []
    for name in args:
        found = None
        for candidate in ("container", "image") if not kind else (kind,):
            path = (
                f"/containers/{name}/json" if candidate == "container" else f"/images/{name}/json"
            )
            query = {"size": 1 if opts["size"] and candidate == "container" else None}
            try:
                found = ctx.client.get_json(path, query) if name else None
            except APIError as exc:
                if exc.status != 404:
                    errors.append(f"Error response from daemon: {exc.message}")
                    found = False
                    break
                continue
            if found is not None:
                break
        if found is None:
            errors.append(f"Error: No such object: {name}")
        elif found:
            elements.append(found)
    return inspect_output(ctx, opts["format"], elements, errors)


INSPECT_ANY = Command(
    run_inspect_any,
    "[OPTIONS] NAME|ID [NAME|ID...]",
    "Return low-level information on Docker objects",
    [
        Flag("format", "f", "string", help=INSPECT_FORMAT_HELP),
        Flag("size", "s", help="Display total file sizes if the type is container"),
        Flag("type", kind="string", help="Only inspect objects of the given type"),
    ],
    min_args=1,
)
