"""The build executor: a Dockerfile and its context to an image, as docker's classic builder
does it (moby builder/dockerfile), speaking its progress stream.

This file is the build as a whole: the Dockerfile from the context, which stages the target
needs and their threads (stages.py: stages the target does not need are skipped, the others
run at once, each waiting for a stage it reads only at the step that reads it), FROM, the
output in stage order, and the tags. The steps themselves are steps.py (StepRunner): every
step produces an image whose parent is the previous step's, through the cache.

A failed step leaves no image and no mount; its container is kept as docker keeps it (`rm`
removes containers of steps that succeeded, `forcerm` all), and removed when the client went
away. A failure in one stage cancels the others: their RUN containers are killed and removed,
their snapshots and mounts undone, and the build reports the first failure.
"""

from __future__ import annotations

import copy
import platform
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard import reference
from dockyard.build import imageconfig as ic
from dockyard.build.cache import CacheStore
from dockyard.build.context import BuildContext, open_context
from dockyard.build.dockerfile import Dockerfile, Stage, parse_dockerfile
from dockyard.build.dockerignore import PatternMatcher, read_patterns
from dockyard.build.expand import StageScope, expand_from, global_args
from dockyard.build.instructions import Arg, Instruction
from dockyard.build.run import Cancelled
from dockyard.build.stages import (
    StageOutput,
    StageResults,
    needed_stages,
    stage_dependencies,
    stage_ref,
)
from dockyard.build.steps import BuildError, StageState, StepRunner
from dockyard.errors import DockyardError, InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

__all__ = ["BuildError", "BuildOptions", "Builder"]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    rm: bool = True
    force_rm: bool = False
    target: str = ""
    quiet: bool = False
    network_mode: str = ""
    platform: str = ""
    pull: bool = False  # --pull: ask the registry for a newer base even when one is here
    auths: dict[str, Any] = field(default_factory=dict)  # registry host -> AuthConfig


def parse_targets(tags: list[str]) -> list[reference.Reference]:
    targets = []
    for tag in tags:
        try:
            ref = reference.parse_normalized(tag)
        except DockyardError as e:
            raise InvalidParameter(f"invalid reference format: {e.message}") from None
        reference.check_tag_name(ref)
        targets.append(ref)
    return targets


