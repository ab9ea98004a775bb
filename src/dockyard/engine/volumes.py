"""Local volumes: directories under `<data-root>/volumes/<name>/_data`, as dockerd's local driver.

A container gets one for each of its Config's volumes (the image's VOLUMEs, `-v /dst`) that no
bind or tmpfs replaces: an anonymous one (a random 64-hex name, labelled
`com.docker.volume.anonymous` as docker 23+ does), or the named one `-v name:/dst` gives, made
when missing. The first time a new volume is mounted, the image's files at its destination are
copied into it (moby's CopyImagePathContent; `nocopy` turns that off). `rm -v` and `--rm`
remove a container's anonymous volumes; named ones stay.

The copy reads the image through an fd of the container's root opened with RESOLVE_IN_ROOT:
an image whose volume path is a symlink to /etc copies its own /etc, never the host's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.copy_archive import openat2

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_META = "meta.json"


@dataclass
class Volume:
    name: str
    mountpoint: str
    created_at: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def inspect(self) -> dict[str, Any]:
        """GET /volumes/{name}, as dockerd's local driver answers."""
        return {
            "CreatedAt": self.created_at,
            "Driver": "local",
            "Labels": self.labels or None,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": None,
            "Scope": "local",
        }


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )


class VolumeStore:
    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self._lock = threading.Lock()

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def get(self, name: str) -> Volume | None:
        try:
            with open(os.path.join(self._dir(name), _META)) as f:
                meta = json.load(f)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return Volume(
            name, os.path.join(self._dir(name), "_data"), meta["CreatedAt"], meta["Labels"]
        )

    def create(self, name: str | None = None, labels: dict[str, str] | None = None) -> Volume:
        """The named volume (made when missing), or a new anonymous one."""
        if name is None:
            name, labels = secrets.token_hex(32), {**(labels or {}), ANONYMOUS_LABEL: ""}
        else:
            check_name(name)
        with self._lock:
            found = self.get(name)
            if found is not None:
                return found
            directory = self._dir(name)
            os.makedirs(os.path.join(directory, "_data"), mode=0o755, exist_ok=True)
            created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            meta = {"CreatedAt": created, "Labels": labels or {}}
            with open(os.path.join(directory, _META + ".tmp"), "w") as f:
                json.dump(meta, f)
            os.replace(os.path.join(directory, _META + ".tmp"), os.path.join(directory, _META))
            return Volume(name, os.path.join(directory, "_data"), created, labels or {})

    def list(self) -> list[Volume]:
        found = (self.get(name) for name in sorted(os.listdir(self.root)))
        return [v for v in found if v is not None]

    def remove(self, name: str, in_use_by: list[str] | None = None) -> None:
        if self.get(name) is None:
            raise NotFound(f"get {name}: no such volume")
        if in_use_by:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(in_use_by)}]")
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def size(self, name: str) -> int:
        total = 0
        for top, _dirs, files in os.walk(os.path.join(self._dir(name), "_data")):
            for n in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(top, n)).st_size
        return total


def copy_image_content(rootfs: str, destination: str, volume_path: str) -> None:
    """Copy what the image has at `destination` into an empty volume, with owners, modes and
    times, and give the volume's root the owner and mode of the image's directory."""
    if os.listdir(volume_path):
        return
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            src = openat2(root_fd, destination, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing there (the runtime makes the mount point)
    finally:
        os.close(root_fd)
    try:
        _copy_dir(src, volume_path)
        st = os.fstat(src)
        os.chown(volume_path, st.st_uid, st.st_gid)
        os.chmod(volume_path, stat.S_IMODE(st.st_mode))
    finally:
        os.close(src)


def _copy_dir(src_fd: int, dst: str) -> None:
    for name in os.listdir(src_fd):
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        target = os.path.join(dst, name)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(target, 0o700)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                _copy_dir(sub, target)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), target)
        elif stat.S_ISREG(mode):
            _copy_file(src_fd, name, target, st.st_size)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(target, mode, st.st_rdev)
        else:
            continue  # sockets are not copied
        os.lchown(target, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(mode):
            os.chmod(target, stat.S_IMODE(mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_file(src_fd: int, name: str, target: str, size: int) -> None:
    fd_in = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    try:
        fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            left = size
            while left > 0:  # the image is on overlay, the volume elsewhere: no reflinks
                sent = os.sendfile(fd_out, fd_in, None, min(left, 1 << 30))
                if sent == 0:
                    break
                left -= sent
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
