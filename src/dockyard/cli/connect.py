"""Finding the daemon: -H, then DOCKYARD_HOST, then the default socket; start one if none
answers (DESIGN.md principle 4: one command works on a fresh machine)."""

from __future__ import annotations

import os
import sys
import time

from .client import Client, ConnectError

DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
START_TIMEOUT = 30.0


def resolve_host(flag: str | None) -> str:
    host = flag or os.environ.get("DOCKYARD_HOST") or DEFAULT_HOST
    if host.startswith("/"):
        host = "unix://" + host
    return host


def _answers(host: str) -> bool:
    try:
        Client(host).request("GET", "/_ping").read()
    except ConnectError:
        return False
    return True


def start_daemon(host: str) -> None:
    """Start dockyardd in the background for a unix socket, and wait until it answers.

    The daemon's exec-root is the socket's directory (its pid file and log go there); its
    data-root is $DOCKYARD_DATA_ROOT or the default."""
    if not host.startswith("unix://"):
        raise ConnectError("no daemon answers and only a unix socket daemon can be started")
    socket_path = host[len("unix://") :]
    exec_root = os.path.dirname(socket_path) or "."
    data_root = os.environ.get("DOCKYARD_DATA_ROOT") or DEFAULT_DATA_ROOT
    os.makedirs(exec_root, exist_ok=True)
    log_path = os.path.join(exec_root, "dockyardd.log")
    # The console script when installed (so `ps` shows dockyardd), else the module.
    script = os.path.join(os.path.dirname(sys.executable), "dockyardd")
    launcher = (
        [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "dockyard.api.daemon"]
    )
    argv = [
        *launcher,
        "--data-root",
        data_root,
        "--exec-root",
        exec_root,
        "-H",
        host,
    ]
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        pid = os.fork()
        if pid == 0:  # child: a session of its own, so the terminal's signals do not reach it
            try:
                os.setsid()
                os.dup2(devnull.fileno(), 0)
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(host):
            return
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            raise ConnectError(f"the daemon exited at start-up (status {status}); see {log_path}")
        time.sleep(0.05)
    raise ConnectError(f"the daemon did not answer within {START_TIMEOUT:.0f}s; see {log_path}")


def connect(flag: str | None) -> Client:
    """A client that starts a daemon on first use when none answers."""
    return Client(resolve_host(flag), on_unreachable=start_daemon)