class Builder(StepRunner):
    def __init__(
        self, engine: Engine, options: BuildOptions, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        self.engine = engine
        self.options = options
        self._emit = emit
        self.cache = CacheStore(engine.db, lambda i: engine.image_store.get(i) is not None)
        self.build_args = {k: v for k, v in options.build_args.items() if v is not None}
        self.targets = parse_targets(options.tags)
        self.context = None
        self.dockerfile: Dockerfile | None = None
        self.stages: dict[int, StageState] = {}
        self._runs = set()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._local = threading.local()  # .stage: the index of the stage this thread builds
        self._output: StageOutput | None = None
        self._results: StageResults | None = None
        self.declared: set[str] = set()
        self.quiet_output: list[dict[str, Any]] = []

    # -- output --------------------------------------------------------------------------------
    def _sink(self, item: dict[str, Any]) -> None:
        if self.options.quiet:  # kept, and sent only when the build fails (as dockerd)
            self.quiet_output.append(item)
        else:
            self._emit(item)

    def out(self, text: str) -> None:
        stage = getattr(self._local, "stage", None)
        if self._output is not None and stage is not None:
            self._output.write(stage, {"stream": text})
        else:
            self._sink({"stream": text})

    def cancel(self) -> None:
        """The client went away (or a stage failed): stop at the next step, kill the running
        RUNs."""
        self._cancelled.set()
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.cancel()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("build cancelled")

    # -- entry point ---------------------------------------------------------------------------
    def build(self, stream: BinaryIO) -> str:
        """Read the context from `stream`, build, tag; the image ID."""
        context = open_context(stream, self.engine.tmp_root)
        try:
            dockerfile = self._dockerfile(context)
            return self._build(dockerfile, context)
        finally:
            context.close()

    def _dockerfile(self, context: BuildContext) -> Dockerfile:
        name = self.options.dockerfile or "Dockerfile"
        entry = context.lookup(name.lstrip("/"))
        if entry is None and name == "Dockerfile":
            entry = context.lookup("dockerfile")
        if entry is None or entry.type != "0":
            raise InvalidParameter(f"Cannot locate specified Dockerfile: {name}")
        text = context.read(entry)
        _remove_ignored_build_files(context, entry.path)
        return parse_dockerfile(text)

    def _build(self, dockerfile: Dockerfile, context: BuildContext) -> str:
        stages = dockerfile.stages
        if not stages:
            raise InvalidParameter("file with no instructions")
        last = len(stages) - 1
        if self.options.target:
            index = dockerfile.stage_index(self.options.target)
            if index is None:
                raise InvalidParameter(
                    f"failed to reach build target {self.options.target} in Dockerfile"
                )
            last = index
        self.dockerfile = dockerfile
        self.context = context
        labels = self._label_instruction()
        globals_ = global_args(dockerfile.meta_args, self.build_args, dockerfile.escape)
        needed = needed_stages(stage_dependencies(dockerfile, globals_), last)
        self.declared |= {a.key for m in dockerfile.meta_args for a in m.args}
        for i, stage in enumerate(stages[: last + 1]):  # a skipped stage's ARGs are not unused
            if i not in needed:
                self.declared |= {
                    a.key for c in stage.commands if isinstance(c, Arg) for a in c.args
                }
        plan: list[tuple[int, list[Instruction], int]] = []  # stage, commands, its first step
        step = 1
        for i in needed:
            commands: list[Instruction] = list(stages[i].commands)
            if i == last and labels is not None:
                commands.append(labels)
            plan.append((i, commands, step))
            step += 1 + len(commands)
        total = step - 1
        self._results = StageResults(needed, self._cancelled)
        if len(plan) == 1:
            self._stage(plan[0][0], plan[0][1], plan[0][2], total, globals_)
        else:
            self._parallel(plan, total, globals_)
        if self._results.error is not None:
            raise self._results.error
        final = self.stages[last]
        if not final.image_id:  # FROM scratch and nothing else
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.build_args if k not in self.declared)
        unused = [k for k in unused if k not in _proxy_names()]
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        image_id = final.image_id
        self._emit({"aux": {"ID": image_id}})
        self.out(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
        for target, tag in zip(self.targets, self.options.tags, strict=True):
            ref = target.with_default_tag()
            self.engine.images.tag(image_id, ref.name, ref.tag or "latest")
            self.out(
                f"Successfully tagged {reference.parse_normalized(tag).with_default_tag().familiar()}\n"
            )
        if self.options.quiet:
            self._emit({"stream": image_id + "\n"})
        return image_id

    def _stage(
        self,
        index: int,
        commands: list[Instruction],
        step: int,
        total: int,
        globals_: dict[str, str],
    ) -> None:
        """Build stage `index`, numbering its steps from `step`; failures go to _results."""
        assert self._results is not None and self.dockerfile is not None
        self._local.stage = index
        error: BaseException | None = None
        try:
            self.check()
            stage = self.dockerfile.stages[index]
            self.out(f"Step {step}/{total} : {stage.from_.original}")
            self.out("\n")
            state = self._from(index, stage, self.dockerfile, globals_)
            self.out(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")
            for instr in commands:
                self.check()
                step += 1
                self.out(f"Step {step}/{total} : {instr.original}")
                self.out("\n")
                self._step(state, instr, self.context)
                self.out(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")
            with self._lock:
                self.declared |= state.scope.declared
                self.stages[index] = state
        except BaseException as e:
            error = e
            if not isinstance(e, Cancelled):
                self.cancel()  # the other stages stop
        self._results.finished(index, error)

    def _parallel(
        self, plan: list[tuple[int, list[Instruction], int]], total: int, globals_: dict[str, str]
    ) -> None:
        """The stages at once, a thread each; their output in stage order (StageOutput)."""
        self._output = StageOutput([i for i, _, _ in plan], self._sink)

        def work(index: int, commands: list[Instruction], step: int) -> None:
            assert self._output is not None
            try:
                self._stage(index, commands, step, total, globals_)
            finally:
                self._output.finish(index)

        threads = [
            threading.Thread(target=work, args=item, name=f"build-stage-{item[0]}", daemon=True)
            for item in plan
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._output.flush()
        self._output = None

    def stage_image(self, name: str) -> str:
        """The image a `--from`/`from=` value means: an earlier stage's (waiting for it to be
        built), else an image by name."""
        assert self.dockerfile is not None and self._results is not None
        current = self._local.stage
        if name.isdigit() and int(name) >= current:
            raise BuildError(f"invalid from flag value {name}: refers to current build stage")
        index = stage_ref(self.dockerfile, name, current)
        if index is not None:
            if not self._results.scheduled(index):
                raise BuildError(f"invalid from flag value {name}: stage {index} is not built")
            self._results.wait(index)
            return self.stages[index].image_id
        try:
            return self.engine.images.resolve(name).id
        except (NotFound, InvalidParameter) as e:
            raise BuildError(f"invalid from flag value {name}: {e.message}") from None

    def _label_instruction(self) -> Instruction | None:
        if not self.options.labels:
            return None
        from dockyard.build.instructions import KeyValue, Label

        pairs = tuple(KeyValue(k, v) for k, v in sorted(self.options.labels.items()))
        text = "LABEL " + " ".join(f"\"{k}\"='{v}'" for k, v in sorted(self.options.labels.items()))
        return Label(pairs=pairs, name="label", original=text, start_line=0, end_line=0)

    # -- FROM ----------------------------------------------------------------------------------
    def _base_image(self, name: str) -> str:
        """A FROM image: the local one, else (or with --pull) pulled, its progress in the
        build's output as moby's classic builder shows it."""
        if not self.options.pull:
            try:
                return self.engine.images.resolve(name).id
            except NotFound:
                pass
        from dockyard.distribution.auth import AuthConfig
        from dockyard.engine.pull import pull_target

        try:
            ref = pull_target(name, "")
        except InvalidParameter as e:
            raise BuildError(e.message) from None
        stage = getattr(self._local, "stage", None)

        def emit(item: dict[str, Any]) -> None:
            if self._output is not None and stage is not None:
                self._output.write(stage, item)
            else:
                self._sink(item)

        auth = self.options.auths.get(ref.domain) or AuthConfig()
        try:
            return self.engine.pulls.pull(ref, self.options.platform, auth, emit)
        except DockyardError as e:
            if not self.options.pull:
                raise BuildError(e.message) from None
            try:  # --pull with an unreachable registry: docker builds from what it has
                return self.engine.images.resolve(name).id
            except NotFound:
                raise BuildError(e.message) from None

    def _from(
        self, index: int, stage: Stage, dockerfile: Dockerfile, globals_: dict[str, str]
    ) -> StageState:
        from_ = expand_from(stage.from_, globals_, dockerfile.escape)
        base = from_.base_name
        if base.lower() == "scratch":
            doc: dict[str, Any] = {
                "architecture": _ARCH.get(platform.machine(), platform.machine()),
                "os": "linux",
                "history": [],
                "rootfs": {"type": "layers", "diff_ids": []},
            }
            image_id, chain_ids = "", []
        else:
            previous = stage_ref(dockerfile, base, index) if not base.isdigit() else None
            if previous is not None:
                assert self._results is not None
                self._results.wait(previous)
                image_id = self.stages[previous].image_id
            else:
                image_id = self._base_image(base)
            record = self.engine.image_store.get(image_id)
            if record is None:
                raise BuildError(f"No such image: {image_id}")
            chain_ids = list(record.chain_ids)
            doc = self.engine.images.config(image_id)
        config = copy.deepcopy(doc.get("config") or {})
        env = list(config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            config["Env"] = [*env, ic.DEFAULT_PATH]
        state = StageState(
            index=index,
            cache_broken=self.options.no_cache,  # each FROM probes anew (moby's Reset)
            name=stage.name,
            image_id=image_id,
            doc=doc,
            config=config,
            chain_ids=chain_ids,
            scope=StageScope(
                base_env=config.get("Env") or [],
                build_args=self.build_args,
                globals_=globals_,
                escape=dockerfile.escape,
            ),
        )
        triggers = list(config.get("OnBuild") or [])
        if triggers:
            config["OnBuild"] = None
            self.out(
                f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n"
            )
            for trigger in triggers:
                parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n")
                for instr in parsed.stages[0].commands:
                    self._step(state, instr, None)
        return state


def _remove_ignored_build_files(context: BuildContext, dockerfile: str) -> None:
    """As dockerd: the .dockerignore and the Dockerfile leave the context when .dockerignore
    names them (the CLI lists a Dockerfile it added from outside the context there)."""
    ignore = context.entries.get(".dockerignore")
    if ignore is None or ignore.type != "0":
        return
    try:
        matcher = PatternMatcher(read_patterns(context.read(ignore)))
    except ValueError as e:
        raise InvalidParameter(f"failed to parse .dockerignore: {e}") from None
    for path in (".dockerignore", dockerfile):
        if matcher.matches_or_parent_matches(path):
            context.remove(path)


def _proxy_names() -> frozenset[str]:
    from dockyard.build.expand import PROXY_ARGS

    return PROXY_ARGS
