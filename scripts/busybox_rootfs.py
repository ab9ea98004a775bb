#!/usr/bin/env python3
"""Write a busybox root filesystem as a tar, offline, from Debian's busybox-static binary.

The result is reproducible (fixed order, owners and times) so the layer's diffID is the same on
every machine with the same busybox. Usage: busybox_rootfs.py [OUT.tar|-] [--busybox PATH]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile

DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700}
DIRS |= {"sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755}
DIRS |= {"usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755, "var/www": 0o755}
FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}


def _is_static(path: str) -> bool:
    """A static ELF has no PT_INTERP program header; a dynamic busybox would not run alone."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], "little") != 3
        for i in range(phnum)
    )


def write_rootfs(out: io.BufferedIOBase, busybox: str = "/bin/busybox") -> None:
    if not os.path.exists(busybox):
        sys.exit(
            f"{busybox} not found: install Debian's busybox-static (apt-get install busybox-static)"
        )
    if not _is_static(busybox):
        sys.exit(f"{busybox} is not statically linked: install busybox-static")
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    mtime = int(os.stat(busybox).st_mtime)

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type, entry.mode, entry.mtime = kind, mode, mtime
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = "root"
        return entry

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(DIRS):
            tar.addfile(info(name + "/", tarfile.DIRTYPE, DIRS[name]))
        entry = info("bin/busybox", tarfile.REGTYPE, 0o755)
        entry.size = os.stat(busybox).st_size
        with open(busybox, "rb") as f:
            tar.addfile(entry, f)
        for name, text in sorted(FILES.items()):
            data = text.encode()
            entry = info(name, tarfile.REGTYPE, 0o644)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
        for path in sorted(set(applets.stdout.split())):
            if path in ("bin/busybox",) or os.path.dirname(path) not in DIRS:
                continue
            link = info(path, tarfile.SYMTYPE, 0o777)
            link.linkname = "/bin/busybox"
            tar.addfile(link)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="-")
    parser.add_argument("--busybox", default="/bin/busybox")
    args = parser.parse_args()
    if args.out == "-":
        write_rootfs(sys.stdout.buffer, args.busybox)
    else:
        with open(args.out + ".tmp", "wb") as f:
            write_rootfs(f, args.busybox)
        os.rename(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
