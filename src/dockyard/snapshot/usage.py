"""What a snapshot's own files take: bytes and inodes."""

from __future__ import annotations

import os


class Usage(int):
    """A snapshot's own usage: the int value is its bytes (docker's directory.Size: the sizes
    of its non-directory entries, each inode once), `inodes` the entries it holds. An int, so
    that a caller wanting only the size can take it as one."""

    inodes: int

    def __new__(cls, size: int, inodes: int = 0) -> Usage:
        self = super().__new__(cls, size)
        self.inodes = inodes
        return self

    @property
    def size(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"Usage(size={int(self)}, inodes={self.inodes})"


def tree_counts(path: str) -> Usage:
    """Bytes of the non-directory entries under path and the number of entries (directories
    included, the root not), each inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = inodes = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    inodes += 1
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we walk (a running container's upper dir)
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
                inodes += 1
    return Usage(total, inodes)


def tree_usage(path: str) -> int:
    """Bytes of the non-directory entries under path, each inode counted once (docker's
    directory.Size, which is what it reports as a layer's size)."""
    return int(tree_counts(path))
