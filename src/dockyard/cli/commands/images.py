"""Image commands: images/ls, tag, rmi, history, inspect, prune."""

from __future__ import annotations

from dockyard.cli.client import APIError
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    check_filter,
    confirm,
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

IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
IMAGE_TABLE_DIGEST = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "SIZE",
}


def _split_familiar(ref: str, sep: str) -> tuple[str, str]:
    """("localhost:5000/a", "1") from "localhost:5000/a:1" (the separator after the last /)."""
    slash = ref.rfind("/")
    cut = ref.rfind(sep)
    if cut <= slash:
        return ref, ""
    return ref[:cut], ref[cut + 1 :]


def image_rows(summary: dict[str, Any], *, trunc: bool, digests: bool) -> list[dict[str, str]]:
    """docker's imageFormat: a row per repository:tag (and digest), or one <none> row."""
    from dockyard.units import human_size_precision

    created = summary.get("Created") or 0
    size = summary.get("Size", 0)
    shared = summary.get("SharedSize", -1)
    containers = summary.get("Containers", -1)
    base = {
        "ID": truncate_id(summary["Id"]) if trunc else summary["Id"],
        "CreatedSince": since(created) if created else "",
        "CreatedAt": go_time_string(created),
        "Size": human_size_precision(size, 3),
        "VirtualSize": human_size_precision(size, 4),
        "Containers": "N/A" if containers == -1 else str(containers),
        "SharedSize": "N/A" if shared == -1 else human_size_precision(shared, 4),
        "UniqueSize": "N/A" if shared == -1 else human_size_precision(size - shared, 4),
    }
    tags = summary.get("RepoTags") or []
    repo_digests = summary.get("RepoDigests") or []
    dangling = (not tags and not repo_digests) or (
        tags == ["<none>:<none>"] and repo_digests == ["<none>@<none>"]
    )
    if dangling:
        return [{**base, "Repository": "<none>", "Tag": "<none>", "Digest": "<none>"}]
    by_repo: dict[str, list[str]] = {}
    for ref in tags:
        repo, tag = _split_familiar(ref, ":")
        by_repo.setdefault(repo, []).append(tag)
    digests_by_repo: dict[str, list[str]] = {}
    for ref in repo_digests:
        repo, digest = _split_familiar(ref, "@")
        digests_by_repo.setdefault(repo, []).append(digest)
    rows = []
    for repo, repo_tags in by_repo.items():
        found = digests_by_repo.pop(repo, []) if digests else []
        digests_by_repo.pop(repo, None)
        for tag in repo_tags:
            for digest in found or ["<none>"]:
                rows.append({**base, "Repository": repo, "Tag": tag, "Digest": digest})
    for repo, found in digests_by_repo.items():
        for digest in found if digests else [""]:
            rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": digest})
    return rows


