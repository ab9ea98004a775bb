"""Volume commands: volume ls, create, inspect, rm, prune (docker's texts and exit codes)."""

from __future__ import annotations

from dockyard.cli.client import APIError
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    check_filter,
    confirm,
    filters_json,
    inspect_output,
    write_items,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {
    "Driver": "DRIVER",
    "Name": "VOLUME NAME",
    "Mountpoint": "MOUNTPOINT",
    "Scope": "SCOPE",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


def _row(volume: dict[str, Any]) -> dict[str, str]:
    labels = volume.get("Labels") or {}
    return {
        "Driver": volume.get("Driver", "local"),
        "Name": volume["Name"],
        "Mountpoint": volume.get("Mountpoint", ""),
        "Scope": volume.get("Scope", "local"),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": volume.get("CreatedAt", ""),
    }


def run_list(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    found = ctx.client.get_json("/volumes", {"filters": filters_json(opts["filter"])})
    rows = sorted((_row(v) for v in found.get("Volumes") or []), key=lambda r: r["Name"])
    if opts["quiet"] and opts["format"] in ("", "table"):
        ctx.out.write("".join(r["Name"] + "\n" for r in rows))
        return 0
    write_items(ctx, opts["format"], rows, VOLUME_HEADERS, VOLUME_TABLE)
    return 0


LIST = Command(
    run_list,
    "[OPTIONS]",
    "List volumes",
    [
        Flag("filter", "f", "list", help='Provide filter values (e.g. "dangling=true")',
             metavar="filter", convert=check_filter),
        Flag("format", kind="string", help=FORMAT_HELP),
        Flag("quiet", "q", help="Only display volume names"),
    ],
    max_args=0,
)  # fmt: skip


def run_create(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    name = opts["name"] or (args[0] if args else "")
    if opts["name"] and args and args[0] != opts["name"]:
        raise CLIError(
            "conflicting options: cannot specify a volume-name through both --name and as a "
            "positional arg",
        )
    labels = {}
    for label in opts["label"]:
        key, _, value = label.partition("=")
        labels[key] = value
    body = {"Name": name, "Driver": opts["driver"], "Labels": labels, "DriverOpts": {}}
    import json

    try:
        created = ctx.client.request(
            "POST",
            "/volumes/create",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        ).json()
    except APIError as exc:
        raise CLIError(f"Error response from daemon: {exc.message}") from None
    ctx.print(created["Name"])
    return 0


CREATE = Command(
    run_create,
    "[OPTIONS] [VOLUME]",
    "Create a volume",
    [
        Flag("driver", "d", "string", default="local", help="Specify volume driver name"),
        Flag("label", kind="list", help="Set metadata for a volume"),
        Flag("name", kind="string", help="Specify volume name"),
    ],
    max_args=1,
)


def run_inspect(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    found, errors = [], []
    for name in args:
        try:
            found.append(ctx.client.get_json(f"/volumes/{name}"))
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
    return inspect_output(ctx, opts["format"], found, errors)


INSPECT = Command(
    run_inspect,
    "[OPTIONS] VOLUME [VOLUME...]",
    "Display detailed information on one or more volumes",
    [Flag("format", "f", "string", help=INSPECT_FORMAT_HELP)],
    min_args=1,
)


def run_remove(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    errors = []
    for name in args:
        try:
            query = {"force": "1" if opts["force"] else None}
            ctx.client.request("DELETE", f"/volumes/{name}", query).read()
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        ctx.print(name)
    if errors:
        raise CLIError("\n".join(errors))
    return 0


REMOVE = Command(
    run_remove,
    "[OPTIONS] VOLUME [VOLUME...]",
    "Remove one or more volumes",
    [Flag("force", "f", help="Force the removal of one or more volumes")],
    min_args=1,
)

PRUNE_WARNING = (
    "WARNING! This will remove anonymous local volumes not used by at least one container."
    "\nAre you sure you want to continue?"
)
PRUNE_ALL_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container."
    "\nAre you sure you want to continue?"
)


def run_prune(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.units import human_size_precision

    extra = {"all": ["true"]} if opts["all"] else None
    filters = filters_json(opts["filter"], extra)
    warning = PRUNE_ALL_WARNING if opts["all"] else PRUNE_WARNING
    if not opts["force"] and not confirm(ctx, warning):
        return 0
    report = ctx.client.request("POST", "/volumes/prune", {"filters": filters}).json()
    deleted = report.get("VolumesDeleted") or []
    reclaimed = 0
    if deleted:
        ctx.print("Deleted Volumes:\n" + "".join(f"{d}\n" for d in deleted))
        reclaimed = report.get("SpaceReclaimed", 0)
    ctx.print(f"Total reclaimed space: {human_size_precision(reclaimed, 4)}")
    return 0


PRUNE = Command(
    run_prune,
    "[OPTIONS]",
    "Remove unused local volumes",
    [
        Flag("all", "a", help="Remove all unused volumes, not just anonymous ones"),
        Flag("filter", kind="list", help='Provide filter values (e.g. "label=<label>")',
             metavar="filter", convert=check_filter),
        Flag("force", "f", help="Do not prompt for confirmation"),
    ],
    max_args=0,
)  # fmt: skip
