"""The build context `dockyard build` sends: a tar stream written as it is read.

What goes in is docker/cli's choice (cli/command/image/build/context.go): the context directory
walked as moby/go-archive's TarWithOptions walks it, `.dockerignore` applied, the Dockerfile and
`.dockerignore` always kept (`dockyard.build.dockerignore.context_paths`); a Dockerfile from
stdin or from outside the context added under a random `.dockerfile.<hex>` name that is also
appended to `.dockerignore` (AddDockerfileToBuildContext); `-` as the context is a tar on stdin,
or a Dockerfile on stdin when it is not one.

Headers as go-archive writes them with the CLI's options: uid/gid 0 (docker/cli passes
ChownOpts{0, 0}), no user or group names, the mode's permission and setuid/setgid/sticky bits,
the mtime on disk truncated to the second, hard links to the first name of the same inode,
`security.capability` as a PAX record, USTAR where the name fits (with a prefix split) and a PAX
header where it does not. Sockets are skipped (Go's tar refuses them); devices and FIFOs go in
as headers. No record padding: the stream ends with two zero blocks as Go's writer ends it.

Only `os` and `_stat` on the hot path: `dockyard build` start-up is measured (see wirejson.py).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import BinaryIO

BLOCK = 512
_ZERO = bytes(BLOCK)
_READ = 1 << 20
_S_IFMT = 0o170000
_S_IFDIR, _S_IFREG, _S_IFLNK = 0o040000, 0o100000, 0o120000
_S_IFCHR, _S_IFBLK, _S_IFIFO, _S_IFSOCK = 0o020000, 0o060000, 0o010000, 0o140000
_TYPEFLAG = {_S_IFREG: b"0", _S_IFLNK: b"2", _S_IFCHR: b"3", _S_IFBLK: b"4", _S_IFDIR: b"5"}
_TYPEFLAG[_S_IFIFO] = b"6"
_MAX_OCTAL = {8: 8**7, 12: 8**11}
DEFAULT_DOCKERFILE = "Dockerfile"


class ContextError(Exception):
    """The context cannot be prepared or read; the message is docker's."""


# -- tar headers ------------------------------------------------------------------------------


def _octal(value: int, size: int) -> bytes:
    """Go's formatOctal: zero-padded digits and a NUL."""
    return b"%0*o\0" % (size - 1, value)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: a name over 100 bytes as prefix (<=155) "/" name (<=100)."""
    if len(name) <= 100 or not name.isascii():
        return None
    length = len(name)
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    if i <= 0 or len(name) - i - 1 > 100 or len(name) - i - 1 == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    size = len(body) + 1
    while len(b"%d" % size) + len(body) != size:
        size += 1
    return b"%d" % size + body


def header(
    name: bytes,
    mode: int,
    size: int = 0,
    mtime: int = 0,
    typeflag: bytes = b"0",
    linkname: bytes = b"",
    uid: int = 0,
    gid: int = 0,
    devmajor: int = 0,
    devminor: int = 0,
    pax: dict[str, bytes] | None = None,
) -> bytes:
    """One entry's header blocks: USTAR, preceded by a PAX header when a field needs one."""
    records = dict(pax or {})
    prefix = b""
    if len(name) > 100 or not name.isascii():
        split = _split_ustar(name)
        if split is None:
            records["path"] = name
        else:
            prefix, name = split
    if len(linkname) > 100 or not linkname.isascii():
        records["linkpath"] = linkname
    numbers = {"uid": (uid, 8), "gid": (gid, 8), "size": (size, 12), "mtime": (mtime, 12)}
    for key, (value, width) in numbers.items():
        if not 0 <= value < _MAX_OCTAL[width]:
            records[key] = b"%d" % value
    out = b""
    if records:
        data = b"".join(_pax_record(k, records[k]) for k in sorted(records))
        head, _, base = name.rpartition(b"/")
        xname = (head + b"/" if head else b"") + b"PaxHeaders.0/" + base
        out = _block(xname[:100], 0, len(data), 0, b"x", b"", 0, 0, 0, 0, b"")
        out += data + bytes(-len(data) % BLOCK)
    clamp = {k: (v if k not in records else 0) for k, (v, _) in numbers.items()}
    ascii_name = name if name.isascii() else bytes(c for c in name if c < 128)
    return out + _block(
        ascii_name[:100],
        mode,
        clamp["size"],
        clamp["mtime"],
        typeflag,
        linkname[:100] if linkname.isascii() else b"",
        clamp["uid"],
        clamp["gid"],
        devmajor,
        devminor,
        prefix,
    )


def _block(
    name: bytes,
    mode: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes,
    uid: int,
    gid: int,
    devmajor: int,
    devminor: int,
    prefix: bytes,
) -> bytes:
    head = b"".join(
        (
            name.ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(uid, 8),
            _octal(gid, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b"        ",
            typeflag,
            linkname.ljust(100, b"\0"),
            b"ustar\x0000",
            bytes(64),  # uname, gname
            _octal(devmajor, 8),
            _octal(devminor, 8),
            prefix.ljust(155, b"\0"),
            bytes(12),
        )
    )
    checksum = b"%06o\0 " % sum(head)
    return head[:148] + checksum + head[156:]


def end_of_archive() -> bytes:
    return _ZERO * 2


def file_entry(name: str, data: bytes, mode: int = 0o600, mtime: int = 0) -> bytes:
    """A regular file made in memory (the Dockerfile from stdin, the amended .dockerignore)."""
    return header(os.fsencode(name), mode, len(data), mtime) + data + bytes(-len(data) % BLOCK)


def is_archive(head: bytes) -> bool:
    """docker/cli's isArchive: compressed (gzip, bzip2, xz, zstd) or a tar header that checks."""
    if head.startswith((b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    if len(head) < BLOCK or head[:BLOCK] == _ZERO:
        return False
    block = head[:BLOCK]
    field = block[148:156].strip(b" \0")
    try:
        expected = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256
    return expected in (unsigned, signed)


# -- the context directory --------------------------------------------------------------------


def _plain_walk(top: str, rel: str) -> Iterator[str]:
    """Every path under top, parents first, byte-wise sorted: `walk_context` with no patterns."""
    with os.scandir(os.path.join(top, rel) if rel else top) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        yield path
        if entry.is_dir(follow_symlinks=False):
            yield from _plain_walk(top, path)


def context_paths(root: str, dockerfile: str, *, dockerfile_from_stdin: bool) -> Iterator[str]:
    """Relative paths that go into the context, parents first, in go-archive's order."""
    if not os.path.lexists(os.path.join(root, ".dockerignore")):
        # No patterns: nothing is excluded, so the walk is all there is to it.
        return _plain_walk(root, "")
    from dockyard.build import dockerignore as module
    from dockyard.errors import InvalidParameter

    try:
        return iter(
            list(
                module.context_paths(root, dockerfile, dockerfile_from_stdin=dockerfile_from_stdin)
            )
        )
    except (ValueError, InvalidParameter) as exc:  # a bad pattern
        raise ContextError(f"error checking context: {getattr(exc, 'message', exc)}") from None


class _Entry:
    __slots__ = ("path", "st")

    def __init__(self, path: str, st: os.stat_result) -> None:
        self.path = path
        self.st = st


def tar_directory(
    root: str,
    paths: Iterable[str],
    *,
    replace: dict[str, Callable[[bytes | None], bytes]] | None = None,
    extra: list[tuple[str, bytes]] | None = None,
    mtime: int = 0,
) -> Iterator[bytes]:
    """The tar of `paths` under root, in order, as it is produced.

    `replace[name](content)` gives new content for a top-level regular file (None when the
    context has no such file: then its result is appended); `extra` entries are appended."""
    seen: dict[tuple[int, int], bytes] = {}
    pending = dict(replace or {})
    for rel in paths:
        full = os.path.join(root, rel)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue  # gone since the walk: go-archive logs and goes on
        except OSError as exc:
            raise ContextError(f"can't stat '{full}'") from exc
        kind = st.st_mode & _S_IFMT
        if kind == _S_IFSOCK:
            continue
        name = os.fsencode(rel)
        if kind == _S_IFDIR:
            name += b"/"
        if kind == _S_IFREG and rel in pending:
            with open(full, "rb") as f:
                data = pending.pop(rel)(f.read())
            yield file_entry(rel, data, st.st_mode & 0o7777, st.st_mtime_ns // 1_000_000_000)
            continue
        yield from _entry(full, name, st, kind, seen)
    for rel, make in pending.items():
        yield file_entry(rel, make(None), 0o600, mtime)
    for rel, data in extra or []:
        yield file_entry(rel, data, 0o600, mtime)
    yield end_of_archive()


def _entry(
    full: str, name: bytes, st: os.stat_result, kind: int, seen: dict[tuple[int, int], bytes]
) -> Iterator[bytes]:
    mode, mtime = st.st_mode & 0o7777, st.st_mtime_ns // 1_000_000_000
    if kind != _S_IFDIR and st.st_nlink > 1:
        first = seen.setdefault((st.st_dev, st.st_ino), name)
        if first != name:
            yield header(name, mode, 0, mtime, b"1", first)
            return
    if kind == _S_IFLNK:
        yield header(name, mode, 0, mtime, b"2", os.fsencode(os.readlink(full)))
        return
    if kind in (_S_IFCHR, _S_IFBLK):
        rdev = st.st_rdev
        yield header(
            name, mode, 0, mtime, _TYPEFLAG[kind], b"", 0, 0, os.major(rdev), os.minor(rdev)
        )
        return
    if kind != _S_IFREG:
        yield header(name, mode, 0, mtime, _TYPEFLAG.get(kind, b"6"))
        return
    pax = None
    try:
        capability = os.getxattr(full, "security.capability", follow_symlinks=False)
    except OSError:
        capability = None
    if capability:
        if len(capability) > 3 and capability[3] == 3:  # VFS_CAP_REVISION_3 → 2, as go-archive
            capability = capability[:3] + b"\x02" + capability[4:20]
        pax = {"SCHILY.xattr.security.capability": capability}
    size = st.st_size
    try:
        f = open(full, "rb")  # noqa: SIM115 - closed by the with below, after the header
    except OSError as exc:
        raise ContextError(f"no permission to read from '{full}'") from exc
    with f:
        yield header(name, mode, size, mtime, b"0", pax=pax)
        left = size
        while left > 0:
            data = f.read(min(left, _READ))
            if not data:  # shrank since the stat: pad as the header promised
                data = bytes(min(left, _READ))
            left -= len(data)
            yield data
    if size % BLOCK:
        yield bytes(BLOCK - size % BLOCK)


class StreamReader:
    """A read()-able view of an iterator of byte strings: the request body, sent as it is made.

    `progress(total, done)` is called as bytes go out, and once with done=True at the end."""

    def __init__(
        self, chunks: Iterable[bytes], progress: Callable[[int, bool], None] | None = None
    ) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._progress = progress
        self.total = 0
        self._done = False

    def read(self, size: int = -1) -> bytes:
        want = size if size >= 0 else 1 << 62
        while len(self._buffer) < want and not self._done:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
            except OSError as exc:  # not the connection's error: the context's
                raise ContextError(f"error reading the build context: {exc}") from None
        out = bytes(self._buffer[:want])
        del self._buffer[:want]
        self.total += len(out)
        if self._progress is not None and (out or self._done):
            finished = self._done and not self._buffer
            self._progress(self.total, finished)
            if finished:
                self._progress = None
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def prefixed(head: bytes, rest: BinaryIO) -> Iterator[bytes]:
    """What was peeked from a stream, then the rest of it."""
    if head:
        yield head
    while data := rest.read(_READ):
        yield data


def random_dockerfile_name() -> str:
    """`.dockerfile.` and 20 hex digits, as docker/cli's randomSuffix."""
    return ".dockerfile." + os.urandom(10).hex()


def amend_dockerignore(name: str) -> Callable[[bytes | None], bytes]:
    """AddDockerfileToBuildContext's .dockerignore: the file (or `.dockerignore` when there is
    none) with the random Dockerfile name appended, so the daemon leaves it out of COPY."""

    def make(content: bytes | None) -> bytes:
        base = content if content is not None else b".dockerignore"
        return base + b"\n" + name.encode() + b"\n"

    return make


def dockerfile_tar(data: bytes, mtime: int) -> Iterator[bytes]:
    """A context that is just a Dockerfile read from stdin (archive.Tar of a temp dir)."""
    umask = os.umask(0)
    os.umask(umask)
    yield header(
        DEFAULT_DOCKERFILE.encode(),
        0o666 & ~umask,
        len(data),
        mtime,
        uid=os.getuid(),
        gid=os.getgid(),
    )
    yield data + bytes(-len(data) % BLOCK)
    yield end_of_archive()
