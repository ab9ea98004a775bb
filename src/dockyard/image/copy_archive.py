"""`docker cp` archives: a path inside a root as a tar, and a tar extracted into a directory,
both confined to their root whatever the files there say.

Confinement is the kernel's: every path is opened with openat2(2) and `RESOLVE_IN_ROOT`
relative to the root's fd, so a symlink in the root pointing to `/etc` leads to the root's own
`etc`, `..` stops at the root, and a path swapped for a symlink while we work cannot lead out.
Below an opened directory, entries are reached one name at a time with `O_NOFOLLOW` and the
`*at` calls, and metadata is set through fds (or `/proc/self/fd/N`, which names the very inode
opened), never through a path that could be re-resolved. The same code serves the daemon
(a container's root filesystem) and the client (`dockyard cp` extracting what the daemon sent
into a local directory, which is the root then).

The rules are moby's (go-archive's TarWithOptions, Unpack, copy.go):
- `stat_path`: lstat of the path (a trailing `/` follows a final symlink), and for a symlink its
  target fully resolved inside the root (`linkTarget`, FollowSymlinkInScope);
- `TarSource`: a directory is archived with its contents, renamed to the path's base name
  (`etc/`, `etc/passwd`; `/etc/.` gives `./`, `./passwd`; `/` gives `/`, `/bin/`), in Go's
  WalkDir order (names sorted bytewise, a directory before its contents); anything else is one
  entry. Headers: PAX/ustar, mtime in whole seconds, numeric owners with empty names,
  `security.capability` only, a file seen again through a hardlink is a hardlink entry;
- extraction (`extract_tar`) is in copy_extract.py.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from dockyard.errors import DockyardError, InvalidArchive, NotFound
from dockyard.image.model import rfc3339_nano
from dockyard.image.tarsafe import resolve_in_root
from dockyard.image.tarstream import (
    BLK,
    CHR,
    DIR,
    END_OF_ARCHIVE,
    FIFO,
    LNK,
    SYM,
    TarHeader,
    encode_header,
)

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (the generic syscall table)
O_PATH = os.O_PATH | os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Go's os.FileMode bits, as the X-Docker-Container-Path-Stat header carries them
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2(2) with RESOLVE_IN_ROOT: `path` resolved as if `dir_fd` were `/`."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    raw = os.fsencode(path)
    for _ in range(64):  # EAGAIN: a rename raced the lookup; the kernel asks to retry
        fd = _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


# -- Go's path helpers (path/filepath on Linux) ------------------------------------------------
def go_clean(path: str) -> str:
    """filepath.Clean: "" is ".", a rooted path keeps exactly one leading "/"."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if path.startswith("/") else cleaned


def go_base(path: str) -> str:
    """filepath.Base: the last element, trailing slashes ignored; "/" for the root."""
    if not path:
        return "."
    path = path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else "/"


def go_dir(path: str) -> str:
    """filepath.Dir."""
    return go_clean(path[: path.rfind("/") + 1] if "/" in path else ".")


def specifies_current_dir(path: str) -> bool:
    return go_base(path) == "."


def preserve_trailing(cleaned: str, original: str) -> str:
    """archive.PreserveTrailingDotOrSeparator."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def split_path_dir_entry(path: str) -> tuple[str, str]:
    """archive.SplitPathDirEntry: (directory, base), a trailing "." kept as the base."""
    cleaned = go_clean(path)
    if specifies_current_dir(path):
        cleaned += "/."
    return go_dir(cleaned), go_base(cleaned)


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or specifies_current_dir(path)


def go_file_mode(mode: int) -> int:
    """A st_mode as Go's os.FileMode (what PathStat.mode holds)."""
    result = mode & 0o777
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        result |= MODE_DIR
    elif kind == stat.S_IFLNK:
        result |= MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        result |= MODE_DEVICE
    elif kind == stat.S_IFCHR:
        result |= MODE_DEVICE | MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        result |= MODE_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        result |= MODE_SOCKET
    if mode & stat.S_ISUID:
        result |= MODE_SETUID
    if mode & stat.S_ISGID:
        result |= MODE_SETGID
    if mode & stat.S_ISVTX:
        result |= MODE_STICKY
    return result


