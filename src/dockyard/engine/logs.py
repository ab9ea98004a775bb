"""Reading a container's json-file log for `docker logs`: tail, since, until, timestamps,
and following as it grows (rotation included)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from dockyard.image.model import parse_rfc3339

from .filters import parse_timestamp


@dataclass(frozen=True)
class Entry:
    stream: str  # "stdout" | "stderr"
    text: bytes
    time: str  # RFC 3339 with nanoseconds, as logged


@dataclass
class LogOptions:
    stdout: bool = True
    stderr: bool = True
    since: float | None = None
    until: float | None = None
    tail: int | None = None  # None: all
    timestamps: bool = False
    follow: bool = False


def parse_options(query: dict[str, str]) -> LogOptions:
    """The query of GET /containers/{id}/logs (docker's rules for tail/since/until)."""

    def flag(name: str) -> bool:
        return query.get(name, "").lower() not in ("", "0", "no", "false", "none")

    opts = LogOptions(stdout=flag("stdout"), stderr=flag("stderr"))
    opts.timestamps = flag("timestamps")
    opts.follow = flag("follow")
    tail = query.get("tail", "all") or "all"
    if tail != "all":
        try:
            opts.tail = max(int(tail), 0)
        except ValueError:
            opts.tail = None  # docker treats an unparsable tail as "all"
    for key in ("since", "until"):
        value = query.get(key, "")
        if value and value != "0":
            setattr(opts, key, parse_timestamp(value))
    return opts


def log_files(path: str) -> list[str]:
    """The rotated files first (oldest first), then the live one."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return [*reversed(rotated), path] if os.path.exists(path) else list(reversed(rotated))


def parse_line(line: bytes) -> Entry | None:
    try:
        doc = json.loads(line)
        return Entry(doc.get("stream", "stdout"), doc.get("log", "").encode(), doc.get("time", ""))
    except (ValueError, AttributeError):
        return None


def wanted(entry: Entry, opts: LogOptions) -> bool:
    if entry.stream == "stdout" and not opts.stdout:
        return False
    if entry.stream == "stderr" and not opts.stderr:
        return False
    if opts.since is not None or opts.until is not None:
        when = parse_rfc3339(entry.time) if entry.time else 0.0
        if opts.since is not None and when < opts.since:
            return False
        if opts.until is not None and when > opts.until:
            return False
    return True


def read_entries(path: str, opts: LogOptions) -> tuple[list[Entry], int]:
    """What is logged now (after tail/since/until) and the offset the live file was read to."""
    entries: list[Entry] = []
    offset = 0
    for file in log_files(path):
        with open(file, "rb") as f:
            data = f.read()
        if file == path:
            complete = data.rfind(b"\n") + 1
            data, offset = data[:complete], complete
        for line in data.splitlines():
            entry = parse_line(line)
            if entry is not None and wanted(entry, opts):
                entries.append(entry)
    if opts.tail is not None:
        entries = entries[-opts.tail :] if opts.tail else []
    return entries, offset


def read_new(path: str, offset: int, opts: LogOptions) -> tuple[Iterator[Entry], int]:
    """Entries appended to the live file since `offset`; a rotation starts it over."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return iter(()), offset
    if size < offset:  # rotated: the new file is read from its start
        offset = 0
    if size == offset:
        return iter(()), offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    complete = data.rfind(b"\n") + 1
    lines = data[:complete].splitlines()
    found = (e for e in map(parse_line, lines) if e is not None and wanted(e, opts))
    return found, offset + complete


def fixed_nano(stamp: str) -> str:
    """A log entry's RFC3339Nano time as `logs -t` shows it: moby's RFC3339NanoFixed, always
    nine fraction digits (the log file keeps Go's trimmed form: "…:05.1Z" is "…:05.100000000Z")."""
    if not stamp.endswith("Z"):
        return stamp
    whole, dot, frac = stamp[:-1].partition(".")
    return f"{whole}.{(frac if dot else '').ljust(9, '0')[:9]}Z"
