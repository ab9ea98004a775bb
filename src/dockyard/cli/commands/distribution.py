"""pull, push, login, logout: images to and from registries, and the credentials they need.

Credentials live in docker's config.json (`$DOCKER_CONFIG`, default ~/.docker) and go to the
daemon in the X-Registry-Auth header, as the docker CLI sends them. Progress: a bar per layer
on a terminal (rich, imported only then), docker's plain status lines otherwise.
"""

from __future__ import annotations

import sys

from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HUB_KEY = "https://index.docker.io/v1/"


def _parse(name: str) -> Any:
    from dockyard import reference

    try:
        return reference.parse_normalized(name)
    except reference.InvalidReference as exc:
        raise CLIError(str(exc)) from None


def _auth_header(domain: str) -> dict[str, str]:
    import base64
    import json

    from dockyard.distribution import credentials

    key = HUB_KEY if domain == "docker.io" else domain
    try:
        found = credentials.get(key)
    except credentials.CredentialsError as exc:
        raise CLIError(str(exc)) from None
    doc = {"username": found[0], "password": found[1]} if found else {}
    doc["serveraddress"] = key
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()}


def show_progress(ctx: Context, response: Any, *, quiet: bool = False) -> None:
    """docker's jsonmessage display; an `error` line ends the command with its message."""
    import json

    tty = not quiet and ctx.out.isatty()
    bars = _Bars() if tty else None
    try:
        for line in response.lines():
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("error"):
                raise CLIError(message["error"])
            if quiet or "aux" in message:
                continue
            if bars is not None:
                bars.update(message)
                continue
            detail = message.get("progressDetail") or {}
            if detail.get("total") or detail.get("current"):
                continue  # no bars off a terminal, as docker
            text = message.get("status", "")
            ident = message.get("id")
            ctx.out.write(f"{ident}: {text}\n" if ident else f"{text}\n")
    finally:
        if bars is not None:
            bars.stop()


class _Bars:
    """One rich progress bar per layer ID; plain lines for messages without an ID."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.fields[ident]}: {task.description:<20}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        self.progress.start()
        self.tasks: dict[str, Any] = {}

    def update(self, message: dict[str, Any]) -> None:
        ident = message.get("id")
        text = message.get("status", "")
        if not ident:
            self.progress.console.print(text, highlight=False)
            return
        detail = message.get("progressDetail") or {}
        task = self.tasks.get(ident)
        if task is None:
            task = self.progress.add_task(text, ident=ident, total=None)
            self.tasks[ident] = task
        if detail.get("total"):
            self.progress.update(
                task, description=text, completed=detail.get("current", 0), total=detail["total"]
            )
        else:
            self.progress.update(task, description=text)

    def stop(self) -> None:
        self.progress.stop()


def run_pull(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    ref = _parse(args[0])
    if opts["all-tags"]:
        raise CLIError("--all-tags is not supported by this client")
    if ref.tag is None and ref.digest is None:
        if not opts["quiet"]:
            ctx.print("Using default tag: latest")
        ref = ref.with_default_tag()
    query = {
        "fromImage": ref.name,
        "tag": ref.digest or ref.tag,
        "platform": opts["platform"] or None,
    }
    response = ctx.client.request("POST", "/images/create", query, headers=_auth_header(ref.domain))
    show_progress(ctx, response, quiet=opts["quiet"])
    ctx.print(str(ref))
    return 0


PULL = Command(
    run_pull,
    "[OPTIONS] NAME[:TAG|@DIGEST]",
    "Download an image from a registry",
    [
        Flag("all-tags", "a", "bool", help="Download all tagged images in the repository"),
        Flag("disable-content-trust", None, "bool", True, help="Skip image verification"),
        Flag(
            "platform", None, "string", "", help="Set platform if server is multi-platform capable"
        ),
        Flag("quiet", "q", "bool", help="Suppress verbose output"),
    ],
    min_args=1,
    max_args=1,
)


def run_push(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    ref = _parse(args[0])
    if ref.digest:
        raise CLIError("cannot push a digest reference")
    tag = ref.tag or ""
    if not tag and not opts["all-tags"]:
        if not opts["quiet"]:
            ctx.print("Using default tag: latest")
        tag = "latest"
    elif tag and opts["all-tags"]:
        raise CLIError("tag can't be used with --all-tags/-a")
    response = ctx.client.request(
        "POST",
        f"/images/{ref.name}/push",
        {"tag": tag or None},
        headers=_auth_header(ref.domain),
    )
    show_progress(ctx, response, quiet=opts["quiet"])
    if opts["quiet"]:
        ctx.print(str(ref.with_tag(tag)) if tag else ref.name)
    return 0


PUSH = Command(
    run_push,
    "[OPTIONS] NAME[:TAG]",
    "Upload an image to a registry",
    [
        Flag("all-tags", "a", "bool", help="Push all tags of an image to the repository"),
        Flag("disable-content-trust", None, "bool", True, help="Skip image signing"),
        Flag("platform", None, "string", "", help="Push a platform-specific manifest"),
        Flag("quiet", "q", "bool", help="Suppress verbose output"),
    ],
    min_args=1,
    max_args=1,
)


def _server_key(server: str) -> str:
    from dockyard.distribution.auth import config_key

    return config_key(server) if server else HUB_KEY


def run_login(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import json

    from dockyard.distribution import credentials

    server = _server_key(args[0] if args else "")
    username: str = opts["username"]
    password: str = opts["password"]
    if password:
        ctx.err.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if opts["password-stdin"]:
        if password:
            raise CLIError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CLIError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        stored = credentials.get(server)
        if stored and not password:
            username, password = stored
        else:
            if not sys.stdin.isatty():
                raise CLIError("Error: Cannot perform an interactive login from a non TTY device")
            username = input("Username: ").strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CLIError("Error: Username and password are required")
    body = json.dumps({"username": username, "password": password, "serveraddress": server})
    ctx.client.request(
        "POST", "/auth", body=body.encode(), headers={"Content-Type": "application/json"}
    ).read()
    path = credentials.store(server, username, password)
    ctx.err.write(
        f"WARNING! Your credentials are stored unencrypted in '{path}'.\n"
        "Configure a credential helper to remove this warning. See\n"
        "https://docs.docker.com/go/credential-store/\n\n"
    )
    ctx.print("Login Succeeded")
    return 0


LOGIN = Command(
    run_login,
    "[OPTIONS] [SERVER]",
    "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.",
    [
        Flag("password", "p", "string", "", help="Password or Personal Access Token (PAT)"),
        Flag("password-stdin", None, "bool", help="Take the Password or PAT from stdin"),
        Flag("username", "u", "string", "", help="Username"),
    ],
    max_args=1,
)


def run_logout(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.distribution import credentials

    server = _server_key(args[0] if args else "")
    if not credentials.erase(server):
        ctx.print(f"Not logged in to {args[0] if args else server}")
        return 0
    ctx.print(f"Removing login credentials for {server}")
    return 0


LOGOUT = Command(
    run_logout,
    "[SERVER]",
    "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
    [],
    max_args=1,
)