def root_relative(abs_path: str) -> str:
    """An absolute in-root path as openat2 takes it (trailing "/" and "/." kept)."""
    return abs_path.lstrip("/") or "."


# -- stat --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int  # Go's os.FileMode
    mtime: str
    link_target: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "linkTarget": self.link_target,
        }

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & MODE_DIR)


def readlink_in(root_fd: int) -> Callable[[str], str | None]:
    def readlink(path: str) -> str | None:
        try:
            fd = openat2(root_fd, path, O_PATH | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            return os.readlink("", dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)

    return readlink


def resolve_path(root_fd: int, abs_path: str) -> str:
    """Every symlink along `abs_path` followed inside the root (broken links as far as they
    go): moby's FollowSymlinkInScope(path, "/"). Returns an absolute path."""
    try:
        return "/" + resolve_in_root(abs_path, readlink_in(root_fd))
    except InvalidArchive:
        raise DockyardError(f"too many links in {abs_path}") from None


def stat_path(root_fd: int, abs_path: str) -> PathStat:
    """lstat of `abs_path` inside the root; OSError (ENOENT…) when it cannot be reached."""
    fd = openat2(root_fd, root_relative(abs_path), O_PATH | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    target = resolve_path(root_fd, abs_path) if stat.S_ISLNK(st.st_mode) else ""
    return PathStat(
        name=go_base(abs_path),
        size=st.st_size,
        mode=go_file_mode(st.st_mode),
        mtime=rfc3339_nano(st.st_mtime_ns),
        link_target=target,
    )


# -- writing -----------------------------------------------------------------------------------
def _capability(fd: int) -> dict[str, bytes]:
    try:
        value = os.getxattr(fd, "security.capability")
    except OSError:
        return {}
    if len(value) >= 20 and value[3] == 3:  # VFS_CAP_REVISION_3 → 2, as moby writes it
        value = value[:3] + b"\x02" + value[4:20]
    return {"security.capability": value}


def _seconds(st: os.stat_result) -> int:
    """The mtime in whole seconds, as ns (moby truncates archive times to the second)."""
    return st.st_mtime_ns // 10**9 * 10**9


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}
        self.written = 0

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.out.write(bytes(self.buf))
            self.written += len(self.buf)
            self.buf = bytearray()

    def entry(self, dir_fd: int, name: str, arcname: str, st: os.stat_result) -> int | None:
        """Write entry `name` of directory `dir_fd` as `arcname`; for a directory, return an fd
        of it open for reading (the caller walks and closes it)."""
        mode = st.st_mode
        h = TarHeader(
            name=arcname,
            mode=mode & 0o7777,
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=_seconds(st),
        )
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                first = self.links.setdefault((st.st_dev, st.st_ino), arcname)
                if first != arcname:
                    h.type, h.linkname = LNK, first
                    self._emit(encode_header(h))
                    return None
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            try:
                h.xattrs = _capability(fd)
                h.size = st.st_size
                self._emit(encode_header(h))
                self._contents(fd, st.st_size)
            finally:
                os.close(fd)
            return None
        if stat.S_ISDIR(mode):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            h.type, h.xattrs = DIR, _capability(fd)
            self._emit(encode_header(h))
            return fd
        if stat.S_ISLNK(mode):
            h.type, h.linkname = SYM, os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            h.type = CHR if stat.S_ISCHR(mode) else BLK
            h.devmajor, h.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            h.type = FIFO
        else:
            log.warning("not archiving %s: sockets cannot be stored in a tar", arcname)
            return None
        self._emit(encode_header(h))
        return None

    def _contents(self, fd: int, size: int) -> None:
        """Exactly `size` bytes: a file that shrank meanwhile is padded, one that grew cut."""
        remaining = size
        while remaining:
            data = os.read(fd, min(remaining, CHUNK))
            if not data:
                log.warning("a file shrank while it was archived: padded with zeros")
                self._emit(bytes(remaining))
                break
            self._emit(data)
            remaining -= len(data)
        self._emit(bytes(-size % 512))

    def close(self) -> None:
        # `out` is not flushed: its owner does that. The API flushes a buffered response
        # only once the container's root is unmounted, so a client that stops reading at
        # the end-of-archive blocks never sees the tar end before the unmount. The trailer
        # goes in a write of its own, small enough that a buffered `out` keeps it.
        self.flush()
        self.out.write(END_OF_ARCHIVE)
        self.written += len(END_OF_ARCHIVE)


def _sorted_entries(fd: int) -> list[tuple[str, os.stat_result]]:
    found = []
    with os.scandir(fd) as it:
        for entry in it:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # gone meanwhile (a running container)
    found.sort(key=lambda item: os.fsencode(item[0]))
    return found


def _walk(writer: _Writer, top_fd: int, prefix: str) -> None:
    """The contents of directory `top_fd` (closed here), named `prefix` + their path (so
    `prefix` is "" or ends with "/"), depth first."""
    stack = [(top_fd, prefix, iter(_sorted_entries(top_fd)))]
    try:
        while stack:
            fd, base, entries = stack[-1]
            item = next(entries, None)
            if item is None:
                os.close(fd)
                stack.pop()
                continue
            name, st = item
            arcname = base + name
            try:
                child = writer.entry(fd, name, arcname, st)
            except (FileNotFoundError, NotADirectoryError) as e:
                log.warning("not archiving %s: %s", arcname, e)
                continue
            if child is not None:
                try:
                    stack.append((child, arcname + "/", iter(_sorted_entries(child))))
                except BaseException:
                    os.close(child)
                    raise
    finally:
        for fd, _, _ in stack:
            os.close(fd)


@dataclass
class TarSource:
    """What `write_tar` archives: directory `dir_fd` named `arcname` with its contents under
    `arcname/` (or, with `top` false, only its contents, by their own paths: an export); or,
    when `entry` is set, that one entry of directory `dir_fd`, named `arcname`."""

    dir_fd: int  # the directory itself, or the parent of a single entry
    entry: str | None
    arcname: str
    top: bool = True

    def close(self) -> None:
        os.close(self.dir_fd)


def source_in_root(root_fd: int, abs_path: str, path_stat: PathStat) -> TarSource:
    """The tar source of `abs_path` (already stat'ed) as containerArchivePath lays it out."""
    if path_stat.is_dir:
        base = go_base(abs_path)
        fd = openat2(root_fd, root_relative(abs_path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        return TarSource(fd, None, "" if base == "/" else base)
    parent, base = abs_path.rsplit("/", 1)
    fd = openat2(root_fd, root_relative(parent + "/"), os.O_RDONLY | os.O_DIRECTORY)
    return TarSource(fd, base, base)


def local_source(path: str, rebase: str = "") -> TarSource:
    """The tar source of a local path as archive.TarResourceRebase lays it out: the path's
    parent is resolved, the last element is archived as itself (named `rebase` if given)."""
    directory, base = split_path_dir_entry(path)
    if base == ".":
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        return TarSource(fd, None, rebase or ".")
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            return TarSource(fd, None, rebase or base)
    except BaseException:
        os.close(dir_fd)
        raise
    return TarSource(dir_fd, base, rebase or base)


def write_tar(source: TarSource, out: BinaryIO) -> int:
    """Write the tar of `source` to `out` (closing the source); returns the bytes written."""
    writer = _Writer(out)
    try:
        if source.entry is None:
            prefix = source.arcname + "/" if source.top else ""
            if source.top:
                st = os.fstat(source.dir_fd)
                h = TarHeader(
                    name=prefix,
                    type=DIR,
                    mode=st.st_mode & 0o7777,
                    uid=st.st_uid,
                    gid=st.st_gid,
                    mtime_ns=_seconds(st),
                    xattrs=_capability(source.dir_fd),
                )
                writer._emit(encode_header(h))
            fd, source.dir_fd = source.dir_fd, -1
            _walk(writer, fd, prefix)
        else:
            st = os.stat(source.entry, dir_fd=source.dir_fd, follow_symlinks=False)
            child = writer.entry(source.dir_fd, source.entry, source.arcname, st)
            if child is not None:  # replaced by a directory meanwhile
                _walk(writer, child, source.arcname + "/")
        writer.close()
    finally:
        if source.dir_fd >= 0:
            source.close()
    return writer.written


def not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")
