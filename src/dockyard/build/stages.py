"""Multi-stage builds: which stages a target needs, and their output in stage order.

As BuildKit does it, a stage is built only when the target needs it: through `FROM <stage>`,
`COPY --from=<stage>` or `RUN --mount=...,from=<stage>` (names refer to earlier stages only,
numbers to an earlier stage's index; anything else is an image). `stage_dependencies` and
`needed_stages` are pure. The needed stages run at once, each in a thread of its own; a stage
waits for one it depends on only at the step that uses it (`StageResults.wait`).

Their output keeps the classic builder's shape: `StageOutput` streams the lowest unfinished
stage live and holds the others' lines until every stage before them is done, so `Step N/M`
lines come out stage by stage, as a build one stage after another would print them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from dockyard.build.dockerfile import Dockerfile
from dockyard.build.errors import DockerfileError
from dockyard.build.expand import expand_from
from dockyard.build.instructions import Copy, Instruction, Run
from dockyard.build.mounts import parse_mount
from dockyard.build.run import Cancelled

__all__ = ["StageOutput", "StageResults", "needed_stages", "stage_dependencies", "stage_ref"]


def stage_ref(dockerfile: Dockerfile, name: str, current: int) -> int | None:
    """The earlier stage a `--from`/`from=` value names (a stage name or index), else None."""
    if name.isdigit():
        index = int(name)
        return index if index < current else None
    for i, stage in enumerate(dockerfile.stages[:current]):
        if stage.name and stage.name == name.lower():
            return i
    return None


def _from_values(instr: Instruction) -> list[str]:
    if isinstance(instr, Copy) and instr.from_stage:
        return [instr.from_stage]
    if isinstance(instr, Run):
        values = []
        for spec in instr.mount_specs:
            try:
                value = parse_mount(spec, None).from_
            except ValueError:
                continue  # reported when the step is expanded
            if value:
                values.append(value)
        return values
    return []


def stage_dependencies(dockerfile: Dockerfile, globals_: dict[str, str]) -> list[set[int]]:
    """For each stage, the earlier stages it reads (FROM, COPY --from, RUN --mount from=)."""
    deps: list[set[int]] = []
    for i, stage in enumerate(dockerfile.stages):
        mine: set[int] = set()
        try:
            base = expand_from(stage.from_, globals_, dockerfile.escape).base_name
        except DockerfileError:
            base = ""  # reported when the stage is built
        for j, earlier in enumerate(dockerfile.stages[:i]):
            if earlier.name and earlier.name == base.lower():
                mine.add(j)
        for instr in stage.commands:
            for value in _from_values(instr):
                ref = stage_ref(dockerfile, value, i)
                if ref is not None:
                    mine.add(ref)
        deps.append(mine)
    return deps


def needed_stages(deps: Sequence[set[int]], target: int) -> list[int]:
    """The stages `target` needs, itself included, in file order."""
    needed = {target}
    pending = [target]
    while pending:
        for dep in deps[pending.pop()]:
            if dep not in needed:
                needed.add(dep)
                pending.append(dep)
    return sorted(needed)


class StageOutput:
    """Progress lines of stages built at once, sent in stage order: the first unfinished
    stage's lines go out as they come, a later stage's wait until all before it finished."""

    def __init__(self, order: Sequence[int], sink: Callable[[dict[str, Any]], None]) -> None:
        self._order = list(order)
        self._sink = sink
        self._held: dict[int, list[dict[str, Any]]] = {i: [] for i in order}
        self._finished: set[int] = set()
        self._head = 0
        self._lock = threading.Lock()

    def write(self, stage: int, item: dict[str, Any]) -> None:
        with self._lock:
            if self._head < len(self._order) and self._order[self._head] == stage:
                self._sink(item)
            else:
                self._held[stage].append(item)

    def finish(self, stage: int) -> None:
        """Stage `stage` is done: what the stages after it held until now goes out."""
        with self._lock:
            self._finished.add(stage)
            while self._head < len(self._order) and self._order[self._head] in self._finished:
                self._head += 1
                if self._head < len(self._order):
                    self._send_held(self._order[self._head])

    def flush(self) -> None:
        """The build failed: everything still held goes out, in stage order."""
        with self._lock:
            for stage in self._order[self._head :]:
                self._send_held(stage)
            self._head = len(self._order)

    def _send_held(self, stage: int) -> None:
        held, self._held[stage] = self._held[stage], []
        for item in held:
            self._sink(item)


class StageResults:
    """Which stages finished, for the steps that wait on them; the first failure of all."""

    def __init__(self, stages: Sequence[int], cancelled: threading.Event) -> None:
        self._done = {i: threading.Event() for i in stages}
        self._ok: set[int] = set()
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def scheduled(self, stage: int) -> bool:
        return stage in self._done

    def finished(self, stage: int, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self._ok.add(stage)
            elif self.error is None or (
                isinstance(self.error, Cancelled) and not isinstance(error, Cancelled)
            ):
                self.error = error
        self._done[stage].set()

    def wait(self, stage: int) -> None:
        """Block until `stage` is built; Cancelled when it failed or the build was cancelled."""
        event = self._done[stage]
        while not event.wait(0.05):
            if self._cancelled.is_set():
                raise Cancelled("build cancelled")
        if stage not in self._ok:
            raise Cancelled("build cancelled")
