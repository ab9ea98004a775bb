"""`dockyard`: the client. Parses docker's command line and talks to the daemon's Engine API.

Commands are looked up in tables of "module:NAME" strings and imported on demand, so a command
loads only what it uses (start-up time is measured; see flags.py and client.py)."""

from __future__ import annotations

import sys

from .command import BIN, CLIError, Command, Context
from .flags import Flag, FlagError, HelpRequested, flag_error_text, parse, usage_text

# Top-level commands (docker's shortcuts) and management commands with their subcommands.
TOP = {
    "images": "images:LIST",
    "tag": "images:TAG",
    "rmi": "images:REMOVE",
    "history": "images:HISTORY",
    "build": "build:BUILD",
    "save": "archives:SAVE",
    "load": "archives:LOAD",
    "import": "archives:IMPORT",
    "pull": "distribution:PULL",
    "push": "distribution:PUSH",
    "login": "distribution:LOGIN",
    "logout": "distribution:LOGOUT",
    "inspect": "containers:INSPECT_ANY",
    "version": "system:VERSION",
    "info": "system:INFO",
    "run": "run:RUN",
    "create": "run:CREATE",
    "start": "run:START",
    "attach": "run:ATTACH",
    "ps": "containers:PS",
    "stop": "containers:STOP",
    "restart": "containers:RESTART",
    "kill": "containers:KILL",
    "rm": "containers:RM",
    "pause": "containers:PAUSE",
    "unpause": "containers:UNPAUSE",
    "wait": "containers:WAIT",
    "rename": "containers:RENAME",
    "logs": "containers:LOGS",
    "exec": "execs:EXEC",
    "cp": "copy:CP",
    "export": "container_files:EXPORT",
    "diff": "container_files:DIFF",
    "commit": "container_files:COMMIT",
    "top": "container_files:TOP",
    "stats": "container_files:STATS",
}
MANAGEMENT = {
    "image": {
        "build": "build:BUILD",
        "history": "images:HISTORY",
        "import": "archives:IMPORT",
        "inspect": "images:INSPECT",
        "list": "images:LIST",
        "load": "archives:LOAD",
        "ls": "images:LIST",
        "prune": "images:PRUNE",
        "pull": "distribution:PULL",
        "push": "distribution:PUSH",
        "remove": "images:REMOVE",
        "rm": "images:REMOVE",
        "save": "archives:SAVE",
        "tag": "images:TAG",
    },
    "system": {"df": "system:DF", "info": "system:INFO"},
    "volume": {
        "create": "volumes:CREATE",
        "inspect": "volumes:INSPECT",
        "list": "volumes:LIST",
        "ls": "volumes:LIST",
        "prune": "volumes:PRUNE",
        "remove": "volumes:REMOVE",
        "rm": "volumes:REMOVE",
    },
    "registry": {"serve": "registry:SERVE", "gc": "registry:GC"},
    "container": {
        "attach": "run:ATTACH",
        "commit": "container_files:COMMIT",
        "cp": "copy:CP",
        "create": "run:CREATE",
        "diff": "container_files:DIFF",
        "exec": "execs:EXEC",
        "export": "container_files:EXPORT",
        "inspect": "containers:INSPECT",
        "kill": "containers:KILL",
        "list": "containers:PS",
        "logs": "containers:LOGS",
        "ls": "containers:PS",
        "pause": "containers:PAUSE",
        "prune": "container_files:PRUNE",
        "ps": "containers:PS",
        "remove": "containers:RM",
        "rename": "containers:RENAME",
        "restart": "containers:RESTART",
        "rm": "containers:RM",
        "run": "run:RUN",
        "start": "run:START",
        "stats": "container_files:STATS",
        "stop": "containers:STOP",
        "top": "container_files:TOP",
        "unpause": "containers:UNPAUSE",
        "wait": "containers:WAIT",
    },
}
DESCRIPTIONS = {
    "container": "Manage containers",
    "image": "Manage images",
    "registry": "Run an OCI registry server",
    "system": "Manage Dockyard",
    "volume": "Manage volumes",
}
GLOBAL_FLAGS = [
    Flag("debug", "D", "bool", help="Enable debug mode"),
    Flag("host", "H", "list", help="Daemon socket to connect to", metavar="list"),
    Flag(
        "log-level",
        "l",
        "string",
        "info",
        help='Set the logging level ("debug", "info", "warn", "error", "fatal")',
    ),
    Flag("version", "v", "bool", help="Print version information and quit"),
]


