"""Typed Dockerfile instructions (pure): what each instruction means, before expansion.

Mirrors BuildKit's frontend/dockerfile/instructions (parse.go, bflag.go): each instruction
declares the builder flags it takes, checks its argument count, and becomes a frozen dataclass
carrying its source lines and text. The order of checks (arguments before flags for COPY, flags
first for others) follows BuildKit, since it decides which error a bad line reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dockyard.build.flags import BFlags
from dockyard.build.mounts import Mount, parse_mount
from dockyard.build.parser import Heredoc, Node, parse_heredoc
from dockyard.errors import InvalidParameter
from dockyard.gostrconv import go_quote
from dockyard.image.changes import parse_duration

__all__ = [
    "Add",
    "Arg",
    "ArgDef",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "HealthConfig",
    "Healthcheck",
    "InlineFile",
    "Instruction",
    "KeyValue",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "Shell",
    "SourceContent",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "parse_instruction",
]

NAMES = (
    "add arg cmd copy entrypoint env expose from healthcheck label maintainer onbuild run shell "
    "stopsignal user volume workdir"
).split()
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Instruction:
    name: str  # the keyword in lower case ("run")
    original: str  # the instruction's source text, trimmed (continuations joined)
    start_line: int
    end_line: int


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    no_delim: bool = False  # written as legacy `ENV key value`


@dataclass(frozen=True)
class ArgDef:
    key: str
    value: str | None = None  # None: `ARG name` without a default


@dataclass(frozen=True)
class InlineFile:
    """A heredoc attached to RUN: `data` as written; `chomp` means strip leading tabs."""

    name: str
    data: str
    chomp: bool = False


@dataclass(frozen=True)
class SourceContent:
    """A heredoc source of COPY/ADD: written to a file named `path` (tabs already chomped)."""

    path: str
    data: str
    expand: bool = True


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    base_name: str
    stage_name: str = ""  # lower-cased `AS name`
    platform: str = ""


@dataclass(frozen=True, kw_only=True)
class _CommandLine(Instruction):
    cmd: tuple[str, ...] | None  # shell form: one string; exec form: the JSON array
    prepend_shell: bool  # shell form: run through the SHELL
    files: tuple[InlineFile, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Run(_CommandLine):
    mount_specs: tuple[str, ...] = ()  # the --mount values, parsed at expansion time
    mounts: tuple[Mount, ...] = ()  # filled in by expansion (StageScope.expand)
    network: str = "default"
    security: str = "sandbox"


@dataclass(frozen=True, kw_only=True)
class Cmd(_CommandLine):
    pass


@dataclass(frozen=True, kw_only=True)
class Entrypoint(_CommandLine):
    pass


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class _Files(Instruction):
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...]
    dest: str
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Add(_Files):
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Copy(_Files):
    from_stage: str = ""  # --from: a stage name or index, or an image
    parents: bool = False


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    user: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    args: tuple[ArgDef, ...]


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    expression: str  # the trigger as written, run when an image built FROM this one builds


@dataclass(frozen=True)
class HealthConfig:
    """The image config's Healthcheck; durations in nanoseconds as docker stores them."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    health: HealthConfig


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    shell: tuple[str, ...] = field(default=())


def _at_least_one(cmd: str) -> ValueError:
    return ValueError(f"{cmd} requires at least one argument")


def _exactly_one(cmd: str) -> ValueError:
    return ValueError(f"{cmd} requires exactly one argument")


def _no_destination(cmd: str) -> ValueError:
    return ValueError(
        f"{cmd} requires at least two arguments, but only one was provided. "
        "Destination could not be determined"
    )


def parse_instruction(node: Node) -> Instruction:
    """One node to its typed instruction; ValueError with BuildKit's (unprefixed) text."""
    kind = node.command.lower()
    parse = _PARSERS.get(kind)
    if parse is None:
        raise ValueError(_unknown(node.command))
    common = {
        "name": kind,
        "original": node.original.strip(),
        "start_line": node.start_line,
        "end_line": node.end_line,
    }
    return parse(node, BFlags(node.flags), common)


def _unknown(command: str) -> str:
    from dockyard.build.flags import suggest

    text = f"unknown instruction: {command}"
    match = suggest(command, [n.upper() for n in NAMES], case_sensitive=False)
    return f"{text} (did you mean {match}?)" if match else text


def _cmdline(node: Node, empty_as_none: bool) -> dict[str, object]:
    args = node.args if node.json or not node.args else [" ".join(node.args)]
    files = tuple(InlineFile(h.name, h.content, h.chomp) for h in node.heredocs)
    cmd = None if empty_as_none and not args else tuple(args)
    return {"cmd": cmd, "prepend_shell": not node.json, "files": files}


