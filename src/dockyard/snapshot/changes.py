"""A container's changes as `docker diff` lists them: A (added), C (changed), D (deleted).

The rules are moby's `ChangesDirs` (vendor/github.com/moby/go-archive/changes.go), which docker's
overlay2 and vfs drivers both use (overlay2 through its naive differ, comparing the mounted
container root with the mounted image):
- an entry only in the new tree is A, and so is everything under it;
- an entry only in the old tree is D, and nothing under it is listed;
- an entry in both is C when its type or mode, owner, device number, `security.capability` or
  (for non-directories) size or mtime (`sameFsTime`) differ; contents are not read;
- a directory with any change below it is C, listed before them, unless it is listed already;
- the root itself is never listed.
Docker returns them in map order; ours are sorted (a directory before its contents, names
bytewise), which is one of the orders docker can print.

`tree_changes(old, new)` compares two full trees (vfs). `overlay_changes(lowers, upper)` reads
the same answer off an overlay upper dir and its lower layers, without mounting anything: only
what the upper holds can differ, whiteouts are deletions, and an opaque directory replaces all
that was below it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["A", "C", "D"]
_API_KIND = {"C": 0, "A": 1, "D": 2}  # the Engine API's FilesystemChange.Kind
_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_MISSING = (errno.ENOENT, errno.ENOTDIR)
_NO_XATTR = (errno.ENODATA, errno.ENOTSUP, errno.ENOENT)


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    path: str  # absolute inside the container: "/etc/passwd"

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"

    def to_api(self) -> dict[str, object]:
        """As GET /containers/{id}/changes answers: {"Path": "/etc", "Kind": 0}."""
        return {"Path": self.path, "Kind": _API_KIND[self.kind]}


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError as e:
        if e.errno in _MISSING:
            return None
        raise


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError as e:
        if e.errno in _MISSING:
            return []
        raise


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


def _same_time(a: int, b: int) -> bool:
    """moby's sameFsTime: equal, or the same second with one side lacking nanoseconds."""
    if a == b:
        return True
    return a // 1_000_000_000 == b // 1_000_000_000 and (
        a % 1_000_000_000 == 0 or b % 1_000_000_000 == 0
    )


def stat_differs(old: os.stat_result, new: os.stat_result) -> bool:
    """moby's statDifferent."""
    if (
        old.st_mode != new.st_mode
        or old.st_uid != new.st_uid
        or old.st_gid != new.st_gid
        or old.st_rdev != new.st_rdev
    ):
        return True
    return not stat.S_ISDIR(old.st_mode) and (
        old.st_size != new.st_size or not _same_time(old.st_mtime_ns, new.st_mtime_ns)
    )


def _differs(old_path: str, old: os.stat_result, new_path: str, new: os.stat_result) -> bool:
    return stat_differs(old, new) or _capability(old_path) != _capability(new_path)


def _key(name: str) -> bytes:
    return os.fsencode(name)


class _Frame:
    """One directory being walked: its names still to visit (sorted, popped from the end) and
    where its changes start in the output. A directory with changes below it is listed as C
    before them unless it was listed itself (moby's `addChanges`). The walk keeps its own stack:
    a container can make directories deeper than Python's recursion limit."""

    __slots__ = ("listed", "names", "rel", "start")

    def __init__(self, rel: str, names: set[str] | list[str], listed: bool) -> None:
        self.rel = rel
        self.names = sorted(names, key=_key, reverse=True)
        self.listed = listed
        self.start = 0

    def visit(self, name: str, out: list[Change]) -> _Frame | None:
        raise NotImplementedError


def _walk(top: _Frame) -> list[Change]:
    out: list[Change] = []
    stack = [top]
    while stack:
        frame = stack[-1]
        if not frame.names:
            stack.pop()
            if len(out) > frame.start and not frame.listed and frame.rel:
                out.insert(frame.start, Change("C", frame.rel))
            continue
        child = frame.visit(frame.names.pop(), out)
        if child is not None:
            child.start = len(out)
            stack.append(child)
    return out


class _Added(_Frame):
    """Everything under a new directory is new."""

    __slots__ = ("path",)

    def __init__(self, path: str, rel: str) -> None:
        super().__init__(rel, _listdir(path), listed=True)
        self.path = path

    def visit(self, name: str, out: list[Change]) -> _Frame | None:
        return _add(f"{self.path}/{name}", f"{self.rel}/{name}", out)


def _add(path: str, rel: str, out: list[Change]) -> _Frame | None:
    st = _lstat(path)
    if st is None:
        return None
    out.append(Change("A", rel))
    return _Added(path, rel) if stat.S_ISDIR(st.st_mode) else None


