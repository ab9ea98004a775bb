"""`dockyard registry serve|gc`: run our OCI registry server in this process.

This is the one command that imports `dockyard.registry` (the server package): the registry is
not part of the engine and needs no daemon, so the CLI runs it directly rather than through the
Engine API. The import happens inside the command, so other commands never pay for it.
"""

from __future__ import annotations

import sys
from typing import Any

from ..command import CLIError, Command, Context
from ..flags import Flag


def _address(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise CLIError(f"invalid --addr {addr!r}: want HOST:PORT", 125)
    return host.strip("[]") or "127.0.0.1", int(port)


def run_serve(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import asyncio
    import logging
    import ssl

    from dockyard.registry.server import Registry, serve

    host, port = _address(opts["addr"])
    if bool(opts["tls-cert"]) != bool(opts["tls-key"]):
        raise CLIError("--tls-cert and --tls-key go together", 125)
    if bool(opts["token-realm"]) != bool(opts["token-key"]):
        raise CLIError("--token-realm and --token-key go together", 125)
    key = None
    if opts["token-key"]:
        with open(opts["token-key"], "rb") as f:
            key = f.read().strip()
    context = None
    if opts["tls-cert"]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(opts["tls-cert"], opts["tls-key"])
    registry = Registry(
        opts["root"],
        htpasswd=opts["htpasswd"] or None,
        token_realm=opts["token-realm"] or None,
        token_key=key,
        token_service=opts["token-service"],
        upload_timeout=float(opts["upload-timeout"]),
        gc_interval=float(opts["gc-interval"]) if opts["gc-interval"] else None,
        gc_grace=float(opts["gc-grace"]),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scheme = "https" if context else "http"

    def ready(bound: int) -> None:
        sys.stderr.write(f"registry listening on {scheme}://{host}:{bound} (root {opts['root']})\n")
        sys.stderr.flush()

    try:
        asyncio.run(serve(registry, host, port, context, ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise CLIError(f"registry: {exc}", 1) from None
    return 0


def run_gc(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.registry.gc import collect
    from dockyard.registry.storage import Storage

    stats = collect(
        Storage(opts["root"]),
        grace=float(opts["grace"]),
        upload_age=float(opts["upload-timeout"]),
        dry_run=bool(opts["dry-run"]),
    )
    for key, value in stats.items():
        sys.stdout.write(f"{key}: {value}\n")
    return 0


_ROOT = Flag("root", None, "string", "/var/lib/dockyard-registry", help="Storage directory")
_UPLOAD_TIMEOUT = Flag(
    "upload-timeout", None, "string", "3600", help="Seconds before an idle upload is removed"
)

SERVE = Command(
    run_serve,
    "[OPTIONS]",
    "Serve an OCI distribution-spec registry",
    [
        Flag("addr", None, "string", "127.0.0.1:5000", help="Address to listen on (HOST:PORT)"),
        _ROOT,
        Flag("htpasswd", None, "string", help="htpasswd file (bcrypt) for basic auth"),
        Flag("token-realm", None, "string", help="Bearer token realm URL (token auth)"),
        Flag("token-key", None, "string", help="File with the HMAC key tokens are signed with"),
        Flag("token-service", None, "string", "dockyard-registry", help="Token service name"),
        Flag("tls-cert", None, "string", help="TLS certificate (PEM)"),
        Flag("tls-key", None, "string", help="TLS private key (PEM)"),
        _UPLOAD_TIMEOUT,
        Flag("gc-interval", None, "string", help="Collect garbage every N seconds while serving"),
        Flag("gc-grace", None, "string", "3600", help="Keep unreferenced blobs this young"),
    ],
    max_args=0,
)

GC = Command(
    run_gc,
    "[OPTIONS]",
    "Delete blobs no manifest references",
    [
        _ROOT,
        Flag("grace", None, "string", "3600", help="Keep unreferenced blobs this young (seconds)"),
        _UPLOAD_TIMEOUT,
        Flag("dry-run", None, "bool", help="Only count what would be deleted"),
    ],
    max_args=0,
)