def run_list(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    extra = {"reference": [args[0]]} if args else None
    query = {"all": "1" if opts["all"] else None, "filters": filters_json(opts["filter"], extra)}
    images = ctx.client.get_json("/images/json", query)
    fmt: str = opts["format"]
    digests = opts["digests"] or "{{.Digest}}" in fmt
    rows = [r for s in images for r in image_rows(s, trunc=not opts["no-trunc"], digests=digests)]
    if opts["quiet"] and fmt in ("", "table"):
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    if fmt.startswith("table") and opts["digests"] and "{{.Digest}}" not in fmt and fmt != "table":
        fmt += "\t{{.Digest}}"
    default = IMAGE_TABLE_DIGEST if opts["digests"] else IMAGE_TABLE
    write_items(ctx, fmt, rows, IMAGE_HEADERS, default, "*formatter.imageContext")
    return 0


LIST = Command(
    run_list,
    "[OPTIONS] [REPOSITORY[:TAG]]",
    "List images",
    [
        Flag("all", "a", help="Show all images (default hides intermediate and dangling images)"),
        Flag("digests", help="Show digests"),
        filter_flag(),
        Flag("format", kind="string", help=FORMAT_HELP),
        Flag("no-trunc", help="Don't truncate output"),
        Flag("quiet", "q", help="Only show image IDs"),
    ],
    max_args=1,
)


def run_tag(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard import reference

    source, target = args
    # docker's client.ImageTag checks both names before it asks the daemon.
    for name, parse in ((source, reference.parse_any), (target, reference.parse_normalized)):
        try:
            parse(name)
        except reference.InvalidReference as exc:
            raise CLIError(
                f'Error parsing reference: "{name}" is not a valid repository/tag: {exc.message}'
            ) from None
    repo, tag = _split_familiar(target, ":")
    if "@" in target:
        raise CLIError("refusing to create a tag with a digest reference")
    ctx.client.request("POST", f"/images/{source}/tag", {"repo": repo, "tag": tag or None}).read()
    return 0


TAG = Command(
    run_tag,
    "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    min_args=2,
    max_args=2,
    interspersed=False,
)


def run_remove(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"force": "1" if opts["force"] else None, "noprune": "1" if opts["no-prune"] else None}
    errors: list[str] = []
    fatal = False
    for name in args:
        try:
            records = ctx.client.request("DELETE", f"/images/{name}", query).json()
        except APIError as exc:
            fatal = fatal or exc.status != 404
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        for record in records:
            if record.get("Deleted"):
                ctx.print(f"Deleted: {record['Deleted']}")
            else:
                ctx.print(f"Untagged: {record['Untagged']}")
    if errors:
        if not opts["force"] or fatal:
            raise CLIError("\n".join(errors))
        ctx.err.write("\n".join(errors) + "\n")
    return 0


REMOVE = Command(
    run_remove,
    "[OPTIONS] IMAGE [IMAGE...]",
    "Remove one or more images",
    [
        Flag("force", "f", help="Force removal of the image"),
        Flag("no-prune", help="Do not delete untagged parents"),
    ],
    min_args=1,
)

HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_RAW = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


def run_history(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import time

    from dockyard.units import human_size_precision

    items = ctx.client.get_json(f"/images/{args[0]}/history")
    human, trunc = opts["human"], not opts["no-trunc"]
    rows = []
    for item in items:
        created = item.get("Created", 0)
        created_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)) + _zone(created)
        created_by = item.get("CreatedBy", "").replace("\t", " ")
        rows.append(
            {
                "ID": truncate_id(item["Id"])
                if trunc and item["Id"] != "<missing>"
                else item["Id"],
                "CreatedAt": created_at,
                "CreatedSince": (since(created) if created > 946684800 else "N/A")
                if human
                else created_at,
                "CreatedBy": ellipsis(created_by, 45) if trunc else created_by,
                "Size": human_size_precision(item.get("Size", 0), 3)
                if human
                else str(item.get("Size", 0)),
                "Comment": item.get("Comment", ""),
            }
        )
    fmt = opts["format"]
    if opts["quiet"] and fmt in ("", "table"):
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    default = HISTORY_TABLE if human else HISTORY_TABLE_RAW
    write_items(ctx, fmt, rows, HISTORY_HEADERS, default, "*image.historyContext")
    return 0


def _zone(seconds: float) -> str:
    """RFC 3339's zone: Z for UTC, else ±hh:mm."""
    import time

    offset = time.localtime(seconds).tm_gmtoff
    if offset == 0:
        return "Z"
    sign = "+" if offset > 0 else "-"
    offset = abs(offset)
    return f"{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"


HISTORY = Command(
    run_history,
    "[OPTIONS] IMAGE",
    "Show the history of an image",
    [
        Flag("format", kind="string", help=FORMAT_HELP),
        Flag("human", "H", default=True, help="Print sizes and dates in human readable format"),
        Flag("no-trunc", help="Don't truncate output"),
        Flag("quiet", "q", help="Only show image IDs"),
    ],
    min_args=1,
    max_args=1,
)


def _inspect_images(ctx: Context, names: list[str], fmt: str, not_found: str | None) -> int:
    elements, errors = [], []
    for name in names:
        if not name:  # docker's client refuses an empty name before asking
            errors.append((not_found or "Error: No such image: {name}").format(name=name))
            continue
        try:
            elements.append(ctx.client.get_json(f"/images/{name}/json"))
        except APIError as exc:
            if exc.status == 404 and not_found is not None:
                errors.append(not_found.format(name=name))
            else:
                errors.append(f"Error response from daemon: {exc.message}")
    return inspect_output(ctx, fmt, elements, errors)


def run_inspect(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    return _inspect_images(ctx, args, opts["format"], None)


INSPECT = Command(
    run_inspect,
    "[OPTIONS] IMAGE [IMAGE...]",
    "Display detailed information on one or more images",
    [Flag("format", "f", "string", help=INSPECT_FORMAT_HELP)],
    min_args=1,
)


def run_inspect_any(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    kind = opts["type"]
    if kind not in ("", "image"):
        raise CLIError(f'"{kind}" is not a valid value for --type')
    return _inspect_images(ctx, args, opts["format"], "Error: No such object: {name}")


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

DANGLING_WARNING = (
    "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
)
ALL_WARNING = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"


def run_prune(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.units import human_size_precision

    filters = filters_json(opts["filter"], {"dangling": ["false" if opts["all"] else "true"]})
    if not opts["force"] and not confirm(ctx, ALL_WARNING if opts["all"] else DANGLING_WARNING):
        return 0
    report = ctx.client.request("POST", "/images/prune", {"filters": filters}).json()
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        ctx.print("Deleted Images:")
        for record in deleted:
            if record.get("Untagged"):
                ctx.print(f"untagged: {record['Untagged']}")
            else:
                ctx.print(f"deleted: {record['Deleted']}")
        ctx.print()
    ctx.print(f"Total reclaimed space: {human_size_precision(report.get('SpaceReclaimed', 0), 4)}")
    return 0


PRUNE = Command(
    run_prune,
    "[OPTIONS]",
    "Remove unused images",
    [
        Flag("all", "a", help="Remove all unused images, not just dangling ones"),
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
