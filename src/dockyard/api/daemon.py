"""`dockyardd`: the daemon. Owns the data-root and serves the Engine API on a unix socket."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from aiohttp import web

from dockyard import __version__
from dockyard.engine.engine import Engine
from dockyard.errors import DockyardError
from dockyard.runtime import unixsock

from .server import make_app

DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
log = logging.getLogger("dockyardd")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dockyardd", description="The Dockyard daemon")
    parser.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="Root of persisted state")
    parser.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT, help="Root of runtime state")
    parser.add_argument(
        "-H", "--host", action="append", default=[], help="Daemon socket(s) to listen on"
    )
    parser.add_argument(
        "-s", "--storage-driver", default=None, help="Storage driver to use (overlay2, vfs)"
    )
    parser.add_argument("-p", "--pidfile", default="", help="Path to use for the daemon PID file")
    parser.add_argument(
        "-l", "--log-level", default="info", choices=["debug", "info", "warn", "error", "fatal"]
    )
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        help="Enable insecure registry communication (plain HTTP)",
    )
    parser.add_argument(
        "--registry-mirror", action="append", default=[], help="Preferred Docker registry mirror"
    )
    parser.add_argument("-v", "--version", action="store_true", help="Print version and quit")
    return parser.parse_args(argv)


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


async def serve(args: argparse.Namespace) -> None:
    engine = Engine(args.data_root, args.storage_driver, args.exec_root)
    engine.registry_options.insecure.update(args.insecure_registry)
    engine.registry_options.mirrors.extend(args.registry_mirror)
    hosts = args.host or [f"unix://{os.path.join(args.exec_root, 'dockyard.sock')}"]
    runner = web.AppRunner(
        make_app(engine), access_log=None, handle_signals=False, handler_cancellation=True
    )
    await runner.setup()
    sockets: list[str] = []
    pidfile = args.pidfile or os.path.join(args.exec_root, "dockyardd.pid")
    try:
        for host in hosts:
            if host.startswith("unix://"):
                path = host[len("unix://") :]
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                if os.path.exists(path):
                    if _socket_answers(path):
                        raise DockyardError(f"another daemon is already listening on {path}")
                    os.unlink(path)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                unixsock.bind(listener, path)  # long paths too (aiohttp would refuse them)
                await web.SockSite(runner, listener).start()
                os.chmod(path, 0o660)
                sockets.append(path)
            elif host.startswith("tcp://"):
                address, _, port = host[len("tcp://") :].rpartition(":")
                await web.TCPSite(runner, address or "127.0.0.1", int(port)).start()
            else:
                raise DockyardError(f"unsupported host: {host} (use unix:// or tcp://)")
        with open(pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
        log.info("dockyardd %s listening on %s", __version__, ", ".join(hosts))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await asyncio.get_running_loop().run_in_executor(None, engine.shutdown)
    finally:
        await runner.cleanup()
        for path in sockets:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            with open(pidfile) as f:
                ours = f.read().strip() == str(os.getpid())
            if ours:
                os.unlink(pidfile)
        except OSError:
            pass
        engine.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        print(f"Dockyard version {__version__}")
        return 0
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.makedirs(args.exec_root, mode=0o700, exist_ok=True)
    try:
        asyncio.run(serve(args))
    except DockyardError as exc:
        print(f"dockyardd: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
