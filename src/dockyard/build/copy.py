"""COPY and ADD: which files go where (planned from the sources alone), and writing them.

Planning follows the classic builder (moby builder/dockerfile/copy.go): a source that is a
directory has its contents copied, not itself; a file goes to `dest/<name>` when dest ends
with `/` (or is an existing directory in the image), else to dest; several sources need a
dest ending with `/`; wildcards are Go's filepath.Match per path component; a source must stay
inside the context. Every copied entry belongs to root, or to the --chown owner, whatever its
owner in the context; --chmod sets the permission bits of what is copied; mtimes are kept.
ADD extracts a local tar archive (plain, gzip, bzip2, xz, zstd) into dest instead.

Writing happens in a mounted snapshot: every path is resolved inside that root (symlinks in
the image cannot lead out of it), and an existing entry is replaced, never followed.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from dockyard.build.cache import SourceDigest
from dockyard.build.dockerignore import Pattern
from dockyard.errors import InvalidParameter
from dockyard.image import compression
from dockyard.image.copy_extract import extract_tar
from dockyard.image.tarsafe import resolve_in_root
from dockyard.image.tarstream import DIR, REG, SYM

__all__ = ["CopyPlan", "DirTree", "Node", "SourceTree", "plan_copy", "write_plan"]

CHUNK = 1 << 20
_TAR_MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


@dataclass(slots=True)
class Node:
    path: str  # relative to its tree's root
    type: str  # REG, DIR or SYM
    mode: int
    mtime_ns: int
    size: int = 0
    linkname: str = ""


class SourceTree(Protocol):
    def lookup(self, path: str) -> Node | None: ...
    def walk(self, top: str) -> Iterator[Node]: ...
    def chunks(self, node: Node) -> Iterator[bytes]: ...
    def all_paths(self) -> Iterator[str]: ...


class DirTree:
    """A real directory (a mounted image) as a source tree, read inside its root."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _readlink(self, rel: str) -> str | None:
        try:
            return os.readlink(self._abs(rel))
        except OSError:
            return None

    def _node(self, rel: str) -> Node | None:
        try:
            st = os.lstat(self._abs(rel))
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            kind = DIR
        elif stat.S_ISLNK(st.st_mode):
            kind = SYM
        elif stat.S_ISREG(st.st_mode):
            kind = REG
        else:
            return None
        link = os.readlink(self._abs(rel)) if kind == SYM else ""
        return Node(rel, kind, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size, link)

    def lookup(self, path: str) -> Node | None:
        return self._node(resolve_in_root(path, self._readlink))

    def walk(self, top: str) -> Iterator[Node]:
        try:
            names = sorted(os.listdir(self._abs(top)))
        except OSError:
            return
        for name in names:
            node = self._node(posixpath.join(top, name) if top else name)
            if node is None:
                continue
            yield node
            if node.type == DIR:
                yield from self.walk(node.path)

    def chunks(self, node: Node) -> Iterator[bytes]:
        fd = os.open(self._abs(node.path), os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as f:
            while data := f.read(CHUNK):
                yield data

    def all_paths(self) -> Iterator[str]:
        yield from (n.path for n in self.walk(""))


@dataclass
class CopyPlan:
    """What one COPY/ADD writes: (target relative to dest, node) pairs per source, and the
    sources' content digest (the cache input)."""

    dest: str  # absolute in the image
    dest_is_dir: bool  # dest named a directory (trailing slash, or several sources)
    items: list[tuple[Node, list[tuple[str, Node]]]]  # per source: its node, what to write
    archives: list[Node]  # ADD: local archives to extract into dest
    digest: str


def _has_wildcards(path: str) -> bool:
    return any(c in path for c in "*?[")


def _clean_source(src: str, from_context: bool) -> str:
    cleaned = posixpath.normpath("/" + src.lstrip("/") if not from_context else src or ".")
    if from_context:
        if cleaned == ".." or cleaned.startswith("../"):
            raise InvalidParameter(f"Forbidden path outside the build context: {src} ()")
        cleaned = cleaned.lstrip("/")
    return cleaned.strip("/") if cleaned not in (".", "/") else ""


def _is_archive(tree: SourceTree, node: Node) -> bool:
    head = b""
    for chunk in tree.chunks(node):
        head += chunk
        if len(head) >= 512:
            break
    if any(head.startswith(m) for m in _TAR_MAGICS):
        return True
    return len(head) >= 512 and head[257:262] == b"ustar"


def plan_copy(
    tree: SourceTree,
    sources: list[str],
    dest: str,
    *,
    cmd: str,
    workdir: str,
    from_context: bool,
    is_add: bool = False,
    hash_data: bool = True,
) -> CopyPlan:
    """The plan of `COPY sources... dest` over `tree` (docker's messages on bad input)."""
    trailing = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    target = dest if dest.startswith("/") else posixpath.join("/", workdir or "/", dest)
    target = posixpath.normpath(target)
    nodes: list[Node] = []
    for src in sources:
        if src.startswith(("http://", "https://")) or (is_add and src.startswith("git@")):
            raise InvalidParameter(
                f"{cmd} failed: downloading {src} is not supported: this daemon builds offline; "
                "download the file into the build context and COPY it"
            )
        path = _clean_source(src, from_context)
        if _has_wildcards(path):
            pattern = Pattern(path, False)
            matched = sorted(p for p in tree.all_paths() if pattern.match(p))
            matched = [p for p in matched if not any(p.startswith(m + "/") for m in matched)]
            for p in matched:
                node = tree.lookup(p)
                if node is not None:
                    nodes.append(node)
            continue
        node = tree.lookup(path)
        if node is None:
            if from_context:
                raise InvalidParameter(
                    f"{cmd} failed: file not found in build context or excluded by "
                    f".dockerignore: stat {src}: file does not exist"
                )
            raise InvalidParameter(
                f"{cmd} failed: stat {posixpath.join('/', path)}: file does not exist"
            )
        nodes.append(node)
    if not nodes:
        raise InvalidParameter(f"{cmd} failed: no source files were specified")
    if len(nodes) > 1 and not trailing:
        raise InvalidParameter(
            f"When using {cmd} with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    digest = SourceDigest()
    items: list[tuple[Node, list[tuple[str, Node]]]] = []
    archives: list[Node] = []

    def add(name: str, node: Node, tree_: SourceTree) -> None:
        digest.entry(name, node.type, node.mode, node.linkname)
        if node.type == REG and hash_data:
            for chunk in tree_.chunks(node):
                digest.data(chunk)

    for node in nodes:
        if node.type == DIR:
            prefix = node.path + "/" if node.path else ""
            writes = [(n.path[len(prefix) :], n) for n in tree.walk(node.path)]
            add(".", node, tree)
            for name, n in writes:
                add(name, n, tree)
            items.append((node, writes))
        elif is_add and node.type == REG and _is_archive(tree, node):
            add("archive:" + posixpath.basename(node.path), node, tree)
            archives.append(node)
        else:
            name = posixpath.basename(node.path)
            add(name, node, tree)
            items.append((node, [("", node)]))
    return CopyPlan(target, trailing or len(nodes) > 1, items, archives, digest.hexdigest())


# -- writing ------------------------------------------------------------------------------------
class RootFS:
    """A mounted root filesystem, every path resolved inside it."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _readlink(self, rel: str) -> str | None:
        try:
            return os.readlink(os.path.join(self.root, rel))
        except OSError:
            return None

    def resolve(self, path: str) -> str:
        """Absolute in-image `path` to a host path: parents resolved in the root, the last
        component not followed."""
        parent, _, base = path.strip("/").rpartition("/")
        rel = resolve_in_root(parent, self._readlink)
        if base in ("", "."):
            return os.path.join(self.root, rel)
        return os.path.join(self.root, rel, base)

    def resolve_all(self, path: str) -> str:
        return os.path.join(self.root, resolve_in_root(path.strip("/"), self._readlink))

    def mkdirs(self, path: str, owner: tuple[int, int], mode: int = 0o755) -> str:
        """mkdir -p inside the root; new directories get `owner`. Returns the host path."""
        rel = ""
        for part in [p for p in path.strip("/").split("/") if p]:
            rel = resolve_in_root(posixpath.join(rel, part), self._readlink)
            host = os.path.join(self.root, rel)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                os.mkdir(host, mode)
                os.chmod(host, mode)
                os.lchown(host, *owner)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(f"mkdir {posixpath.join('/', rel)}: not a directory")
        return os.path.join(self.root, rel) if rel else self.root

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(self.resolve_all(path))

    def lookup_id(self, name: str, group: bool) -> int | None:
        path = self.resolve_all("/etc/group" if group else "/etc/passwd")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) > 2 and fields[0] == name:
                        return int(fields[2])
        except (OSError, ValueError):
            return None
        return None


def parse_chown(chown: str, root: RootFS) -> tuple[int, int]:
    """--chown user[:group] (names looked up in the image's /etc/passwd and /etc/group)."""
    if not chown:
        return 0, 0
    user, _, group = chown.partition(":")
    group = group or user
    ids = []
    for name, is_group in ((user, False), (group, True)):
        if name.isdigit():
            ids.append(int(name))
            continue
        found = root.lookup_id(name, is_group)
        if found is None:
            kind = "gid for group" if is_group else "uid for user"
            what = "group" if is_group else "user"
            raise InvalidParameter(
                "unable to convert uid/gid chown string to host mapping: "
                f"can't find {kind} {name}: no such {what}: {name}"
            )
        ids.append(found)
    return ids[0], ids[1]


def parse_chmod(chmod: str) -> int | None:
    if not chmod:
        return None
    try:
        mode = int(chmod, 8)
    except ValueError:
        raise InvalidParameter(f"invalid chmod parameter: {chmod}") from None
    if mode > 0o7777:
        raise InvalidParameter(f"invalid chmod parameter: {chmod}")
    return mode


def _remove(host: str) -> None:
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise InvalidParameter("cannot overwrite directory with non-directory")
    os.unlink(host)


def _write_node(
    tree: SourceTree, node: Node, host: str, owner: tuple[int, int], chmod: int | None
) -> None:
    mode = chmod if chmod is not None else node.mode
    if node.type == DIR:
        if not os.path.isdir(host) or os.path.islink(host):
            _remove(host)
            os.mkdir(host, 0o700)
        os.chmod(host, mode)
        os.lchown(host, *owner)
        return
    _remove(host)
    if node.type == SYM:
        os.symlink(node.linkname, host)
        os.lchown(host, *owner)
        os.utime(host, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
        return
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(fd, "wb") as f:
        for chunk in tree.chunks(node):
            f.write(chunk)
        os.fchown(f.fileno(), *owner)
        os.fchmod(f.fileno(), mode)
        f.flush()
        os.utime(f.fileno(), ns=(node.mtime_ns, node.mtime_ns))


def _open_archive(tree: SourceTree, node: Node) -> BinaryIO:
    raw = io.BufferedReader(_Chunks(tree.chunks(node)))  # type: ignore[arg-type]
    head = raw.peek(6)[:6]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    return compression.open_decompressed(raw, threaded=False)  # type: ignore[arg-type]


class _Chunks(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def write_plan(
    plan: CopyPlan,
    tree: SourceTree,
    root: RootFS,
    *,
    owner: tuple[int, int],
    chmod: int | None,
    archive_owner: tuple[int, int] | None = None,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Carry out a plan in the mounted root. Archives keep their owners unless
    `archive_owner` (ADD --chown) is given."""
    dest_is_dir = plan.dest_is_dir or (plan.dest != "/" and root.is_dir(plan.dest))
    for node, writes in plan.items:
        check()
        if node.type == DIR:
            base = root.mkdirs(plan.dest, owner)
            dirs: list[tuple[str, Node]] = []
            for name, child in writes:
                host = root.resolve(posixpath.join(plan.dest, name))
                _write_node(tree, child, host, owner, chmod)
                if child.type == DIR:
                    dirs.append((host, child))
            for host, child in reversed(dirs):
                os.utime(host, ns=(child.mtime_ns, child.mtime_ns))
            del base
            continue
        if dest_is_dir:
            root.mkdirs(plan.dest, owner)
            target = posixpath.join(plan.dest, posixpath.basename(node.path))
        else:
            root.mkdirs(posixpath.dirname(plan.dest), owner)
            target = plan.dest
        _write_node(tree, node, root.resolve(target), owner, chmod)
    for node in plan.archives:
        check()
        base = root.mkdirs(plan.dest, owner)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with _open_archive(tree, node) as stream:
                extract_tar(stream, fd, dest_name=plan.dest, chown=archive_owner)
        finally:
            os.close(fd)