def _kvps(node: Node, cmd: str) -> tuple[KeyValue, ...]:
    args = node.args
    if not args:
        raise _at_least_one(cmd)
    if len(args) % 3:
        raise ValueError(f"Bad input to {cmd}, too many arguments")
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise ValueError(f"{cmd} names can not be blank")
        pairs.append(KeyValue(args[i], args[i + 1], args[i + 2] == ""))
    return tuple(pairs)


def _env(node: Node, fl: BFlags, c: dict) -> Instruction:
    fl.parse()
    return Env(pairs=_kvps(node, "ENV"), **c)


def _label(node: Node, fl: BFlags, c: dict) -> Instruction:
    fl.parse()
    return Label(pairs=_kvps(node, "LABEL"), **c)


def _maintainer(node: Node, fl: BFlags, c: dict) -> Instruction:
    if len(node.args) != 1:
        raise _exactly_one("MAINTAINER")
    fl.parse()
    return Maintainer(maintainer=node.args[0], **c)


def _sources_and_dest(node: Node, cmd: str) -> dict[str, object]:
    *srcs, dest = node.args
    if parse_heredoc(dest) is not None:
        raise ValueError(f"{cmd} cannot accept a heredoc as a destination")
    bodies: dict[str, Heredoc] = {h.name: h for h in node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = parse_heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        body = bodies.get(doc.name)
        data = body.content if body else ""
        if doc.chomp:
            data = re.sub(r"(?m)^\t+", "", data)
        contents.append(SourceContent(doc.name, data, doc.expand))
    return {"sources": tuple(paths), "contents": tuple(contents), "dest": dest}


def _add(node: Node, fl: BFlags, c: dict) -> Instruction:
    if len(node.args) < 2:
        raise _no_destination("ADD")
    chown, chmod = fl.add_string("chown"), fl.add_string("chmod")
    link, keep_git = fl.add_bool("link"), fl.add_bool("keep-git-dir")
    checksum, unpack, exclude = (
        fl.add_string("checksum"),
        fl.add_bool("unpack"),
        fl.add_strings("exclude"),
    )
    fl.parse()
    files = _sources_and_dest(node, "ADD")
    return Add(
        **files,
        chown=chown.value,
        chmod=chmod.value,
        link=link.value == "true",
        checksum=checksum.value,
        keep_git_dir=(keep_git.value == "true") if keep_git.used else None,
        unpack=(unpack.value == "true") if unpack.used else None,
        excludes=tuple(exclude.values),
        **c,
    )


def _copy(node: Node, fl: BFlags, c: dict) -> Instruction:
    if len(node.args) < 2:
        raise _no_destination("COPY")
    chown, from_, chmod = fl.add_string("chown"), fl.add_string("from"), fl.add_string("chmod")
    link, exclude, parents = fl.add_bool("link"), fl.add_strings("exclude"), fl.add_bool("parents")
    fl.parse()
    files = _sources_and_dest(node, "COPY")
    return Copy(
        **files,
        from_stage=from_.value,
        chown=chown.value,
        chmod=chmod.value,
        link=link.value == "true",
        parents=parents.value == "true",
        excludes=tuple(exclude.values),
        **c,
    )


def _from(node: Node, fl: BFlags, c: dict) -> Instruction:
    args = node.args
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise ValueError(
                f"invalid name for build stage: {go_quote(args[2])}, name can't start with a "
                "number or contain symbols"
            )
    elif len(args) != 1:
        raise ValueError("FROM requires either one or three arguments")
    platform = fl.add_string("platform")
    fl.parse()
    return From(base_name=args[0], stage_name=name, platform=platform.value, **c)


def _onbuild(node: Node, fl: BFlags, c: dict) -> Instruction:
    if not node.args:
        raise _at_least_one("ONBUILD")
    fl.parse()
    trigger = node.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:  # the trigger carries its heredoc bodies along
        expression += "\n" + doc.content + doc.name
    return Onbuild(expression=expression, **c)


def _workdir(node: Node, fl: BFlags, c: dict) -> Instruction:
    if len(node.args) != 1:
        raise _exactly_one("WORKDIR")
    fl.parse()
    return Workdir(path=node.args[0], **c)


def _run(node: Node, fl: BFlags, c: dict) -> Instruction:
    mount = fl.add_strings("mount")
    network = fl.add_string("network", "default")
    security = fl.add_string("security", "sandbox")
    fl.parse()
    specs = tuple(mount.values)
    for spec in specs:  # without an expander only the syntax and `from` are checked now
        parse_mount(spec, None)
    if network.value not in ("default", "none", "host"):
        raise ValueError(f"invalid network mode {go_quote(network.value)}")
    if security.value not in ("sandbox", "insecure"):
        raise ValueError(f"security {go_quote(security.value)} is not valid")
    return Run(
        **_cmdline(node, False),
        mount_specs=specs,
        network=network.value,
        security=security.value,
        **c,
    )


def _cmd(node: Node, fl: BFlags, c: dict) -> Instruction:
    fl.parse()
    return Cmd(**_cmdline(node, False), **c)


def _entrypoint(node: Node, fl: BFlags, c: dict) -> Instruction:
    fl.parse()
    return Entrypoint(**_cmdline(node, True), **c)


def _interval(flag_name: str, text: str) -> int:
    if not text:
        return 0
    try:
        ns = parse_duration(text)
    except InvalidParameter as e:
        raise ValueError(e.message) from None
    if ns != 0 and ns < 1_000_000:
        raise ValueError(f"Interval {go_quote(flag_name)} cannot be less than 1ms")
    return ns


def _healthcheck(node: Node, fl: BFlags, c: dict) -> Instruction:
    if not node.args:
        raise _at_least_one("HEALTHCHECK")
    typ, args = node.args[0].upper(), node.args[1:]
    if typ == "NONE":
        if args:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(health=HealthConfig(test=("NONE",)), **c)
    names = ("interval", "timeout", "start-period", "start-interval", "retries")
    flags = {n: fl.add_string(n) for n in names}
    fl.parse()
    if typ != "CMD":
        raise ValueError(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    cmd = args if node.json or not args else [" ".join(args)]
    if not cmd:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    test = ("CMD" if node.json else "CMD-SHELL", *cmd)
    durations = [_interval(n, flags[n].value) for n in names[:4]]
    retries = 0
    if flags["retries"].value:
        retries = _parse_int32(flags["retries"].value)
        if retries < 0:
            raise ValueError(f"--retries cannot be negative ({retries})")
    return Healthcheck(health=HealthConfig(test, *durations, retries=retries), **c)


def _parse_int32(text: str) -> int:
    digits = text[1:] if text[:1] in "+-" and text else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _expose(node: Node, fl: BFlags, c: dict) -> Instruction:
    if not node.args:
        raise _at_least_one("EXPOSE")
    fl.parse()
    return Expose(ports=tuple(sorted(node.args)), **c)


def _user(node: Node, fl: BFlags, c: dict) -> Instruction:
    if len(node.args) != 1:
        raise _exactly_one("USER")
    fl.parse()
    return User(user=node.args[0], **c)


def _volume(node: Node, fl: BFlags, c: dict) -> Instruction:
    if not node.args:
        raise _at_least_one("VOLUME")
    fl.parse()
    paths = tuple(v.strip() for v in node.args)
    if "" in paths:
        raise ValueError("VOLUME specified can not be an empty string")
    return Volume(paths=paths, **c)


def _stopsignal(node: Node, fl: BFlags, c: dict) -> Instruction:
    # BuildKit never parses STOPSIGNAL's flags: `STOPSIGNAL --x SIGTERM` is accepted.
    if len(node.args) != 1:
        raise _exactly_one("STOPSIGNAL")
    return StopSignal(signal=node.args[0], **c)


def _arg(node: Node, fl: BFlags, c: dict) -> Instruction:
    # Nor ARG's flags.
    if not node.args:
        raise _at_least_one("ARG")
    defs = []
    for word in node.args:
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise ValueError("ARG names can not be blank")
            defs.append(ArgDef(key, value))
        else:
            defs.append(ArgDef(word))
    return Arg(args=tuple(defs), **c)


def _shell(node: Node, fl: BFlags, c: dict) -> Instruction:
    fl.parse()
    if not node.args:
        raise _at_least_one("SHELL")
    if not node.json:
        raise ValueError("SHELL requires the arguments to be in JSON form")
    return Shell(shell=tuple(node.args), **c)


_PARSERS = {
    "add": _add,
    "arg": _arg,
    "cmd": _cmd,
    "copy": _copy,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "from": _from,
    "healthcheck": _healthcheck,
    "label": _label,
    "maintainer": _maintainer,
    "onbuild": _onbuild,
    "run": _run,
    "shell": _shell,
    "stopsignal": _stopsignal,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}
