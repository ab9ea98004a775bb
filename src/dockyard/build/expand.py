"""Variable substitution over a parsed Dockerfile (pure), with docker's ARG/ENV scoping.

Which instructions are expanded, and on which fields, follows BuildKit's `Expand` methods:
ADD/COPY (sources, destination, --chown, --chmod, ADD's --checksum; heredoc bodies unless the
name was quoted), ENV and LABEL (keys and values), EXPOSE (split into words), FROM (name and
--platform, with the meta args only), USER, VOLUME, WORKDIR, STOPSIGNAL, ARG defaults and
RUN --mount values. RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK/ONBUILD/MAINTAINER are left as written:
the shell in the container expands those.

Scoping is the classic builder's (moby builder/dockerfile/buildargs.go): an ARG is visible from
its declaration to the end of its stage; one declared before the first FROM is visible only in
FROM lines unless a stage redeclares it (`ARG NAME` then takes the global value); a build arg
given on the command line overrides a default; an ENV (or the base image's env) always wins
over an ARG of the same name, whatever their order; the predefined proxy args are usable
without a declaration when given as build args.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TypeVar

from dockyard.build.dockerfile import Stage
from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import (
    Add,
    Arg,
    ArgDef,
    Copy,
    Env,
    Expose,
    From,
    Instruction,
    KeyValue,
    Label,
    Run,
    SourceContent,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockyard.build.lexer import LexError, ShellLex
from dockyard.build.mounts import parse_mount

__all__ = ["PROXY_ARGS", "StageScope", "expand_from", "expand_stage", "global_args"]

PROXY_ARGS = frozenset(
    "HTTP_PROXY http_proxy HTTPS_PROXY https_proxy FTP_PROXY ftp_proxy NO_PROXY no_proxy "
    "ALL_PROXY all_proxy".split()
)

_I = TypeVar("_I", bound=Instruction)


def _fail(instr: Instruction, e: Exception) -> DockerfileError:
    return DockerfileError(str(e), instr.start_line, instr.end_line)


def global_args(
    meta_args: Iterable[Arg], build_args: Mapping[str, str], escape: str = "\\"
) -> dict[str, str]:
    """The values of the ARGs before the first FROM (a default may use earlier ones)."""
    lex = ShellLex(escape)
    values: dict[str, str] = {}
    for instr in meta_args:
        for arg in instr.args:
            if arg.key in build_args:
                values[arg.key] = build_args[arg.key]
            elif arg.value is not None:
                env = {**_proxies(build_args), **values}
                try:
                    values[arg.key] = lex.process_word(arg.value, env)
                except LexError as e:
                    raise _fail(instr, e) from None
    return values


def _proxies(build_args: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in build_args.items() if k in PROXY_ARGS}


def expand_from(from_: From, globals_: Mapping[str, str], escape: str = "\\") -> From:
    """FROM's image name and --platform with the meta args substituted."""
    lex = ShellLex(escape)
    try:
        base = lex.process_word(from_.base_name, globals_)
        platform = lex.process_word(from_.platform, globals_) if from_.platform else ""
    except LexError as e:
        raise _fail(from_, e) from None
    return dataclasses.replace(from_, base_name=base, platform=platform)


