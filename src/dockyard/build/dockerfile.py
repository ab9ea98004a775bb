"""A Dockerfile as build stages (pure): `parse_dockerfile(text)` is the entry point.

The file is first split into nodes (parser.py; syntax errors are reported for the whole file
before any instruction is looked at, as BuildKit does), then each node becomes a typed
instruction (instructions.py). ARGs before the first FROM are the meta args, usable in FROM
lines; everything else belongs to the stage its FROM opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import Arg, From, Instruction, parse_instruction
from dockyard.build.parser import parse_nodes

__all__ = ["Dockerfile", "Stage", "parse_dockerfile"]


@dataclass
class Stage:
    """A FROM and the instructions after it, up to the next FROM."""

    from_: From
    commands: list[Instruction] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.from_.stage_name

    @property
    def base_name(self) -> str:
        return self.from_.base_name


@dataclass
class Dockerfile:
    stages: list[Stage]
    meta_args: list[Arg]  # ARGs before the first FROM
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)  # syntax, escape, check
    warnings: list[str] = field(default_factory=list)

    def stage_index(self, name: str) -> int | None:
        """The stage a `--from`/`--target` name refers to (names are case-insensitive)."""
        for i, stage in enumerate(self.stages):
            if stage.name and stage.name == name.lower():
                return i
        return None


def parse_dockerfile(source: str | bytes) -> Dockerfile:
    """Parse a Dockerfile; DockerfileError carries docker's message and the lines."""
    parsed = parse_nodes(source)
    stages: list[Stage] = []
    meta: list[Arg] = []
    for node in parsed.nodes:
        try:
            instr = parse_instruction(node)
        except ValueError as e:
            raise DockerfileError(
                f"dockerfile parse error on line {node.start_line}: {e}",
                node.start_line,
                node.end_line,
            ) from None
        if isinstance(instr, From):
            stages.append(Stage(instr))
        elif not stages and isinstance(instr, Arg):
            meta.append(instr)
        elif not stages:
            raise DockerfileError(
                "no build stage in current context", node.start_line, node.end_line
            )
        else:
            stages[-1].commands.append(instr)
    return Dockerfile(
        stages=stages,
        meta_args=meta,
        escape=parsed.escape,
        directives=parsed.directives,
        warnings=parsed.warnings,
    )
