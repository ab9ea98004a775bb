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
- `extract_tar`: names are cleaned with any leading `/` stripped and must stay inside; parents
  are resolved inside the root and created as 0755 directories when missing; an existing entry
  is replaced unless both are directories (or, with `no_overwrite_dir_non_dir`, refused when
  one is a directory and the other not); owners from the tar unless `chown` (or `no_lchown`);
  xattrs (EPERM ignored), modes, then times (directories' at the end).
"""

from __future__ import annotations

import collections
import ctypes
import errno
import logging
import os
import posixpath
import shutil
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
    REG,
    SYM,
    TarHeader,
    TarReader,
    encode_header,
)

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (the generic syscall table)
_O_PATH = os.O_PATH | os.O_CLOEXEC
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


def _rel(abs_path: str) -> str:
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


def _readlink_in(root_fd: int) -> Callable[[str], str | None]:
    def readlink(path: str) -> str | None:
        try:
            fd = openat2(root_fd, path, _O_PATH | os.O_NOFOLLOW)
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
        return "/" + resolve_in_root(abs_path, _readlink_in(root_fd))
    except InvalidArchive:
        raise DockyardError(f"too many links in {abs_path}") from None


def stat_path(root_fd: int, abs_path: str) -> PathStat:
    """lstat of `abs_path` inside the root; OSError (ENOENT…) when it cannot be reached."""
    fd = openat2(root_fd, _rel(abs_path), _O_PATH | os.O_NOFOLLOW)
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
        self._emit(END_OF_ARCHIVE)
        self.flush()
        self.out.flush()


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
        fd = openat2(root_fd, _rel(abs_path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        return TarSource(fd, None, "" if base == "/" else base)
    parent, base = abs_path.rsplit("/", 1)
    fd = openat2(root_fd, _rel(parent + "/"), os.O_RDONLY | os.O_DIRECTORY)
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


# -- extracting --------------------------------------------------------------------------------
def name_rebaser(old: str, new: str) -> Callable[[str], str]:
    """go-archive's newNameRebaser: `old` replaced by `new` at the start of entry names."""
    old, new = old.rstrip("/"), new.rstrip("/")
    if not old:
        return lambda name: f"{new}/{name.lstrip('/')}" if new else name.lstrip("/")

    def rebase(name: str) -> str:
        if not name.startswith(old):
            return name
        suffix = name[len(old) :]
        if suffix and not suffix.startswith("/"):
            return name
        return new + suffix

    return rebase


def _quote(text: str) -> str:
    from dockyard.image.shellwords import go_quote

    return go_quote(text)


class _Extractor:
    _PARENTS = 256  # parent directory fds kept open

    def __init__(
        self,
        dest_fd: int,
        dest_name: str,
        *,
        no_overwrite_dir_non_dir: bool,
        chown: tuple[int, int] | None,
        no_lchown: bool,
    ) -> None:
        self.dest_fd = dest_fd
        self.dest_name = dest_name
        self.no_overwrite = no_overwrite_dir_non_dir
        self.chown = chown
        self.lchown = not no_lchown
        self.parents: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.dirs: list[tuple[str, int, int]] = []  # (resolved path, atime, mtime)

    def close(self) -> None:
        for fd in self.parents.values():
            os.close(fd)
        self.parents.clear()

    # -- directories ---------------------------------------------------------------------
    def _walk_to(self, resolved: str, create: bool) -> int:
        """An O_PATH fd of resolved directory `resolved` (root-relative, no symlinks left),
        reached one component at a time without following anything; missing ones are made
        (0755, as moby's implied directories) when `create`."""
        fd = os.dup(self.dest_fd)
        try:
            for part in resolved.split("/") if resolved else ():
                try:
                    nxt = os.open(part, _O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nxt = os.open(part, _O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
                    os.chmod(f"/proc/self/fd/{nxt}", 0o755)  # whatever the umask
                os.close(fd)
                fd = nxt
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OSError(errno.ENOTDIR, "not a directory", resolved) from None
            raise
        return fd

    def _parent(self, parent: str, create: bool = True) -> tuple[int, str]:
        """(O_PATH fd, resolved path) of directory `parent` of the tar, resolved inside the
        root; the fd is cached (do not close it)."""
        resolved = resolve_in_root(parent, _readlink_in(self.dest_fd)) if parent else ""
        fd = self.parents.get(resolved)
        if fd is not None:
            self.parents.move_to_end(resolved)
            return fd, resolved
        fd = self._walk_to(resolved, create)
        self.parents[resolved] = fd
        if len(self.parents) > self._PARENTS:
            os.close(self.parents.popitem(last=False)[1])
        return fd, resolved

    # -- entries -------------------------------------------------------------------------
    def entry(self, h: TarHeader, reader: TarReader) -> None:
        name = go_clean(h.name.lstrip("/"))
        if name == ".":
            return
        if name == ".." or name.startswith("../"):
            raise DockyardError(f"invalid entry name {_quote(h.name)}")
        parent, _, base = name.rpartition("/")
        link_target = ""
        if h.type == LNK:
            link_target = go_clean(h.linkname)
            if link_target.startswith("/"):  # the tar's root (kaniko writes them so)
                link_target = go_clean(h.linkname.lstrip("/"))
            if link_target in (".", "..") or link_target.startswith("../"):
                raise DockyardError(f"invalid hardlink target {_quote(h.linkname)}")
        pfd, resolved_parent = self._parent(parent)
        path = f"{resolved_parent}/{base}" if resolved_parent else base
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.no_overwrite and is_dir and h.type != DIR:
                raise DockyardError(
                    f"cannot overwrite directory {_quote(name)} with non-directory "
                    f"{_quote(self.dest_name)}"
                )
            if self.no_overwrite and not is_dir and h.type == DIR:
                raise DockyardError(
                    f"cannot overwrite non-directory {_quote(name)} with directory "
                    f"{_quote(self.dest_name)}"
                )
            if not (is_dir and h.type == DIR):
                if is_dir:
                    shutil.rmtree(base, dir_fd=pfd)
                    self.close()  # cached fds below it name removed directories
                    pfd, _ = self._parent(parent)
                else:
                    os.unlink(base, dir_fd=pfd)
        link_source = None
        if link_target:
            tparent, _, tbase = link_target.rpartition("/")
            link_source = (self._parent(tparent, create=False)[0], tbase)
        self._create(h, reader, pfd, base, path, link_source)

    def _create(
        self,
        h: TarHeader,
        reader: TarReader,
        pfd: int,
        base: str,
        path: str,
        link_source: tuple[int, str] | None,
    ) -> None:
        uid, gid = self.chown or (h.uid, h.gid)
        atime = mtime = max(h.mtime_ns, 0)
        if h.atime_ns is not None:
            atime = max(h.atime_ns, mtime)
        kind = h.type
        if kind == REG:
            fd = os.open(
                base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=pfd
            )
            try:
                while chunk := reader.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                self._owner(fd, uid, gid, path)
                self._xattrs(fd, h)
                os.fchmod(fd, h.mode & 0o7777)
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
        elif kind == DIR:
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass  # a directory merges into a directory
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                self._owner(fd, uid, gid, path)
                self._xattrs(fd, h)
                os.fchmod(fd, h.mode & 0o7777)
            finally:
                os.close(fd)
            self.dirs.append((path, atime, mtime))
        elif kind == SYM:
            os.symlink(h.linkname, base, dir_fd=pfd)
            if self.lchown:
                try:
                    os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
                except OSError as e:
                    raise self._chown_error(path, uid, gid, e) from e
            os.utime(base, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)
        elif kind == LNK:
            assert link_source is not None
            sfd, sbase = link_source
            os.link(sbase, base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
            self._by_path(pfd, base, uid, gid, h, path, atime, mtime)
        elif kind in (CHR, BLK, FIFO):
            fmt = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}[kind]
            os.mknod(base, fmt | 0o600, os.makedev(h.devmajor, h.devminor), dir_fd=pfd)
            self._by_path(pfd, base, uid, gid, h, path, atime, mtime)
        else:
            raise DockyardError(f"unhandled tar header type {ord(kind[:1] or chr(0))}")

    def _by_path(
        self, pfd: int, base: str, uid: int, gid: int, h: TarHeader, path: str, at: int, mt: int
    ) -> None:
        """Metadata of a node opened O_PATH (a hardlink's target may be a symlink: then its
        own owner only, as moby does)."""
        fd = os.open(base, _O_PATH | os.O_NOFOLLOW, dir_fd=pfd)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                if self.lchown:
                    os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
                return
            proc = f"/proc/self/fd/{fd}"
            if self.lchown:
                try:
                    os.chown(proc, uid, gid)
                except OSError as e:
                    raise self._chown_error(path, uid, gid, e) from e
            for key, value in h.xattrs.items():
                self._setxattr(proc, key, value)
            os.chmod(proc, h.mode & 0o7777)
            os.utime(proc, ns=(at, mt))
        finally:
            os.close(fd)

    def _owner(self, fd: int, uid: int, gid: int, path: str) -> None:
        if self.lchown:
            try:
                os.fchown(fd, uid, gid)
            except OSError as e:
                raise self._chown_error(path, uid, gid, e) from e

    @staticmethod
    def _chown_error(path: str, uid: int, gid: int, e: OSError) -> DockyardError:
        return DockyardError(f'failed to Lchown "{path}" for UID {uid}, GID {gid}: {e.strerror}')

    def _xattrs(self, target: int | str, h: TarHeader) -> None:
        for key, value in h.xattrs.items():
            self._setxattr(target, key, value)

    @staticmethod
    def _setxattr(target: int | str, key: str, value: bytes) -> None:
        try:
            os.setxattr(target, key, value)
        except OSError as e:
            if e.errno != errno.EPERM:
                raise
            log.warning("ignored xattr %s in archive: %s", key, e.strerror)

    def finish(self) -> None:
        for path, atime, mtime in self.dirs:
            try:
                fd = self._walk_to(path, create=False)
            except OSError:
                continue
            try:
                os.utime(f"/proc/self/fd/{fd}", ns=(atime, mtime))
            finally:
                os.close(fd)


def extract_tar(
    stream: BinaryIO,
    dest_fd: int,
    *,
    dest_name: str = "",
    no_overwrite_dir_non_dir: bool = False,
    chown: tuple[int, int] | None = None,
    no_lchown: bool = False,
    rebase: Callable[[str], str] | None = None,
) -> int:
    """Extract the (uncompressed) tar read from `stream` into directory `dest_fd`, which is
    its root: nothing is written outside it. `dest_name` names it in messages. Returns the
    bytes read. Errors are DockyardError (a corrupt tar: InvalidArchive) or OSError."""
    extractor = _Extractor(
        dest_fd,
        dest_name,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        chown=chown,
        no_lchown=no_lchown,
    )
    reader = TarReader(stream, CHUNK)
    try:
        while (h := reader.next()) is not None:
            if rebase is not None:
                h.name = rebase(h.name)
                if h.type == LNK:
                    h.linkname = rebase(h.linkname)
            extractor.entry(h, reader)
        total = reader.finish()
        extractor.finish()
    finally:
        extractor.close()
    return total


def not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")
