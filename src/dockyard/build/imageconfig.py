"""How each metadata instruction changes the image config, and the history texts (pure).

The texts are the classic builder's (moby builder/dockerfile/dispatchers.go): a metadata step's
history `created_by` is the shell followed by `#(nop) ` and the comment as separate words
(`/bin/sh -c #(nop)  ENV E=1`, two spaces), WORKDIR and COPY/ADD pass it as one word
(`/bin/sh -c #(nop) WORKDIR /w`, one space), a RUN is its command line, prefixed with
`|N K=V…` when build args reach its environment.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from dockyard.build.instructions import (
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockyard.build.parser import parse_heredoc
from dockyard.errors import InvalidParameter
from dockyard.gostrconv import go_quote

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SHELL",
    "apply_metadata",
    "command_line",
    "metadata_created_by",
    "nop_created_by",
    "set_env",
]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")


def shell_of(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def metadata_created_by(config: dict[str, Any], comment: str) -> str:
    return " ".join([*shell_of(config), "#(nop) ", comment])


def nop_created_by(config: dict[str, Any], comment: str) -> str:
    return " ".join([*shell_of(config), "#(nop) " + comment])


def command_line(config: dict[str, Any], instr: Any) -> list[str]:
    """RUN/CMD/ENTRYPOINT's argv: shell form through the SHELL, exec form as written."""
    cmd = list(instr.cmd or ())
    if instr.prepend_shell and cmd:
        script = cmd[0]
        files = list(getattr(instr, "files", ()))
        if len(files) == 1 and parse_heredoc(script.strip()) is not None:
            # `RUN <<EOF` alone: the heredoc is the script (BuildKit's rule)
            data = files[0].data
            return [*shell_of(config), re.sub(r"(?m)^\t+", "", data) if files[0].chomp else data]
        for f in files:
            script += "\n" + f.data + f.name  # the shell runs the heredoc itself
        return [*shell_of(config), script]
    return cmd


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Set KEY=value in the config's Env: in place when the key exists, else appended."""
    env = list(config.get("Env") or [])
    entry = f"{key}={value}"
    for i, existing in enumerate(env):
        if existing.partition("=")[0] == key:
            env[i] = entry
            break
    else:
        env.append(entry)
    config["Env"] = env


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def _port(spec: str) -> str:
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    if not port or not all(p.isdigit() for p in port.split("-", 1)):
        raise InvalidParameter(f"invalid containerPort: {port}")
    return f"{port}/{proto}"


def _go_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    seconds, rest = divmod(ns, 1_000_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    frac = f"{rest:09d}".rstrip("0")
    text = f"{seconds}" + (f".{frac}" if frac else "") + "s"
    if minutes or hours:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return text


def apply_metadata(config: dict[str, Any], instr: Instruction) -> tuple[str, str | None]:
    """Change `config` (a container Config dict) as the instruction says; returns the history
    comment and the image's new author (MAINTAINER) or None."""
    author = None
    if isinstance(instr, Env):
        for p in instr.pairs:
            set_env(config, p.key, p.value)
        comment = "ENV " + " ".join(f"{p.key}={p.value}" for p in instr.pairs)
    elif isinstance(instr, Label):
        labels = dict(config.get("Labels") or {})
        for p in instr.pairs:
            labels[p.key] = p.value
        config["Labels"] = labels
        comment = "LABEL " + " ".join(f"{p.key}={p.value}" for p in instr.pairs)
    elif isinstance(instr, Maintainer):
        author = instr.maintainer
        comment = "MAINTAINER " + instr.maintainer
    elif isinstance(instr, Cmd):
        config["Cmd"] = command_line(config, instr)
        comment = "CMD " + _go_list(config["Cmd"])
        if instr.prepend_shell:
            config["ArgsEscaped"] = True
    elif isinstance(instr, Entrypoint):
        entry = command_line(config, instr) if instr.cmd else None
        config["Entrypoint"] = entry
        config["Cmd"] = None  # as docker: a new ENTRYPOINT drops the base image's CMD
        comment = "ENTRYPOINT " + _go_list(entry or [])
    elif isinstance(instr, Expose):
        ports = dict(config.get("ExposedPorts") or {})
        for spec in instr.ports:
            ports[_port(spec)] = {}
        config["ExposedPorts"] = ports
        comment = "EXPOSE " + " ".join(instr.ports)
    elif isinstance(instr, Volume):
        volumes = dict(config.get("Volumes") or {})
        for path in instr.paths:
            volumes[path] = {}
        config["Volumes"] = volumes
        comment = "VOLUME [" + " ".join(instr.paths) + "]"
    elif isinstance(instr, User):
        config["User"] = instr.user
        comment = "USER " + instr.user
    elif isinstance(instr, StopSignal):
        config["StopSignal"] = instr.signal
        comment = "STOPSIGNAL " + instr.signal
    elif isinstance(instr, Healthcheck):
        h = instr.health
        if h.test == ("NONE",):
            config["Healthcheck"] = {"Test": ["NONE"]}
        else:
            hc: dict[str, Any] = {"Test": list(h.test)}
            for key, value in (
                ("Interval", h.interval),
                ("Timeout", h.timeout),
                ("StartPeriod", h.start_period),
                ("StartInterval", h.start_interval),
                ("Retries", h.retries),
            ):
                if value:
                    hc[key] = value
            config["Healthcheck"] = hc
        durations = " ".join(
            go_quote(_go_duration(v)) for v in (h.interval, h.timeout, h.start_period)
        )
        comment = f"HEALTHCHECK &{{{_go_list(list(h.test))} {durations} '\\x{h.retries:02x}'}}"
    elif isinstance(instr, Shell):
        config["Shell"] = list(instr.shell)
        comment = "SHELL [" + " ".join(instr.shell) + "]"
    elif isinstance(instr, Onbuild):
        config["OnBuild"] = [*(config.get("OnBuild") or []), instr.expression]
        comment = "ONBUILD " + instr.expression
    elif isinstance(instr, Workdir):
        config["WorkingDir"] = workdir_path(config, instr.path)
        comment = "WORKDIR " + config["WorkingDir"]
    else:
        raise InvalidParameter(f"{instr.name.upper()} is not a metadata instruction")
    return comment, author


def workdir_path(config: dict[str, Any], path: str) -> str:
    """WORKDIR's new directory: relative paths are taken from the current one."""
    if not path.startswith("/"):
        path = posixpath.join(config.get("WorkingDir") or "/", path)
    return posixpath.normpath(path) if path != "/" else "/"
