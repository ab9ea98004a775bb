"""A container's files from outside: `docker cp` both ways, `export` and `diff`.

Every path is resolved inside the container's root filesystem (image/copy_archive.py: openat2
with RESOLVE_IN_ROOT), never on the host: a symlink in the container pointing to /etc leads to
the container's /etc. The root is the container's overlay mount: a stopped container's is
mounted for the operation and taken off after; the container's lock is held throughout, so
that a start, an exit or a removal waits (as moby holds the container lock until the archive
has been read). Errors are moby's (daemon/archive*.go, export.go, changes.go).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.image import compression
from dockyard.image.copy_archive import (
    PathStat,
    TarSource,
    go_clean,
    not_found,
    openat2,
    preserve_trailing,
    resolve_path,
    root_relative,
    source_in_root,
    stat_path,
    write_tar,
)
from dockyard.image.copy_extract import extract_tar
from dockyard.snapshot.changes import Change
from dockyard.snapshot.mounts import is_mounted
from dockyard.snapshot.snapshotter import Snapshotter

from .container_store import Container

if TYPE_CHECKING:
    from .engine import Engine

_MAX_ACCOUNT_FILE = 4 << 20  # /etc/passwd and /etc/group read for copyUIDGID
# What docker keeps in a container's init layer (daemon/initlayer): mount points and marker
# files that are no change of the container's. Ours are made in the writable layer by the
# runtime (targets of the bind mounts of /etc/hosts…), so diff and commit leave them out.
INIT_PATHS = (
    "/dev/pts",
    "/dev/shm",
    "/proc",
    "/sys",
    "/.dockerenv",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/dev/console",
    "/etc/mtab",
)


@contextlib.contextmanager
def container_root(engine: Engine, container: Container) -> Iterator[int]:
    """An fd of the container's root filesystem, under its lock, mounted while needed."""
    containers = engine.containers
    with containers.lock(container.id):
        current = engine.container_store.get(container.id)
        if current is None:
            raise NotFound(f"No such container: {container.id}")
        rootfs = containers.rootfs(current.id)
        mounted_here = False
        if not is_mounted(rootfs):
            os.makedirs(rootfs, exist_ok=True)
            engine.snapshots.mount(current.snapshot_key, rootfs)
            mounted_here = True
        try:
            fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd
            finally:
                os.close(fd)
        finally:
            if mounted_here:
                Snapshotter.unmount(rootfs)


def archive_path(path: str) -> str:
    """The absolute in-container path of an API `path` (moby: Join("/", path), keeping a
    trailing "/" or "/.")."""
    return preserve_trailing(go_clean("/" + path), path)


def _system_error(op: str, path: str, e: OSError) -> DockyardError:
    return DockyardError(f"{op} {path}: {(e.strerror or str(e)).lower()}")


def _stat(root_fd: int, path: str, ref: str) -> tuple[str, PathStat]:
    abs_path = archive_path(path)
    try:
        return abs_path, stat_path(root_fd, abs_path)
    except FileNotFoundError:
        raise not_found(path, ref) from None
    except OSError as e:
        raise _system_error("lstat", abs_path, e) from None


# -- cp ----------------------------------------------------------------------------------------
def stat(engine: Engine, ref: str, path: str) -> PathStat:
    """HEAD /containers/{id}/archive."""
    container = engine.containers.find(ref)
    with container_root(engine, container) as root_fd:
        return _stat(root_fd, path, ref)[1]


def archive(engine: Engine, ref: str, path: str, start: Callable[[PathStat], BinaryIO]) -> int:
    """GET /containers/{id}/archive: `start(stat)` is called once the path is found (the
    response headers go out then) and returns where the tar is written. Returns its size."""
    container = engine.containers.find(ref)
    with container_root(engine, container) as root_fd:
        abs_path, path_stat = _stat(root_fd, path, ref)
        try:
            source = source_in_root(root_fd, abs_path, path_stat)
        except FileNotFoundError:
            raise not_found(path, ref) from None
        except OSError as e:
            raise _system_error("open", abs_path, e) from None
        try:
            out = start(path_stat)
        except BaseException:
            source.close()
            raise
        return write_tar(source, out)


def extract(
    engine: Engine,
    ref: str,
    path: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool = False,
    copy_uid_gid: bool = False,
) -> None:
    """PUT /containers/{id}/archive: extract a (compressed) tar into directory `path`."""
    container = engine.containers.find(ref)
    with container_root(engine, container) as root_fd:
        abs_path = go_clean("/" + path)
        try:
            dest_fd = openat2(
                root_fd, root_relative(abs_path), os.O_PATH
            )  # follows a final symlink
        except FileNotFoundError:
            raise not_found(path, ref) from None
        except OSError as e:
            if e.errno == errno.ENOTDIR:
                raise not_found(path, ref) from None
            raise _system_error("lstat", abs_path, e) from None
        try:
            if not (os.fstat(dest_fd).st_mode & 0o170000 == 0o040000):
                raise InvalidParameter("extraction point is not a directory")
            if container.host_config.get("ReadonlyRootfs"):
                raise InvalidParameter("container rootfs is marked read-only")
            owner = _container_user(root_fd, container) if copy_uid_gid else None
            dest_name = preserve_trailing(resolve_path(root_fd, abs_path), path)
            with compression.open_decompressed(stream) as plain:
                try:
                    extract_tar(
                        plain,
                        dest_fd,
                        dest_name=dest_name,
                        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                        chown=owner,
                    )
                except FileNotFoundError as e:
                    raise _system_error("open", str(e.filename or abs_path), e) from None
                except OSError as e:
                    raise _system_error("extract", dest_name, e) from None
        finally:
            os.close(dest_fd)


def _read_in_root(root_fd: int, path: str) -> str | None:
    try:
        fd = openat2(root_fd, path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, _MAX_ACCOUNT_FILE).decode("utf-8", "surrogateescape")
    finally:
        os.close(fd)


def _id(text: str) -> int | None:
    """moby's getIDOrName: a number up to MaxInt32 is an ID, anything else a name."""
    return int(text) if text.isdigit() and int(text) <= 2**31 - 1 else None


def _container_user(root_fd: int, container: Container) -> tuple[int, int] | None:
    """copyUIDGID: the owner files get, from the container's Config.User resolved in its own
    /etc/passwd and /etc/group as moby's getUIDGID does (None: keep the tar's owners)."""
    user = container.config.get("User") or ""
    if not user:
        return None
    from dockyard.runtime.users import parse_group, parse_passwd

    name, _, group = user.partition(":")
    uid = gid = 0
    if name:
        entries = parse_passwd(_read_in_root(root_fd, "etc/passwd") or "")
        number = _id(name)
        if number is None:
            found = next((e for e in entries if e.name == name), None)
            if found is None:
                raise InvalidParameter(
                    f'failed to look up user "{name}" in container: '
                    "no matching entries in passwd file"
                )
            uid, gid = found.uid, found.gid
        else:  # a UID: its primary group when /etc/passwd knows it, else 0
            found = next((e for e in entries if e.uid == number), None)
            uid, gid = number, found.gid if found else 0
    if group:
        number = _id(group)
        if number is None:
            groups = parse_group(_read_in_root(root_fd, "etc/group") or "")
            match = next((g for g in groups if g.name == group), None)
            if match is None:
                raise InvalidParameter(
                    f'failed to look up group "{group}" in container: '
                    "no matching entries in group file"
                )
            number = match.gid
        gid = number
    return uid, gid


# -- export and diff ---------------------------------------------------------------------------
def export(engine: Engine, ref: str, start: Callable[[], BinaryIO]) -> int:
    """GET /containers/{id}/export: the whole root filesystem as a tar."""
    container = engine.containers.find(ref)
    if container.state.get("Status") == "removing":
        raise Conflict(f"You cannot export container {container.id} which is being removed")
    if container.state.get("Dead"):
        raise Conflict(f"You cannot export container {container.id} which is Dead")
    try:
        with container_root(engine, container) as root_fd:
            source = TarSource(os.dup(root_fd), None, "", top=False)
            try:
                out = start()
            except BaseException:
                source.close()
                raise
            return write_tar(source, out)
    except (NotFound, ConnectionError):
        raise
    except DockyardError as e:
        raise DockyardError(f"Error exporting container {ref}: {e.message}") from None
    except OSError as e:
        raise DockyardError(f"Error exporting container {ref}: {e}") from None


def is_init_path(path: str) -> bool:
    """An init-layer path (absolute) or something under one."""
    return any(path == p or path.startswith(p + "/") for p in INIT_PATHS)


def without_init_paths(found: list[Change]) -> list[Change]:
    """The changes but the init layer's, and the directories listed only as their parents."""
    kept = [c for c in found if not is_init_path(c.path)]
    if len(kept) == len(found):
        return kept
    dropped_parents = {
        c.path.rsplit("/", 1)[0] or "/" for c in found if is_init_path(c.path) and c.kind != "D"
    }

    def needed(change: Change) -> bool:
        if change.kind != "C" or change.path not in dropped_parents:
            return True
        prefix = change.path + "/"
        return any(other.path.startswith(prefix) for other in kept)

    return [c for c in kept if needed(c)]


def container_changes(engine: Engine, container: Container) -> list[Change]:
    return without_init_paths(engine.snapshots.changes(container.snapshot_key))


def changes(engine: Engine, ref: str) -> list[dict[str, Any]] | None:
    """GET /containers/{id}/changes: null when there are none, as docker answers."""
    container = engine.containers.find(ref)
    return [change.to_api() for change in container_changes(engine, container)] or None