def _load(target: str) -> Command:
    module, _, name = target.partition(":")
    imported = __import__(f"dockyard.cli.commands.{module}", fromlist=[name])
    return getattr(imported, name)


def _top_help() -> str:
    lines = [f"\nUsage:  {BIN} [OPTIONS] COMMAND\n", "A container engine that speaks Docker\n"]
    lines.append("Management Commands:")
    lines.extend(f"  {name:<11} {DESCRIPTIONS[name]}" for name in sorted(MANAGEMENT))
    lines.append("\nCommands:")
    for name in sorted(TOP):
        lines.append(f"  {name:<11} {_load(TOP[name]).description.splitlines()[0]}")
    lines.append("\nGlobal Options:")
    lines.append(
        usage_text(BIN, "", "", GLOBAL_FLAGS, width=100).split("Options:\n", 1)[1].rstrip()
    )
    lines.append(f"\nRun '{BIN} COMMAND --help' for more information on a command.")
    return "\n".join(lines) + "\n"


def _management_help(group: str) -> str:
    subs = [
        (name, _load(t).description.splitlines()[0])
        for name, t in sorted(MANAGEMENT[group].items())
    ]
    return usage_text(f"{BIN} {group}", "", DESCRIPTIONS[group], [], subcommands=subs)


def run(argv: list[str]) -> int:
    try:
        options, rest = parse(GLOBAL_FLAGS, argv, interspersed=False)
    except HelpRequested:
        sys.stdout.write(_top_help())
        return 0
    except FlagError as exc:
        sys.stderr.write(flag_error_text(exc.message, BIN, "[OPTIONS] COMMAND") + "\n")
        return 125
    if options["version"]:
        from dockyard import __version__

        sys.stdout.write(f"Dockyard version {__version__}\n")
        return 0
    hosts: list[str] = options["host"]  # type: ignore[assignment]
    if len(hosts) > 1:
        sys.stderr.write("Specify only one -H\n")
        return 1
    if not rest:
        sys.stdout.write(_top_help())
        return 0
    name, args = rest[0], rest[1:]
    path = f"{BIN} {name}"
    if name in MANAGEMENT:
        if not args or args[0] in ("-h", "--help"):
            sys.stdout.write(_management_help(name))
            return 0
        target = MANAGEMENT[name].get(args[0])
        if target is None:
            sys.stderr.write(
                f"{BIN}: unknown command: {path} {args[0]}\n\nUsage:  {path}\n\n"
                f"Run '{path} --help' for more information\n"
            )
            return 1
        path, args = f"{path} {args[0]}", args[1:]
    elif name in TOP:
        target = TOP[name]
    else:
        sys.stderr.write(
            f"{BIN}: unknown command: {BIN} {name}\n\nRun '{BIN} --help' for more information\n"
        )
        return 1
    command = _load(target)
    try:
        values, positionals = parse(command.flags, args, interspersed=command.interspersed)
    except HelpRequested as exc:
        if exc.shorthand:
            sys.stdout.write("Flag shorthand -h has been deprecated, use --help\n")
        sys.stdout.write(usage_text(path, command.usage, command.description, command.flags))
        return 0
    except FlagError as exc:
        sys.stderr.write(flag_error_text(exc.message, path, command.usage) + "\n")
        return 125
    context = Context(hosts[0] if hosts else None, path)
    try:
        command.check_args(path, positionals)
        return command.run(context, values, positionals) or 0
    except CLIError as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.status
    finally:
        sys.stdout.flush()


def main() -> int:
    from .client import APIError, ConnectError

    try:
        return run(sys.argv[1:])
    except APIError as exc:
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
        return 1
    except ConnectError as exc:
        from .connect import resolve_host

        sys.stderr.write(
            f"Cannot connect to the Dockyard daemon at {resolve_host(None)}. "
            f"Is the dockyard daemon running? ({exc})\n"
        )
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
