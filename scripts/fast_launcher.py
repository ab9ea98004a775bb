"""Rewrite the venv's `dockyard` console script to start the interpreter with `-I -S`.

pip's script runs `site`, which reads the venv's .pth files (setuptools' distutils hack, the
editable install's path): ~5 ms of every `dockyard` command, a tenth of `dockyard run --rm
busybox true` on this machine class. The client needs no .pth: it imports only the standard
library and dockyard (and rich, lazily), so the launcher puts those paths on sys.path itself.
`make install` runs this after pip; running it again is harmless.
"""

from __future__ import annotations

import os
import sys
import sysconfig

import dockyard

LAUNCHER = """#!{python} -IS
# Written by scripts/fast_launcher.py (make install): no site, no .pth files at start-up.
import sys
sys.path[:0] = [{package_root!r}]
sys.path.append({site_packages!r})
from dockyard.cli.main import main
sys.exit(main())
"""


def main() -> None:
    bin_dir = os.path.dirname(sys.executable)
    path = os.path.join(bin_dir, "dockyard")
    text = LAUNCHER.format(
        python=sys.executable,
        package_root=os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__))),
        site_packages=sysconfig.get_paths()["purelib"],
    )
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.chmod(path + ".tmp", 0o755)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
