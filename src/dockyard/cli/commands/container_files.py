"""export, diff, commit, top, stats and container prune (cp is in copy.py)."""

from __future__ import annotations

import os
import sys

from dockyard.cli.client import APIError
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import (
    FORMAT_HELP,
    check_filter,
    confirm,
    filters_json,
    truncate_id,
    write_items,
    write_stream,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# -- export, diff ------------------------------------------------------------------------------
def run_export(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    output: str = opts["output"]
    if not output and sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if output:
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise CLIError(
                f'failed to export container: invalid output path: directory "{directory}" '
                "does not exist"
            )
    response = ctx.client.request("GET", f"/containers/{args[0]}/export")
    write_stream(response, output, 0o600)  # docker export -o makes a 0600 file
    return 0


EXPORT = Command(
    run_export,
    "[OPTIONS] CONTAINER",
    "Export a container's filesystem as a tar archive",
    [Flag("output", "o", "string", help="Write to a file, instead of STDOUT")],
    min_args=1,
    max_args=1,
)


def run_diff(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    if not args[0]:
        raise CLIError("Container name cannot be empty")
    changes = ctx.client.get_json(f"/containers/{args[0]}/changes") or []
    kinds = {0: "C", 1: "A", 2: "D"}
    ctx.out.write("".join(f"{kinds.get(c['Kind'], '?')} {c['Path']}\n" for c in changes))
    return 0


DIFF = Command(
    run_diff,
    "CONTAINER",
    "Inspect changes to files or directories on a container's filesystem",
    min_args=1,
    max_args=1,
)


# -- commit ------------------------------------------------------------------------------------
def run_commit(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query: list[tuple[str, Any]] = [("container", args[0])]
    if len(args) > 1 and args[1]:
        from dockyard import reference

        try:
            ref = reference.parse_normalized(args[1])
        except reference.InvalidReference as exc:
            raise CLIError(exc.message) from None
        if ref.digest:
            raise CLIError("refusing to create a tag with a digest reference")
        ref = ref.with_default_tag()
        query += [("repo", ref.name), ("tag", ref.tag)]
    if opts["message"]:
        query.append(("comment", opts["message"]))
    if opts["author"]:
        query.append(("author", opts["author"]))
    query += [("changes", change) for change in opts["change"]]
    if not opts["pause"]:
        query.append(("pause", "0"))
    result = ctx.client.request("POST", "/commit", query).json()
    ctx.print(result["Id"])
    return 0


COMMIT = Command(
    run_commit,
    "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    "Create a new image from a container's changes",
    [
        Flag(
            "author",
            "a",
            "string",
            help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")',
        ),
        Flag("change", "c", "list", help="Apply Dockerfile instruction to the created image"),
        Flag("message", "m", "string", help="Commit message"),
        Flag("pause", "p", "bool", default=True, help="Pause container during commit"),
    ],
    min_args=1,
    max_args=2,
    interspersed=False,
)


# -- top ---------------------------------------------------------------------------------------
def run_top(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.tabwriter import NewWriter

    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    result = ctx.client.get_json(f"/containers/{args[0]}/top", query)
    writer = NewWriter(None, 20, 1, 3, " ", 0)
    lines = ["\t".join(result.get("Titles") or []) + "\n"]
    lines += ["\t".join(proc) + "\n" for proc in result.get("Processes") or []]
    writer.write("".join(lines))
    ctx.out.write(writer.flush())
    return 0


TOP = Command(
    run_top,
    "CONTAINER [ps OPTIONS]",
    "Display the running processes of a container",
    min_args=1,
    interspersed=False,
)


# -- stats -------------------------------------------------------------------------------------
STATS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
    "\t{{.BlockIO}}\t{{.PIDs}}"
)
STATS_HEADERS = {
    "Container": "CONTAINER",
    "Name": "NAME",
    "ID": "CONTAINER ID",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def stats_row(container: str, doc: dict[str, Any] | None, trunc: bool) -> dict[str, str]:
    """One row of `docker stats` from a StatsResponse (None: no figures, shown as --)."""
    from dockyard.units import bytes_size, human_size_precision

    if doc is None:
        return {
            "Container": container,
            "Name": "--",
            "ID": "",
            "CPUPerc": "--",
            "MemUsage": "-- / --",
            "MemPerc": "--",
            "NetIO": "--",
            "BlockIO": "--",
            "PIDs": "--",
        }
    cur, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = (cur.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cur.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cur.get("online_cpus") or len((cur.get("cpu_usage") or {}).get("percpu_usage") or [])
    cpu = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = doc.get("memory_stats") or {}
    usage, stats = memory.get("usage", 0), memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        used = usage - stats["total_inactive_file"]
    elif stats.get("inactive_file", 0) < usage:
        used = usage - stats.get("inactive_file", 0)
    else:
        used = usage
    limit = memory.get("limit", 0)
    rx = sum(n.get("rx_bytes", 0) for n in (doc.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (doc.get("networks") or {}).values())
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or " ")[0]
        if op in "rR":
            read += entry.get("value", 0)
        elif op in "wW":
            write += entry.get("value", 0)
    name = (doc.get("name") or "").removeprefix("/") or "--"
    return {
        "Container": container,
        "Name": name,
        "ID": truncate_id(doc.get("id") or "") if trunc else doc.get("id") or "",
        "CPUPerc": f"{cpu:.2f}%",
        "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
        "MemPerc": f"{(used / limit * 100.0) if limit else 0.0:.2f}%",
        "NetIO": f"{human_size_precision(rx, 3)} / {human_size_precision(tx, 3)}",
        "BlockIO": f"{human_size_precision(read, 3)} / {human_size_precision(write, 3)}",
        "PIDs": str((doc.get("pids_stats") or {}).get("current", 0)),
    }


def _collect(ctx: Context, names: list[str], stream: bool) -> Any:
    """One thread per container; yields the latest figures of each, repeatedly when
    streaming (None: none yet), and the errors met."""
    import json
    import threading

    latest: dict[str, dict[str, Any] | None] = dict.fromkeys(names)
    errors: dict[str, str] = {}
    done = threading.Event()

    def follow(name: str) -> None:
        try:
            query = {"stream": "1" if stream else "0"}
            response = ctx.client.request("GET", f"/containers/{name}/stats", query)
            for line in response.lines():
                latest[name] = json.loads(line)
                if not stream:
                    break
            response.close()
        except APIError as exc:
            errors[name] = f"Error response from daemon: {exc.message}"
        except Exception as exc:  # the daemon went away
            errors[name] = str(exc)

    threads = [threading.Thread(target=follow, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    if not stream:
        for thread in threads:
            thread.join()
        done.set()
    return latest, errors, threads


def run_stats(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import time

    names = list(dict.fromkeys(args))
    if not names:
        query = {"all": "1"} if opts["all"] else None
        names = [c["Id"] for c in ctx.client.get_json("/containers/json", query)]
    trunc = not opts["no-trunc"]
    fmt = opts["format"] or "table"
    if opts["no-stream"]:
        latest, errors, _ = _collect(ctx, names, stream=False)
        if args and errors:
            raise CLIError("\n".join(errors[n] for n in names if n in errors))
        rows = [stats_row(n, latest[n], trunc) for n in names if n not in errors]
        if rows:
            write_items(ctx, fmt, rows, STATS_HEADERS, STATS_TABLE)
        return 0
    latest, errors, threads = _collect(ctx, names, stream=True)
    try:
        while True:
            time.sleep(0.5)
            if args and errors:
                raise CLIError("\n".join(errors[n] for n in names if n in errors))
            live = [n for n, t in zip(names, threads, strict=True) if t.is_alive() or latest[n]]
            rows = [stats_row(n, latest[n], trunc) for n in live]
            ctx.out.write("\033[2J\033[H")
            write_items(ctx, fmt, rows, STATS_HEADERS, STATS_TABLE)
            ctx.out.flush()
            if args and not any(t.is_alive() for t in threads):
                return 0
    except KeyboardInterrupt:
        return 0


STATS = Command(
    run_stats,
    "[OPTIONS] [CONTAINER...]",
    "Display a live stream of container(s) resource usage statistics",
    [
        Flag("all", "a", help="Show all containers (default shows just running)"),
        Flag("format", kind="string", help=FORMAT_HELP),
        Flag("no-stream", help="Disable streaming stats and only pull the first result"),
        Flag("no-trunc", help="Do not truncate output"),
    ],
)


# -- prune -------------------------------------------------------------------------------------
PRUNE_WARNING = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"
)


def run_prune(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.units import human_size_precision

    filters = filters_json(opts["filter"])
    if not opts["force"] and not confirm(ctx, PRUNE_WARNING):
        return 0
    report = ctx.client.request("POST", "/containers/prune", {"filters": filters}).json()
    deleted = report.get("ContainersDeleted") or []
    reclaimed = 0
    if deleted:
        ctx.print("Deleted Containers:\n" + "".join(f"{d}\n" for d in deleted))
        reclaimed = report.get("SpaceReclaimed", 0)
    ctx.print(f"Total reclaimed space: {human_size_precision(reclaimed, 4)}")
    return 0


PRUNE = Command(
    run_prune,
    "[OPTIONS]",
    "Remove all stopped containers",
    [
        Flag(
            "filter",
            kind="list",
            help='Provide filter values (e.g. "until=<timestamp>")',
            metavar="filter",
            convert=check_filter,
        ),
        Flag("force", "f", help="Do not prompt for confirmation"),
    ],
    max_args=0,
)
