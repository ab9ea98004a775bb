"""`RUN --mount=type=cache,target=/x,...` values (BuildKit's commands_runmount.go), pure.

A spec is parsed twice, as BuildKit does: at parse time without an expander (only the CSV
syntax and a variable in `from=` are errors then) and at expansion time with the stage's
variables, when every key is checked.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.build.flags import suggest
from dockyard.gostrconv import go_quote

__all__ = ["Mount", "parse_mount"]

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
_KEYS = (
    "type from source target readonly id sharing required size mode uid gid src dst "
    "destination ro rw readwrite env"
).split()
_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class Mount:
    type: str = "bind"
    from_: str = ""  # a stage or image; the build context when empty
    source: str = ""
    target: str = ""
    readonly: bool = True
    size_limit: int = 0
    cache_id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def _uint(key: str, value: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(ch not in digits for ch in value) or int(value, base) >= 2**32:
        raise ValueError(f"invalid value {value} for {key}")
    return int(value, base)


def _ram_bytes(key: str, value: str) -> int:
    m = _RAM.match(value)
    if m is None or m.group(1).count(".") > 1:
        raise ValueError(f"invalid value for {key}: {value}")
    power = " kmgtp".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * 1024**power)


def _fields(spec: str) -> list[str]:
    try:
        return next(csv.reader([spec], strict=True), [])
    except csv.Error as e:
        raise ValueError(f"failed to parse csv mounts: {e}") from None


def parse_mount(spec: str, expand: Callable[[str], str] | None) -> Mount:
    """Parse one --mount value; with expand None only the parse-time checks are made."""
    m: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for fld in _fields(spec):
        key, has_value, value = fld.partition("=")
        key = key.lower()
        if not has_value:
            if expand is None:
                continue
            if key in ("readonly", "ro", "readwrite", "rw"):
                m["readonly"], ro_auto = key in ("readonly", "ro"), False
            elif key == "required" and m["type"] in ("secret", "ssh"):
                m["required"] = True
            elif key == "required":
                raise ValueError(f"unexpected key '{key}' for mount type '{m['type']}'")
            else:
                raise ValueError(f"invalid field '{fld}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        elif key == "from":
            i = value.find("$")
            if i != -1 and i != len(value) - 1:
                raise ValueError(
                    f"'{key}' doesn't support variable expansion, define alias stage instead"
                )
        else:
            continue
        ro_auto = _apply(m, key, value, fld) and ro_auto
    return _finish(m, ro_auto)


def _apply(m: dict[str, object], key: str, value: str, fld: str) -> bool:
    """Set one key; returns False when it decided readonly explicitly."""
    kind = m["type"]
    if key == "type":
        if value.lower() not in TYPES:
            text = f"unsupported mount type {go_quote(value)}"
            hint = suggest(value, list(TYPES), case_sensitive=True)
            raise ValueError(f"{text} (did you mean {hint}?)" if hint else text)
        m["type"] = value.lower()
    elif key == "from":
        m["from_"] = value
    elif key in ("source", "src"):
        m["source"] = value
    elif key in ("target", "dst", "destination"):
        m["target"] = value
    elif key in ("readonly", "ro"):
        m["readonly"] = _bool(key, value)
        return False
    elif key in ("readwrite", "rw"):
        m["readonly"] = not _bool(key, value)
        return False
    elif key == "required":
        if kind not in ("secret", "ssh"):
            raise ValueError(f"unexpected key '{key}' for mount type '{kind}'")
        m["required"] = _bool(key, value)
    elif key == "size":
        if kind != "tmpfs":
            raise ValueError(f"unexpected key '{key}' for mount type '{kind}'")
        m["size_limit"] = _ram_bytes(key, value)
    elif key == "id":
        m["cache_id"] = value
    elif key == "sharing":
        if value.lower() not in SHARING:
            text = f"unsupported sharing value {go_quote(value)}"
            hint = suggest(value, list(SHARING), case_sensitive=True)
            raise ValueError(f"{text} (did you mean {hint}?)" if hint else text)
        m["sharing"] = value.lower()
    elif key == "mode":
        m["mode"] = _uint(key, value, 8)
    elif key in ("uid", "gid"):
        m[key] = _uint(key, value, 10)
    elif key == "env":
        m["env"] = value
    else:
        text = f"unexpected key '{key}' in '{fld}'"
        hint = suggest(key, _KEYS, case_sensitive=True)
        raise ValueError(f"{text} (did you mean {hint}?)" if hint else text)
    return True


def _finish(m: dict[str, object], ro_auto: bool) -> Mount:
    kind = str(m["type"])
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if m.get(key) is not None:
                raise ValueError(f"{key} not allowed for {go_quote(kind)} type mounts")
    if ro_auto:
        m["readonly"] = kind not in ("cache", "tmpfs")
    if kind == "secret":
        if m.get("from_"):
            raise ValueError("secret mount should not have a from")
        if m.get("sharing"):
            raise ValueError("secret mount should not define sharing")
        if not (m.get("source") or m.get("target") or m.get("cache_id")):
            raise ValueError("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("cache_id"):
            raise ValueError("both source and id can't be set")
    if m.get("sharing") and kind != "cache":
        raise ValueError(f"invalid cache sharing set for {kind} mount")
    return Mount(**m)  # type: ignore[arg-type]