class StageScope:
    """The variables of one stage as it is built, instruction by instruction.

    `env` is the image config's environment (the base image's, then each ENV), in order;
    `args` the ARGs declared so far with their values. `expand(instr)` returns the instruction
    with its variables substituted and applies ENV/ARG to the scope. Pure: no I/O.
    """

    def __init__(
        self,
        *,
        base_env: Iterable[str] | Mapping[str, str] = (),
        build_args: Mapping[str, str] | None = None,
        globals_: Mapping[str, str] | None = None,
        escape: str = "\\",
    ) -> None:
        if isinstance(base_env, Mapping):
            self.env = dict(base_env)
        else:
            self.env = dict(_split_env(e) for e in base_env)
        self.args: dict[str, str] = {}
        self.declared: set[str] = set()
        self.build_args = dict(build_args or {})
        self.globals = dict(globals_ or {})
        self.lex = ShellLex(escape)

    def variables(self) -> dict[str, str]:
        """What `$NAME` sees: args (and given proxy args) unless an ENV of that name exists."""
        out = {**_proxies(self.build_args), **self.args}
        out.update(self.env)
        return out

    def run_env(self) -> list[str]:
        """The environment of a RUN: the config env plus the args no ENV shadows."""
        extra = {**_proxies(self.build_args), **self.args}
        return [f"{k}={v}" for k, v in self.env.items()] + [
            f"{k}={v}" for k, v in extra.items() if k not in self.env
        ]

    def unused_build_args(self) -> list[str]:
        return sorted(k for k in self.build_args if k not in self.declared and k not in PROXY_ARGS)

    def word(self, text: str) -> str:
        return self.lex.process_word(text, self.variables())

    def expand(self, instr: _I) -> _I:
        try:
            return self._expand(instr)
        except (LexError, ValueError) as e:
            raise _fail(instr, e) from None

    def _expand(self, instr: _I) -> _I:  # one branch per instruction kind
        w = self.word
        replace = dataclasses.replace
        if isinstance(instr, Env):
            pairs = tuple(KeyValue(w(p.key), w(p.value), p.no_delim) for p in instr.pairs)
            for p in pairs:  # applied after the whole line is expanded: ENV a=1 b=$a sees old a
                self.env.pop(p.key, None)
                self.env[p.key] = p.value
            return replace(instr, pairs=pairs)
        if isinstance(instr, Label):
            pairs = tuple(KeyValue(w(p.key), w(p.value), p.no_delim) for p in instr.pairs)
            return replace(instr, pairs=pairs)
        if isinstance(instr, Arg):
            return replace(instr, args=tuple(self._declare(a) for a in instr.args))
        if isinstance(instr, Add | Copy):
            return self._files(instr)
        if isinstance(instr, Expose):
            ports = [
                p for port in instr.ports for p in self.lex.process_words(port, self.variables())
            ]
            return replace(instr, ports=tuple(ports))
        if isinstance(instr, Volume):
            return replace(instr, paths=tuple(w(p) for p in instr.paths))
        if isinstance(instr, User):
            return replace(instr, user=w(instr.user))
        if isinstance(instr, Workdir):
            return replace(instr, path=w(instr.path))
        if isinstance(instr, StopSignal):
            return replace(instr, signal=w(instr.signal))
        if isinstance(instr, Run):
            return replace(instr, mounts=tuple(parse_mount(s, w) for s in instr.mount_specs))
        return instr

    def _declare(self, arg: ArgDef) -> ArgDef:
        self.declared.add(arg.key)
        if arg.key in self.build_args:
            value: str | None = self.build_args[arg.key]
        elif arg.value is not None:
            value = self.word(arg.value)
        else:
            value = self.globals.get(arg.key)  # `ARG NAME` re-imports a meta arg
        if value is not None:
            self.args[arg.key] = value
        return ArgDef(arg.key, value)

    def _files(self, instr: _I) -> _I:
        assert isinstance(instr, Add | Copy)
        w = self.word
        from_ = instr.from_stage if isinstance(instr, Copy) else ""
        if from_ and ShellLex().process_word(from_, {}) != from_:
            raise ValueError(
                "variable expansion is not supported for --from, define a new stage with "
                "FROM using ARG from global scope as a workaround"
            )
        # Heredoc bodies expand without quote processing: quotes in a script stay quotes.
        raw = ShellLex("\\", skip_process_quotes=True)
        contents = tuple(
            SourceContent(
                c.path, raw.process_word(c.data, self.variables()) if c.expand else c.data, c.expand
            )
            for c in instr.contents
        )
        fields: dict[str, object] = {
            "sources": tuple(w(s) for s in instr.sources),
            "dest": w(instr.dest),
            "chown": w(instr.chown),
            "chmod": w(instr.chmod),
            "contents": contents,
        }
        if isinstance(instr, Add):
            fields["checksum"] = w(instr.checksum)
        return dataclasses.replace(instr, **fields)  # type: ignore[return-value]


def _split_env(entry: str) -> tuple[str, str]:
    key, _, value = entry.partition("=")
    return key, value


def expand_stage(
    stage: Stage,
    *,
    build_args: Mapping[str, str] | None = None,
    base_env: Iterable[str] | Mapping[str, str] = (),
    globals_: Mapping[str, str] | None = None,
    escape: str = "\\",
) -> list[Instruction]:
    """All of a stage's instructions expanded, starting from the base image's env.

    The FROM comes first (expanded with the meta args). Raises DockerfileError naming the line.
    """
    scope = StageScope(base_env=base_env, build_args=build_args, globals_=globals_, escape=escape)
    out: list[Instruction] = [expand_from(stage.from_, scope.globals, escape)]
    out += [scope.expand(instr) for instr in stage.commands]
    return out
