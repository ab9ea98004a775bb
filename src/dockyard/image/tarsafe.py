"""Pure path rules for extracting a layer tar inside a root directory.

Nothing here touches the filesystem: the resolver asks a `readlink` callback about each
component, so the same code is tested exhaustively on a dict and used on a real directory.

The rules (as moby's archive package has them):
- a member name is cleaned lexically; absolute names, names that climb out (`..`) and names with
  NUL are refused (docker strips a leading `/` instead: one line to change here if a real
  image needs it); the root itself (`./`) is skipped;
- a hardlink target is cleaned the same way (a leading `/` means the layer root, as kaniko
  writes them) and must stay inside;
- a relative symlink target, joined to the link's directory and cleaned, must stay inside;
  absolute targets (`/bin/busybox`) are kept as they are: they point into the container root;
- every parent component of a path that is written is resolved inside the root, as if the root
  were `/` (openat2 `RESOLVE_IN_ROOT`, securejoin): `a -> /etc` leads to `<root>/etc`, `..` stops
  at the root. The final component is never followed: an entry replaces what is there.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from dockyard.errors import InvalidArchive

MAX_SYMLINKS = 40  # as Linux's MAXSYMLINKS


def _is_local(cleaned: str) -> bool:
    return not (cleaned == ".." or cleaned.startswith("../") or cleaned.startswith("/"))


def member_path(name: str) -> str | None:
    """The cleaned, root-relative path of a member name; None for the root itself.

    Raises InvalidArchive for names with NUL, absolute names and names that escape the root.
    """
    clean = "/." not in name and "//" not in name and "\x00" not in name
    if clean and name and name[0] not in "./":  # the common case: normpath would not change it
        return name.rstrip("/")
    if "\x00" in name:
        raise InvalidArchive(f"invalid tar entry name {name!r}: contains NUL")
    if name.startswith("/"):
        raise InvalidArchive(f"invalid tar entry name {name!r}: absolute path")
    cleaned = posixpath.normpath(name) if name else "."
    if cleaned == ".":
        return None
    if not _is_local(cleaned):
        raise InvalidArchive(f"invalid tar entry name {name!r}: escapes the layer root")
    return cleaned


def hardlink_target(name: str, linkname: str) -> str:
    """The cleaned, root-relative path a hardlink entry points at (it must stay inside)."""
    if "\x00" in linkname:
        raise InvalidArchive(f"invalid hardlink {name!r} -> {linkname!r}: contains NUL")
    # A leading "/" means the layer root. Strip it before cleaning so that "/../x" is refused
    # rather than collapsed to "/x".
    cleaned = posixpath.normpath(linkname.lstrip("/")) if linkname.lstrip("/") else "."
    if cleaned == "." or not _is_local(cleaned):
        raise InvalidArchive(
            f"invalid hardlink {name!r} -> {linkname!r}: target escapes the layer root"
        )
    return cleaned


def check_symlink(path: str, target: str) -> None:
    """Refuse a relative symlink at root-relative `path` whose target climbs out of the root."""
    if "\x00" in target:
        raise InvalidArchive(f"invalid symlink {path!r} -> {target!r}: contains NUL")
    if not target:
        raise InvalidArchive(f"invalid symlink {path!r}: empty target")
    if target.startswith("/"):
        return
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if not _is_local(joined):
        raise InvalidArchive(
            f"invalid symlink {path!r} -> {target!r}: target escapes the layer root"
        )


def resolve_in_root(
    path: str, readlink: Callable[[str], str | None], *, max_symlinks: int = MAX_SYMLINKS
) -> str:
    """Resolve every component of root-relative `path` inside the root; return the result.

    `readlink(p)` gets a root-relative path whose parent components are already resolved and
    returns the symlink target if `p` is a symlink, else None (missing paths are None: they
    are kept as they are, to be created). Absolute targets restart at the root, `..` never
    climbs above it. The result is "" for the root, else a relative path without `.`, `..` or
    empty components. Raises InvalidArchive after `max_symlinks` links (a loop).
    """
    resolved: list[str] = []
    pending = [c for c in reversed(path.split("/")) if c not in ("", ".")]
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(part)
        target = readlink("/".join(resolved))
        if target is None:
            continue
        resolved.pop()
        links += 1
        if links > max_symlinks:
            raise InvalidArchive(f"too many levels of symbolic links resolving {path!r}")
        if target.startswith("/"):
            resolved.clear()
        pending.extend(c for c in reversed(target.split("/")) if c not in ("", "."))
    return "/".join(resolved)
