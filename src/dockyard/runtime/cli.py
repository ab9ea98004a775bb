"""`dockyard-runtime`: the OCI runtime command line (runc's contract) over runtime/linux.py.

    dockyard-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND …
      create [--bundle B] [--pid-file F] [--console-socket S] [--preserve-fds N] ID
      start ID
      state ID                      the runtime-spec state JSON on stdout
      kill [--all] ID [SIGNAL]      SIGNAL as TERM, SIGTERM or 15 (default TERM)
      delete [--force] ID
      run [--bundle B] [--pid-file F] [--console-socket S] [--detach] [--preserve-fds N] ID
      exec [--process FILE | COMMAND…] [--tty] [--console-socket S] [--detach] [--pid-file F]
           [--cwd D] [--env K=V]… [--user UID[:GID]] [--cap CAP]… [--no-new-privs] ID
      pause ID | resume ID | ps ID | list | events --stats ID

`create` returns once the container is created; its init stays blocked, reparented to whoever
reaps orphans, until `start`. Errors go to stderr and, with --log, to that file in the format
containerd reads (`--log-format json`: one {"level","msg","time"} object a line). Flags runc
accepts that mean nothing here (--systemd-cgroup, --debug, --rootless, --criu) are ignored.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty
from datetime import UTC, datetime
from typing import Any

from . import linux, process
from .linux import ContainerError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard-runtime", description="Dockyard's OCI runtime")
    p.add_argument("--root", default=linux.DEFAULT_STATE_ROOT)
    p.add_argument("--log")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--cgroup-parent", default="/dockyard")
    for flag in ("--systemd-cgroup", "--debug", "--rootless", "--no-pivot", "--no-new-keyring"):
        p.add_argument(flag, nargs="?", const=True, help=argparse.SUPPRESS)
    p.add_argument("--criu", help=argparse.SUPPRESS)
    p.add_argument(
        "--version", "-v", action="version", version="dockyard-runtime 0.1.0\nspec: 1.2.0"
    )
    sub = p.add_subparsers(dest="command", required=True)

    def creating(name: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("--no-pivot", action="store_true", help=argparse.SUPPRESS)
        c.add_argument("--no-new-keyring", action="store_true", help=argparse.SUPPRESS)
        c.add_argument("id", nargs="?")
        return c

    creating("create")
    run = creating("run")
    run.add_argument("--detach", "-d", action="store_true")
    for name in ("start", "state", "pause", "resume", "ps"):
        sub.add_parser(name).add_argument("id", nargs="?")
    kill = sub.add_parser("kill")
    kill.add_argument("--all", "-a", action="store_true")
    kill.add_argument("id", nargs="?")
    kill.add_argument("signal", nargs="?", default="TERM")
    delete = sub.add_parser("delete")
    delete.add_argument("--force", "-f", action="store_true")
    delete.add_argument("id", nargs="?")
    sub.add_parser("list")
    events = sub.add_parser("events")
    events.add_argument("--stats", action="store_true")
    events.add_argument("id", nargs="?")
    ex = sub.add_parser("exec")
    ex.add_argument("--process", "-p")
    ex.add_argument("--tty", "-t", action="store_true")
    ex.add_argument("--console-socket")
    ex.add_argument("--detach", "-d", action="store_true")
    ex.add_argument("--pid-file")
    ex.add_argument("--cwd")
    ex.add_argument("--env", "-e", action="append", default=[])
    ex.add_argument("--user", "-u")
    ex.add_argument("--cap", "-c", action="append", default=[])
    ex.add_argument("--no-new-privs", action="store_true")
    ex.add_argument("--preserve-fds", type=int, default=0)
    ex.add_argument("id", nargs="?")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    return p


def parse_signal(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ContainerError(f"unknown signal {text!r}") from None


def _need_id(args: argparse.Namespace) -> str:
    if not args.id:
        raise ContainerError(f'"{args.command}" requires a container id')
    return str(args.id)


def _send_console(console: int, path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        process.send_fd(s, console, b"/dev/ptmx")


def _create(args: argparse.Namespace, cid: str) -> linux.Container:
    extra = list(range(3, 3 + args.preserve_fds))
    c = linux.create(
        os.path.abspath(args.bundle),
        cid,
        args.root,
        extra_fds=extra,
        cgroup_parent=args.cgroup_parent,
        pid_file=args.pid_file,
    )
    if c.console is not None:
        if args.console_socket:
            try:
                _send_console(c.console, args.console_socket)
            except OSError as e:
                c.delete(force=True)
                raise ContainerError(f"console socket {args.console_socket}: {e}") from e
            os.close(c.console)
            c.console = None
        elif args.command == "create":
            c.delete(force=True)
            raise ContainerError(
                "cannot allocate tty if runc will detach without setting console socket"
            )
    return c


def _proxy_terminal(console: int, pid: int) -> None:
    """`run` with a terminal and no console socket: relay our terminal to the container's."""
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        _copy_winsize(console)
        # A resize of our terminal resizes the container's (the kernel then signals it).
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(console))
    try:
        pidfd = os.pidfd_open(pid)
        fds = [console, pidfd] + ([0] if saved is not None or not os.isatty(0) else [])
        while True:
            ready = select.select(fds, [], [])[0]
            if console in ready:
                try:
                    data = os.read(console, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(console, data)
                else:
                    fds.remove(0)
            if pidfd in ready and console not in ready:
                return
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _copy_winsize(console: int) -> None:
    try:
        fcntl.ioctl(console, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _our_console_size() -> dict[str, int] | None:
    """Our terminal's size, for a container pty we will relay to (set before its exec)."""
    try:
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
    except OSError:
        return None
    return {"height": rows, "width": cols} if rows and cols else None


def _forward_signals(pid: int) -> None:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(sig, forward)


def _exec_process(args: argparse.Namespace, c: linux.Container) -> dict[str, Any]:
    if args.process:
        with open(args.process) as f:
            return dict(json.load(f))
    if not args.argv:
        raise ContainerError("exec needs a command or --process")
    proc = dict(c.record.process)
    proc["args"] = list(args.argv)
    proc["terminal"] = args.tty
    if args.cwd:
        proc["cwd"] = args.cwd
    if args.env:
        proc["env"] = list(proc.get("env") or []) + args.env
    if args.user:
        uid, _, gid = args.user.partition(":")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.cap:
        caps = dict(proc.get("capabilities") or {})
        for key in ("bounding", "effective", "permitted"):
            caps[key] = list(caps.get(key) or []) + args.cap
        proc["capabilities"] = caps
    if args.no_new_privs:
        proc["noNewPrivileges"] = True
    if args.tty and not args.console_socket and "consoleSize" not in proc:
        size = _our_console_size()
        if size:
            proc["consoleSize"] = size
    return proc


def run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "list":
        rows = []
        for name in sorted(os.listdir(args.root)) if os.path.isdir(args.root) else []:
            try:
                rows.append(linux.load(name, args.root).state())
            except ContainerError:
                continue
        print("ID\tPID\tSTATUS\tBUNDLE")
        for s in rows:
            print(f"{s['id']}\t{s.get('pid', 0)}\t{s['status']}\t{s['bundle']}")
        return 0
    cid = _need_id(args)
    if cmd in ("create", "run"):
        c = _create(args, cid)
        if cmd == "create":
            return 0
        if args.detach:
            if c.console is not None:
                c.delete(force=True)
                raise ContainerError(
                    "cannot allocate tty if runc will detach without setting console socket"
                )
            c.start()
            return 0
        _forward_signals(c.pid)
        try:
            if c.console is not None:
                _copy_winsize(c.console)  # before the program starts and asks for it
            c.start()
            if c.console is not None:
                _proxy_terminal(c.console, c.pid)
            code = c.wait()
        finally:
            if os.path.isdir(c.state_dir):
                c.delete(force=True)
        return code or 0
    if cmd == "exec":
        c = linux.load(cid, args.root)
        proc = _exec_process(args, c)
        p = linux.exec_process(c, proc, extra_fds=list(range(3, 3 + args.preserve_fds)))
        if args.pid_file:
            with open(args.pid_file + ".tmp", "w") as f:
                f.write(str(p.pid))
            os.rename(args.pid_file + ".tmp", args.pid_file)
        if p.console is not None and args.console_socket:
            _send_console(p.console, args.console_socket)
            os.close(p.console)
            p.console = None
        if args.detach:
            return 0
        _forward_signals(p.pid)
        if p.console is not None:
            _proxy_terminal(p.console, p.pid)
        return p.wait() or 0
    c = linux.load(cid, args.root)
    if cmd == "start":
        c.start()
    elif cmd == "state":
        print(json.dumps(c.state(), indent=2))
    elif cmd == "kill":
        c.kill(parse_signal(args.signal), all=args.all)
    elif cmd == "delete":
        for warning in c.delete(force=args.force):
            print(f"warning: {warning}", file=sys.stderr)
    elif cmd == "pause":
        c.pause()
    elif cmd == "resume":
        c.resume()
    elif cmd == "ps":
        print(json.dumps(c.pids()))
    elif cmd == "events":
        print(json.dumps({"type": "stats", "id": cid, "data": c.stats()}))
    return 0


def _log_error(args: argparse.Namespace | None, message: str) -> None:
    print(f"dockyard-runtime: {message}", file=sys.stderr)
    if args is None or not args.log:
        return
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f'time="{now}" level=error msg={json.dumps(message)}'
    try:
        with open(args.log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = _parser().parse_args(argv)
        return run(args)
    except ContainerError as e:
        _log_error(args, e.message)
        return 1
    except OSError as e:
        _log_error(args, str(e))
        return 1
    except (ValueError, KeyError) as e:  # a corrupt state file, a malformed config.json
        _log_error(args, f"{type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
