"""What a storage driver does for the Snapshotter: the file layout of one snapshot.

The Snapshotter (snapshotter.py) owns the lifecycle and the rows; a driver only ever sees a
snapshot's own directory (`base`, holding `fs/`) and the `fs/` directories of its parents,
nearest first. Two drivers: overlay2 (overlay.py: each snapshot holds its own diff, a container
root is an overlay mount) and vfs (vfs.py: each snapshot is a full copy, no overlay needed).
"""

from __future__ import annotations

import ctypes
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import BinaryIO, ClassVar, Literal

from dockyard.snapshot.changes import Change
from dockyard.snapshot.mounts import Mount
from dockyard.snapshot.usage import Usage

_libc = ctypes.CDLL(None, use_errno=True)


def fs_dir(base: str) -> str:
    return os.path.join(base, "fs")


# statfs f_type -> the name docker reports as "Backing Filesystem" (moby's fsutils names)
_FS_NAMES = {
    0xEF53: "extfs",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x01021994: "tmpfs",
    0x794C7630: "overlayfs",
    0x2FC12FC1: "zfs",
    0x6969: "nfs",
    0xF2F52010: "f2fs",
}


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]


def backing_filesystem(path: str) -> str:
    """The kind of file system `path` is on, as `docker info` names it."""
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return "<unknown>"
    return _FS_NAMES.get(buf.f_type & 0xFFFFFFFF, "<unknown>")


class Driver(ABC):
    name: ClassVar[str]
    # how apply_layer must write a layer into prepare_dir()'s directory
    whiteouts: ClassVar[Literal["overlay", "delete"]]

    @abstractmethod
    def create(self, base: str, parent: str | None, *, readonly: bool, mountable: bool) -> None:
        """Fill the new snapshot directory `base` (it exists, empty); `parent` is the parent
        snapshot's fs directory. `mountable`: it will be mounted, not only written into."""

    def committed(self, base: str) -> None:  # noqa: B027 - most drivers have nothing to do
        """The snapshot at `base` was committed: drop what only an active one needs."""

    @abstractmethod
    def mounts(self, base: str, parents: Sequence[str], *, readonly: bool) -> list[Mount]:
        """The mounts that show this (active or view) snapshot's full tree."""

    @abstractmethod
    def diff(self, base: str, parents: Sequence[str], out: BinaryIO) -> None:
        """Write what this snapshot changes in its parent as a layer tar."""

    @abstractmethod
    def changes(self, base: str, parents: Sequence[str]) -> list[Change]:
        """What this snapshot changes in its parent, as `docker diff` lists it."""

    @abstractmethod
    def usage(self, base: str, parents: Sequence[str]) -> Usage:
        """This snapshot's own bytes and inodes, not its parents'."""

    def status(self, root: str) -> list[list[str]]:
        """DriverStatus for `docker info` (docker's vfs reports none)."""
        return []

    @abstractmethod
    def driver_data(self, base: str, parents: Sequence[str]) -> dict[str, str] | None:
        """GraphDriver.Data as docker's driver of the same name reports it (moby's
        GetMetadata; MergedDir is the caller's)."""
