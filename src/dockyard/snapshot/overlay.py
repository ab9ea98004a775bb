"""The overlay2 driver: each snapshot holds only its own diff, in overlayfs' form.

A layer's `fs/` has whiteouts as 0/0 character devices and opaque directories marked with the
`trusted.overlay.opaque` xattr, so the layer dirs stack as they are. A container's snapshot
is an overlay mount: the image's layer dirs as lowerdir (top first), its own `fs/` as upperdir
and `work/` as workdir; its `fs/` then is its diff, ready to be written out or committed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import BinaryIO

from dockyard.image.layer import write_diff_overlay
from dockyard.snapshot.changes import Change, is_whiteout, overlay_changes
from dockyard.snapshot.driver import Driver, backing_filesystem, fs_dir
from dockyard.snapshot.mounts import (
    Mount,
    MountError,
    bind_mount,
    mount_all,
    overlay_mount,
    unmount,
)
from dockyard.snapshot.usage import Usage, tree_counts


def work_dir(base: str) -> str:
    return os.path.join(base, "work")


class OverlayDriver(Driver):
    name = "overlay2"
    whiteouts = "overlay"

    def create(self, base: str, parent: str | None, *, readonly: bool, mountable: bool) -> None:
        os.mkdir(fs_dir(base), 0o755)
        if mountable and not readonly and parent is not None:  # no parent: a bind mount, no overlay
            os.mkdir(work_dir(base), 0o700)

    def committed(self, base: str) -> None:
        shutil.rmtree(work_dir(base), ignore_errors=True)

    def mounts(self, base: str, parents: Sequence[str], *, readonly: bool) -> list[Mount]:
        if readonly:
            if len(parents) > 1:  # a lower-only overlay needs two layers
                return [overlay_mount(parents)]
            return [bind_mount(parents[0] if parents else fs_dir(base), readonly=True)]
        if not parents:
            return [bind_mount(fs_dir(base), readonly=False)]
        work = work_dir(base)
        if not os.path.isdir(work):  # prepared for writing into, now mounted after all
            os.makedirs(work, 0o700, exist_ok=True)
        # A volatile mount leaves work/incompat/volatile behind, and overlay refuses to mount
        # that work dir again; we only mount what is not mounted, so it is stale here.
        shutil.rmtree(os.path.join(work, "work", "incompat"), ignore_errors=True)
        return [overlay_mount(parents, fs_dir(base), work)]

    def diff(self, base: str, parents: Sequence[str], out: BinaryIO) -> None:
        write_diff_overlay(fs_dir(base), out)

    def changes(self, base: str, parents: Sequence[str]) -> list[Change]:
        return overlay_changes(parents, fs_dir(base))

    def usage(self, base: str, parents: Sequence[str]) -> Usage:
        return tree_counts(fs_dir(base))

    def status(self, root: str) -> list[list[str]]:
        return [
            ["Backing Filesystem", backing_filesystem(root)],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ]

    def driver_data(self, base: str, parents: Sequence[str]) -> dict[str, str] | None:
        data = {"UpperDir": fs_dir(base), "WorkDir": work_dir(base)}
        if parents:
            data["LowerDir"] = ":".join(parents)
        return data


def probe_overlay(root: str) -> str | None:
    """Try an overlay mount in a temp dir under `root`, with a whiteout: None when it works,
    else why not (the daemon then falls back to vfs)."""
    if os.geteuid() != 0:
        return "mounting needs root"
    os.makedirs(root, exist_ok=True)
    base = tempfile.mkdtemp(prefix=".probe-", dir=root)
    try:
        lower, upper, work, merged = (os.path.join(base, d) for d in ("l", "u", "w", "m"))
        for d in (lower, upper, work, merged):
            os.mkdir(d)
        with open(os.path.join(lower, "f"), "wb"):
            pass
        mount_all([overlay_mount([lower], upper, work)], merged)
        try:
            os.unlink(os.path.join(merged, "f"))
            if not is_whiteout(os.lstat(os.path.join(upper, "f"))):
                return f"overlayfs on {root} does not make whiteouts"
        finally:
            unmount(merged)
    except MountError as e:
        return e.message
    except OSError as e:
        return f"overlayfs on {root}: {e.strerror or e}"
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return None
