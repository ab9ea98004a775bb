"""Helpers the commands share: filters, IDs, times, formatted output, prompts."""

from __future__ import annotations

import os
import sys
import time

from dockyard.cli.command import CLIError, Context
from dockyard.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"
)
INSPECT_FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"
)


def check_filter(value: str) -> str:
    """docker's FilterOpt.Set: a bad filter is a flag error (usage shown, exit 125)."""
    if "=" not in value:
        raise ValueError("bad format of filter (expected name=value)")
    return value


def filter_flag(help: str = "Filter output based on conditions provided") -> Flag:
    return Flag("filter", "f", "list", help=help, metavar="filter", convert=check_filter)


def filters_json(values: list[str], extra: dict[str, list[str]] | None = None) -> str | None:
    """docker's FilterOpt: each `name=value` (name lower-cased, both trimmed) → the API's JSON."""
    import json

    fields: dict[str, dict[str, bool]] = {}
    for value in values:
        name, eq, arg = value.partition("=")
        if not eq:
            raise CLIError(
                f'invalid argument "{value}" for "-f, --filter" flag: bad format of filter (expected name=value)',
                125,
            )
        fields.setdefault(name.strip().lower(), {})[arg.strip()] = True
    for name, args in (extra or {}).items():
        for arg in args:
            fields.setdefault(name, {})[arg] = True
    return json.dumps(fields, separators=(",", ":")) if fields else None


def truncate_id(value: str) -> str:
    """docker's TruncateID: drop the algorithm, keep 12 characters."""
    return value.split(":", 1)[-1][:12]


def ellipsis(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def since(created: float) -> str:
    from dockyard.units import human_duration

    return human_duration(time.time() - created) + " ago"


def go_time_string(seconds: float) -> str:
    """Go's time.Time.String() in local time for a whole second: 2026-11-22 09:50:27 +0000 UTC."""
    local = time.localtime(seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)


def write_items(
    ctx: Context,
    fmt: str,
    items: list[dict[str, Any]],
    headers: dict[str, str],
    default_table: str,
    type_name: str | None = None,
) -> None:
    from dockyard.cli.gotemplate import TemplateError, render_items

    try:
        ctx.out.write(
            render_items(fmt, items, headers, default_table=default_table, type_name=type_name)
        )
    except TemplateError as exc:
        raise CLIError(str(exc)) from None


def confirm(ctx: Context, message: str) -> bool:
    """docker's prompt.Confirm: anything but y/Y (including no input at all) is no."""
    ctx.out.write(message + " [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline() if sys.stdin else ""
    return answer.strip().lower() == "y"


def inspect_output(ctx: Context, fmt: str, elements: list[Any], errors: list[str]) -> int:
    """docker's inspect.Inspect: indented JSON, `json`, or a template per element; errors
    after the output, exit 1 when there were any."""
    import json

    if not fmt:
        ctx.out.write(
            json.dumps(elements, indent=4, ensure_ascii=False) + "\n" if elements else "[]\n"
        )
    elif fmt == "json":
        ctx.out.write(json.dumps(elements, separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        from dockyard.cli.gotemplate import TemplateError, parse

        try:
            template = parse(fmt)
        except TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 64) from None
        chunks = []
        for element in elements:
            try:
                chunks.append(template.execute(element, missingkey="error") + "\n")
            except TemplateError as exc:
                errors.append(f"template parsing error: {exc}")
        ctx.out.write("".join(chunks) or "\n")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def validate_env(value: str) -> str:
    """docker's opts.ValidateEnv (`-e`, `--build-arg`): `NAME` alone takes NAME's value from
    our environment, when it is set there."""
    key, eq, _ = value.partition("=")
    if not key:
        raise ValueError(f"invalid environment variable: {value}")
    if not eq and key in os.environ:
        return f"{key}={os.environ[key]}"
    return value


def write_stream(response: Any, output: str, mode: int = 0o666) -> None:
    """A streamed response to stdout (no `output`), or to the file `output`: a regular file is
    written beside the target and renamed, so that a failure leaves nothing half-written;
    anything else (/dev/null, a pipe) is written in place."""
    if not output:
        out = sys.stdout.buffer
        for chunk in response.chunks():
            out.write(chunk)
        out.flush()
        return
    if os.path.exists(output) and not os.path.isfile(output):
        with open(output, "wb") as f:
            for chunk in response.chunks():
                f.write(chunk)
        return
    partial = f"{output}.dockyard-partial"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with open(fd, "wb") as f:
            for chunk in response.chunks():
                f.write(chunk)
        os.replace(partial, output)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise
