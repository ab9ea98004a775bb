"""RUN --mount: what a step's container gets mounted besides its root, as BuildKit does it.

- `type=bind`: a directory or file of the build context (materialised from the context tar
  into a directory under the daemon's tmp, removed after the step) or of a stage or image
  (`from=`; a snapshot view of it, or a throwaway writable snapshot with `rw`). `source`
  (default the root) is resolved inside that root, symlinks included. Read-only unless `rw`;
  with `rw` the step's writes go to the throwaway copy and are gone after it.
- `type=cache`: a directory under `<data-root>/build-cache-mounts/` named by the sha256 of
  its `id` (default: the target), kept between builds. Made on first use with `mode`, `uid`,
  `gid` (0755, root) and, with `from=`, the content of `from`'s `source`. `sharing=shared`
  (default) lets steps use it at once, `locked` waits until nobody else uses it, `private`
  takes another instance of the id when this one is in use.
- `type=tmpfs`: a tmpfs, `size=` bounded.

Targets are relative to the WORKDIR. What is mounted is not in the step's layer, and neither
are the directories (or empty files) the runtime made as mount points where nothing was
(`stubs`, dropped from the diff as BuildKit's MountStubsCleaner removes them). The step's
cache key covers the mount specs (in the instruction) and what binds and `from=` read
(`input_digest`: the bytes of a context source, the ID of a stage or image), never what a
cache directory holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.build.cache import SourceDigest
from dockyard.build.context import BuildContext
from dockyard.build.mounts import Mount
from dockyard.build.run import mount_point, workspace
from dockyard.errors import DockyardError
from dockyard.image.tarsafe import resolve_in_root
from dockyard.image.tarstream import DIR, REG, SYM

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

__all__ = ["CACHE_MOUNTS", "RunMounts", "input_digest", "mount_target"]

CACHE_MOUNTS = "build-cache-mounts"


class MountError(DockyardError):
    status = 400


def mount_target(m: Mount, workdir: str) -> str:
    """The mount's absolute target: relative targets are under the WORKDIR."""
    if not m.target:
        raise MountError(f"RUN --mount=type={m.type} needs a target")
    target = posixpath.normpath(posixpath.join("/", workdir or "/", m.target))
    if target == "/":
        raise MountError("RUN --mount cannot mount over /")
    if ":" in target:
        raise MountError(f"RUN --mount target {target!r}: ':' is not supported in a target")
    return target


def cache_id(m: Mount) -> str:
    return m.cache_id or posixpath.normpath(m.target)


def _context_entry(context: BuildContext, source: str) -> tuple[str, str]:
    """A context source resolved inside the context: (path, type)."""
    resolved = context.resolve(source.strip("/") or "")
    entry = context.entries.get(resolved)
    if entry is None:
        raise MountError(f'failed to compute cache key: "/{source.strip("/")}": not found')
    return resolved, entry.type


def input_digest(
    mounts: tuple[Mount, ...], context: BuildContext | None, image_of: Callable[[str], str]
) -> str | None:
    """What the mounts read that the instruction does not say: a context source's content
    (names, types, modes, links, bytes) or the image ID behind `from=`; None when none read."""
    parts: list[str] = []
    for m in mounts:
        if m.type not in ("bind", "cache"):
            continue
        if m.from_:
            parts.append(f"{m.type}:{m.from_}:{image_of(m.from_)}")
        elif m.type == "bind":
            if context is None:
                raise MountError("RUN --mount=type=bind needs a build context")
            parts.append("bind:context:" + _context_digest(context, m.source))
    if not parts:
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _context_digest(context: BuildContext, source: str) -> str:
    resolved, kind = _context_entry(context, source)
    digest = SourceDigest()
    entries = [context.entries[resolved]]
    if kind == DIR:
        entries += list(context.walk(resolved))
    for e in entries:
        rel = e.path[len(resolved) :].lstrip("/") if resolved else e.path
        digest.entry(rel, e.type, e.mode, e.linkname)
        if e.type == REG:
            for chunk in context.chunks(e):
                digest.data(chunk)
    return digest.hexdigest()


def _materialise(context: BuildContext, source: str, dest: str) -> str:
    """Write the context's `source` (a file, or a directory and all below it) under `dest`,
    owned by root; returns the path to bind."""
    resolved, kind = _context_entry(context, source)
    top = context.entries[resolved]
    if kind != DIR:
        if kind != REG:
            raise MountError(f'"/{source.strip("/")}" is not a file or directory')
        path = os.path.join(dest, "file")
        _write_file(context, top, path)
        return path
    root = os.path.join(dest, "dir")
    os.mkdir(root)
    dirs = [(root, top)]
    for e in context.walk(resolved):
        path = os.path.join(root, e.path[len(resolved) :].lstrip("/") if resolved else e.path)
        if e.type == DIR:
            os.mkdir(path)
            dirs.append((path, e))
        elif e.type == REG:
            _write_file(context, e, path)
        elif e.type == SYM:
            os.symlink(e.linkname, path)
    for path, e in reversed(dirs):  # after their contents, so the times stay
        os.chmod(path, e.mode & 0o7777)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns))
    return root


def _write_file(context: BuildContext, e: object, path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(fd, "wb") as f:
        for chunk in context.chunks(e):  # type: ignore[arg-type]
            f.write(chunk)
    os.chmod(path, e.mode & 0o7777)  # type: ignore[attr-defined]
    os.utime(path, ns=(e.mtime_ns, e.mtime_ns))  # type: ignore[attr-defined]


def _reader(root: str) -> Callable[[str], str | None]:
    def readlink(rel: str) -> str | None:
        try:
            return os.readlink(os.path.join(root, rel))
        except OSError:
            return None

    return readlink


def _inside(root: str, source: str) -> str:
    """`source` of a mounted root, its symlinks resolved inside that root."""
    rel = resolve_in_root(source, _reader(root))
    path = os.path.join(root, rel) if rel else root
    if not os.path.lexists(path):
        raise MountError(f'failed to compute cache key: "/{source.strip("/")}": not found')
    return path


# -- cache directories ---------------------------------------------------------------------------


@dataclass
class _Use:
    users: int = 0
    locked: bool = False


@dataclass
class _CacheDirs:
    """Which cache directories steps of this daemon use now (all builds share it)."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    uses: dict[str, _Use] = field(default_factory=dict)

    def acquire(self, base: str, sharing: str, check: Callable[[], None]) -> str:
        with self.cond:
            if sharing == "private":
                n = 0
                while True:
                    path = base if n == 0 else f"{base}-{n}"
                    use = self.uses.setdefault(path, _Use())
                    if use.users == 0:
                        use.users = 1
                        return path
                    n += 1
            use = self.uses.setdefault(base, _Use())
            while use.locked or (sharing == "locked" and use.users):
                self.cond.wait(0.1)
                check()
            use.users += 1
            use.locked = sharing == "locked"
            return base

    def release(self, path: str) -> None:
        with self.cond:
            use = self.uses[path]
            use.users -= 1
            use.locked = False
            if use.users == 0:
                del self.uses[path]
            self.cond.notify_all()


CACHE_DIRS = _CacheDirs()


# -- one step's mounts ---------------------------------------------------------------------------


@dataclass
class RunMounts:
    """The mounts of one RUN, made by `prepare` and undone by `close` (an ExitStack)."""

    engine: Engine
    context: BuildContext | None
    image_of: Callable[[str], str]  # a `from=` value to the image ID it means (waits for stages)
    check: Callable[[], None]
    binds: list[str] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> RunMounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def prepare(self, mounts: tuple[Mount, ...], workdir: str) -> None:
        seen: set[str] = set()
        for m in mounts:
            if m.type in ("secret", "ssh"):
                raise MountError(f"RUN --mount=type={m.type} is not supported by this daemon")
            target = mount_target(m, workdir)
            if target in seen:
                raise MountError(f"RUN --mount: {target} is mounted twice")
            seen.add(target)
            self.check()
            if m.type == "tmpfs":
                options = ["exec", "dev"]  # BuildKit's tmpfs is only nosuid
                if m.size_limit:
                    options.append(f"size={m.size_limit}")
                self.tmpfs[target] = ",".join(options)
            elif m.type == "bind":
                source = self._bind_source(m)
                self.binds.append(f"{source}:{target}:{'ro' if m.readonly else 'rw'}")
            else:
                source = self._cache_dir(m)
                self.binds.append(f"{source}:{target}:{'ro' if m.readonly else 'rw'}")
            self.targets.append(target)

    def _scratch_dir(self) -> str:
        path = os.path.join(self.engine.tmp_root, "build-mount-" + uuid.uuid4().hex)
        os.makedirs(path, mode=0o700)
        self._stack.callback(shutil.rmtree, path, ignore_errors=True)
        return path

    def _image_root(self, name: str, writable: bool) -> str:
        """A mounted snapshot of the image `name` means, removed when the step is done."""
        image_id = self.image_of(name)
        record = self.engine.image_store.get(image_id) if image_id else None
        top = record.chain_ids[-1] if record and record.chain_ids else None
        key = self._stack.enter_context(workspace(self.engine, top, readonly=not writable))
        return mount_point(self.engine, key)

    def _bind_source(self, m: Mount) -> str:
        if m.from_:
            return _inside(self._image_root(m.from_, writable=not m.readonly), m.source)
        if self.context is None:
            raise MountError("RUN --mount=type=bind needs a build context")
        return _materialise(self.context, m.source, self._scratch_dir())

    def _cache_dir(self, m: Mount) -> str:
        top = os.path.join(self.engine.data_root, CACHE_MOUNTS)
        os.makedirs(top, mode=0o700, exist_ok=True)
        base = os.path.join(top, hashlib.sha256(cache_id(m).encode()).hexdigest())
        path = CACHE_DIRS.acquire(base, m.sharing or "shared", self.check)
        self._stack.callback(CACHE_DIRS.release, path)
        if not os.path.isdir(path):
            self._make_cache(m, path)
        if m.source and not m.from_:  # a directory in the cache; its links stay inside it
            mounted = os.path.join(path, resolve_in_root(m.source, _reader(path)))
            if not os.path.isdir(mounted):
                self._make_cache(m, mounted)
            return mounted
        return path

    def _make_cache(self, m: Mount, path: str) -> None:
        """A new cache directory, complete before it gets its name."""
        temp = f"{path}.new-{uuid.uuid4().hex[:8]}"
        try:
            if m.from_:
                seed = _inside(self._image_root(m.from_, writable=False), m.source)
                if not os.path.isdir(seed):
                    raise MountError(f'cache mount source "/{m.source.strip("/")}" is not a dir')
                shutil.copytree(seed, temp, symlinks=True)
            else:
                os.makedirs(temp)
            os.chmod(temp, 0o755 if m.mode is None else m.mode)
            os.chown(temp, m.uid or 0, m.gid or 0)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(temp, path)
        except FileExistsError:
            pass  # another step made it meanwhile
        except OSError as e:
            if not os.path.isdir(path):
                raise MountError(f"making cache mount {m.target}: {e}") from None
        finally:
            shutil.rmtree(temp, ignore_errors=True)


def stubs_of(targets: list[str]) -> Iterator[str]:
    """Each target and the directories above it (not /): where mount points may have been
    made."""
    for target in targets:
        path = target
        while path not in ("/", ""):
            yield path
            path = posixpath.dirname(path)