class _Trees(_Frame):
    __slots__ = ("new", "new_names", "old", "old_names")

    def __init__(self, old: str | None, new: str, rel: str, listed: bool) -> None:
        self.old_names = set(_listdir(old)) if old is not None else set()
        self.new_names = set(_listdir(new))
        super().__init__(rel, self.old_names | self.new_names, listed)
        self.old = old
        self.new = new

    def visit(self, name: str, out: list[Change]) -> _Frame | None:
        rel = f"{self.rel}/{name}"
        npath = f"{self.new}/{name}"
        nst = _lstat(npath) if name in self.new_names else None
        opath = f"{self.old}/{name}"
        ost = _lstat(opath) if name in self.old_names else None
        if nst is None:
            if ost is not None:
                out.append(Change("D", rel))
            return None
        if ost is None:
            return _add(npath, rel, out)
        if (ost.st_dev, ost.st_ino) == (nst.st_dev, nst.st_ino):
            return None  # the very same file: moby's walker prunes it
        changed = _differs(opath, ost, npath, nst)
        if changed:
            out.append(Change("C", rel))
        if not stat.S_ISDIR(nst.st_mode):
            return None
        return _Trees(opath if stat.S_ISDIR(ost.st_mode) else None, npath, rel, changed)


def tree_changes(old: str | None, new: str) -> list[Change]:
    """The changes from full tree `old` (None: nothing) to full tree `new`."""
    return _walk(_Trees(old, new, "", listed=True))


# -- overlay ------------------------------------------------------------------------------------


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as e:
            if e.errno not in _NO_XATTR and e.errno != errno.EPERM:
                raise
    return False


@dataclass(frozen=True, slots=True)
class LowerEntry:
    """One entry of the merged lower layers: its topmost form, and when it is a directory the
    layer directories that make it up (top first)."""

    path: str
    st: os.stat_result
    dirs: tuple[str, ...]


def lookup(dirs: Sequence[str], name: str) -> LowerEntry | None:
    """`name` in the merged directory made of `dirs` (top first), as overlayfs resolves it."""
    found: LowerEntry | None = None
    merged: list[str] = []
    for d in dirs:
        path = f"{d}/{name}"
        st = _lstat(path)
        if st is None:
            continue
        if found is None:
            if is_whiteout(st):
                return None
            found = LowerEntry(path, st, ())
            if not stat.S_ISDIR(st.st_mode):
                return found
        elif not stat.S_ISDIR(st.st_mode):
            break  # a whiteout or a file below a directory ends the merge
        merged.append(path)
        if is_opaque(path):
            break
    if found is None:
        return None
    return LowerEntry(found.path, found.st, tuple(merged))


def merged_names(dirs: Sequence[str]) -> set[str]:
    """The names visible in the merged directory made of `dirs`."""
    names: set[str] = set()
    for d in dirs:
        names.update(_listdir(d))
    return {n for n in names if lookup(dirs, n) is not None}


class _Overlay(_Frame):
    """Directory `rel`: `upper` holds what changed in it, and its lower form is the merge of
    `lower`. `replaces`: the upper directory is all there is (it is opaque, or under one), so
    what the lower has and the upper lacks is deleted."""

    __slots__ = ("lower", "replaces", "upper")

    def __init__(
        self, lower: tuple[str, ...], upper: str, rel: str, listed: bool, replaces: bool
    ) -> None:
        names = set(_listdir(upper))
        if replaces:
            names |= merged_names(lower)
        super().__init__(rel, names, listed)
        self.lower = lower
        self.upper = upper
        self.replaces = replaces

    def visit(self, name: str, out: list[Change]) -> _Frame | None:
        rel = f"{self.rel}/{name}"
        upath = f"{self.upper}/{name}"
        ust = _lstat(upath)
        old = lookup(self.lower, name) if self.lower else None
        if ust is None or is_whiteout(ust):
            if old is not None:
                out.append(Change("D", rel))
            return None
        if old is None:
            return _add(upath, rel, out)
        changed = _differs(old.path, old.st, upath, ust)
        if changed:
            out.append(Change("C", rel))
        if not stat.S_ISDIR(ust.st_mode):
            return None
        below = old.dirs if stat.S_ISDIR(old.st.st_mode) else ()
        return _Overlay(below, upath, rel, changed, self.replaces or is_opaque(upath))


def overlay_changes(lowers: Sequence[str], upper: str) -> list[Change]:
    """The changes an overlay upper dir makes to its lower layers (top first)."""
    return _walk(_Overlay(tuple(lowers), upper, "", listed=True, replaces=False))


def changes_usage(root: str, changes: Sequence[Change]) -> tuple[int, int]:
    """(bytes, inodes) of the added and changed entries, read under `root`, each inode once
    (moby's ChangesSize, which counts no directories; inodes here count every entry)."""
    seen: set[tuple[int, int]] = set()
    size = inodes = 0
    for change in changes:
        if change.kind == "D":
            continue
        st = _lstat(root + change.path)
        if st is None:
            continue
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        inodes += 1
        if not stat.S_ISDIR(st.st_mode):
            size += st.st_size
    return size, inodes
