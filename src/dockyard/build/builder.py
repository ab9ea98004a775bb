"""The build executor: a Dockerfile and its context to an image, as docker's classic builder
does it (moby builder/dockerfile), speaking its progress stream.

Every step produces an image whose parent is the previous step's: RUN commits the diff of a
container made through the engine, COPY/ADD/WORKDIR write into a snapshot of the parent and
store its diff as a layer, the other instructions only change the config (an `empty_layer`
history entry). A step whose cache key (cache.py) was seen before reuses that image. A failed
step leaves no image and no mount; its container is kept as docker keeps it (`rm` removes
containers of steps that succeeded, `forcerm` all), and removed when the client went away.
"""

from __future__ import annotations

import copy
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard import reference
from dockyard.build import imageconfig as ic
from dockyard.build.cache import CacheStore, describe, step_key
from dockyard.build.context import BuildContext, open_context
from dockyard.build.copy import DirTree, RootFS, parse_chmod, parse_chown, plan_copy, write_plan
from dockyard.build.dockerfile import Dockerfile, Stage, parse_dockerfile
from dockyard.build.dockerignore import PatternMatcher, read_patterns
from dockyard.build.expand import StageScope, expand_from, global_args
from dockyard.build.instructions import Add, Arg, Copy, From, Instruction, Run, Workdir
from dockyard.build.run import Cancelled, RunStep, mount_point, workspace
from dockyard.engine.commit import diff_layer, go_config
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.image.model import canonical_json, rfc3339_nano

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.image.store import LayerRecord

__all__ = ["BuildError", "BuildOptions", "Builder"]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


class BuildError(DockyardError):
    """A step failed; `code` is a RUN's exit status (reported as errorDetail.code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


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


@dataclass
class StageState:
    name: str
    image_id: str  # "" before the first step of a FROM scratch stage
    doc: dict[str, Any]  # the current image's whole config document
    config: dict[str, Any]  # its container config, changed step by step
    chain_ids: list[str]
    scope: StageScope


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


class Builder:
    def __init__(
        self, engine: Engine, options: BuildOptions, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        self.engine = engine
        self.options = options
        self._emit = emit
        self.cache = CacheStore(engine.db, lambda i: engine.image_store.get(i) is not None)
        self.build_args = {k: v for k, v in options.build_args.items() if v is not None}
        self.targets = parse_targets(options.tags)
        self.stages: list[StageState] = []
        self._run: RunStep | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self.cache_broken = options.no_cache
        self.declared: set[str] = set()
        self.quiet_output: list[dict[str, Any]] = []

    # -- output --------------------------------------------------------------------------------
    def out(self, text: str) -> None:
        if self.options.quiet:  # kept, and sent only when the build fails (as dockerd)
            self.quiet_output.append({"stream": text})
        else:
            self._emit({"stream": text})

    def cancel(self) -> None:
        """The client went away: stop at the next step, kill a running RUN."""
        self._cancelled.set()
        with self._lock:
            if self._run is not None:
                self._run.cancel()

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
        stages = stages[: last + 1]
        labels = self._label_instruction()
        total = sum(1 + len(s.commands) for s in stages) + (1 if labels else 0)
        globals_ = global_args(dockerfile.meta_args, self.build_args, dockerfile.escape)
        self.declared |= {a.key for m in dockerfile.meta_args for a in m.args}
        step = 0
        for i, stage in enumerate(stages):
            self.check()
            step += 1
            self.out(f"Step {step}/{total} : {stage.from_.original}")
            self.out("\n")
            self.cache_broken = self.options.no_cache  # each FROM probes anew (moby's Reset)
            state = self._from(stage, dockerfile, globals_)
            self.out(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")
            commands: list[Instruction] = list(stage.commands)
            if i == last and labels is not None:
                commands.append(labels)
            for instr in commands:
                self.check()
                step += 1
                self.out(f"Step {step}/{total} : {instr.original}")
                self.out("\n")
                self._step(state, instr, context)
                self.out(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")
            self.declared |= state.scope.declared
            self.stages.append(state)
        final = self.stages[-1]
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

    def _label_instruction(self) -> Instruction | None:
        if not self.options.labels:
            return None
        from dockyard.build.instructions import KeyValue, Label

        pairs = tuple(KeyValue(k, v) for k, v in sorted(self.options.labels.items()))
        text = "LABEL " + " ".join(f"\"{k}\"='{v}'" for k, v in sorted(self.options.labels.items()))
        return Label(pairs=pairs, name="label", original=text, start_line=0, end_line=0)

    # -- FROM ----------------------------------------------------------------------------------
    def _from(self, stage: Stage, dockerfile: Dockerfile, globals_: dict[str, str]) -> StageState:
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
            previous = next((s for s in self.stages if s.name and s.name == base.lower()), None)
            if previous is not None:
                image_id = previous.image_id
            else:
                try:
                    image_id = self.engine.images.resolve(base).id
                except NotFound as e:
                    raise BuildError(e.message) from None
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

    # -- one step ------------------------------------------------------------------------------
    def _step(self, st: StageState, raw: Instruction, context: BuildContext | None) -> None:
        instr = st.scope.expand(raw)
        if isinstance(instr, Run):
            self._run_step(st, instr)
        elif isinstance(instr, Copy | Add):
            self._copy_step(st, instr, context)
        elif isinstance(instr, Arg):
            comment = "ARG " + " ".join(
                a.key + (f"={a.value}" if a.value is not None else "")
                for a in raw.args  # type: ignore[attr-defined]
            )
            self._metadata(st, instr, comment, None)
        elif isinstance(instr, Workdir):
            self._workdir_step(st, instr)
        elif isinstance(instr, From):
            raise InvalidParameter("FROM isn't allowed as an ONBUILD trigger")
        else:
            config = copy.deepcopy(st.config)
            comment, author = ic.apply_metadata(config, instr)
            self._metadata(st, instr, comment, author, config)

    def _cached(self, st: StageState, key: str) -> bool:
        if self.cache_broken:
            return False
        image_id = self.cache.get(key)
        if image_id is None:
            self.cache_broken = True  # a miss invalidates every later step
            return False
        self.out(" ---> Using cache\n")
        self._become(st, image_id)
        return True

    def _become(self, st: StageState, image_id: str) -> None:
        record = self.engine.image_store.get(image_id)
        assert record is not None
        st.image_id = image_id
        st.doc = self.engine.images.config(image_id)
        st.config = copy.deepcopy(st.doc.get("config") or {})
        st.chain_ids = list(record.chain_ids)

    def _metadata(
        self,
        st: StageState,
        instr: Instruction,
        comment: str,
        author: str | None,
        config: dict[str, Any] | None = None,
    ) -> None:
        key = step_key(st.image_id, describe(instr, comment))
        if self._cached(st, key):
            return
        if config is not None:
            st.config = config
        created_by = ic.metadata_created_by(st.config, comment)
        image_id = self._commit(st, None, created_by, author=author)
        self.cache.put(key, image_id)

    # -- commit --------------------------------------------------------------------------------
    def _commit(
        self,
        st: StageState,
        layer_key: str | None,
        created_by: str | None,
        *,
        author: str | None = None,
    ) -> str:
        """A new image: the stage's current config on the parent's layers, plus the diff of
        snapshot `layer_key` when it has changes. The stage moves on to it."""
        with self.engine.layers.session() as session:
            layers: list[LayerRecord] = []
            for chain_id in st.chain_ids:
                record = session.existing(chain_id)
                if record is None:
                    raise BuildError(f"layer {chain_id} of image {st.image_id} does not exist")
                layers.append(record)
            top = None
            if layer_key is not None:
                top = diff_layer(
                    self.engine, session, layer_key, st.chain_ids[-1] if st.chain_ids else None
                )
            if top is not None:
                layers.append(top)
            now = rfc3339_nano(time.time_ns())
            entry: dict[str, Any] = {"created": now}
            if created_by:
                entry["created_by"] = created_by
            if top is None:
                entry["empty_layer"] = True
            config = dict(st.config)
            config["Image"] = st.image_id
            doc: dict[str, Any] = {
                "architecture": st.doc.get("architecture") or "amd64",
                "config": go_config(config),
                "created": now,
                "history": [*(st.doc.get("history") or []), entry],
                "os": st.doc.get("os") or "linux",
                "rootfs": {"type": "layers", "diff_ids": [r.diff_id for r in layers]},
            }
            if author is not None or st.doc.get("author"):
                doc["author"] = author if author is not None else st.doc["author"]
            for name in ("variant", "os.version"):
                if st.doc.get(name):
                    doc[name] = st.doc[name]
            doc = dict(sorted(doc.items()))
            image_id = self.engine.images.add_image(
                canonical_json(doc), layers, parent=st.image_id or None
            )
        self._become(st, image_id)
        return image_id

    # -- RUN -----------------------------------------------------------------------------------
    def _run_step(self, st: StageState, instr: Run) -> None:
        if instr.mount_specs:
            raise BuildError(
                "the --mount option requires BuildKit. Refer to "
                "https://docs.docker.com/go/buildkit/ to learn how to build images with "
                "BuildKit enabled"
            )
        cmd = ic.command_line(st.config, instr)
        env_keys = {e.partition("=")[0] for e in st.config.get("Env") or []}
        arg_env = sorted(f"{k}={v}" for k, v in st.scope.args.items() if k not in env_keys)
        save_cmd = ([f"|{len(arg_env)}", *arg_env] if arg_env else []) + cmd
        key = step_key(st.image_id, describe(instr, save_cmd))
        if self._cached(st, key):
            return
        if not st.image_id:
            raise BuildError(f"The command '{' '.join(cmd)}' cannot run: the image has no files")
        run_env = [*(st.config.get("Env") or [])]
        run_env += [e for e in st.scope.run_env() if e.partition("=")[0] not in env_keys]
        network = "host" if self.options.network_mode == "host" else "none"
        body = {
            "Image": st.image_id,
            "Cmd": cmd,
            "Entrypoint": [""],
            "Env": run_env,
            "User": st.config.get("User") or "",
            "WorkingDir": st.config.get("WorkingDir") or "",
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": {"NetworkMode": network},
        }
        step = RunStep(self.engine, self.out)
        with self._lock:
            self.check()
            self._run = step
        try:
            cid = step.create(body)
            self.out(f" ---> Running in {cid[:12]}\n")
            code = step.run()
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code
                )
            self._commit(st, f"container/{cid}", " ".join(save_cmd))
        except BaseException as e:
            with self._lock:
                self._run = None
            # docker keeps the container of a command that failed (for a look inside) unless
            # forcerm; one that failed any other way (the client left, the commit failed) goes
            failed_command = isinstance(e, BuildError) and e.code is not None
            if self.options.force_rm or self._cancelled.is_set() or not failed_command:
                step.remove()
            raise
        with self._lock:
            self._run = None
        self.cache.put(key, st.image_id)
        if self.options.rm or self.options.force_rm:
            step.remove()
            self.out(f"Removing intermediate container {cid[:12]}\n")

    # -- COPY, ADD, WORKDIR --------------------------------------------------------------------
    def _copy_step(self, st: StageState, instr: Copy | Add, context: BuildContext | None) -> None:
        cmd = instr.name.upper()
        if instr.excludes or (isinstance(instr, Copy) and instr.parents):
            raise BuildError(f"the --exclude and --parents options of {cmd} require BuildKit")
        if isinstance(instr, Add) and instr.checksum:
            raise BuildError("ADD --checksum is only for URLs, which this daemon cannot fetch")
        chmod = parse_chmod(instr.chmod)
        from_ = instr.from_stage if isinstance(instr, Copy) else ""
        if from_:
            source_id = self._source_image(from_)
            record = self.engine.image_store.get(source_id)
            top = record.chain_ids[-1] if record and record.chain_ids else None
            with workspace(self.engine, top, readonly=True) as view:
                tree = DirTree(mount_point(self.engine, view))
                plan = plan_copy(
                    tree,
                    list(instr.sources),
                    instr.dest,
                    cmd=cmd,
                    workdir=st.config.get("WorkingDir") or "/",
                    from_context=False,
                    hash_data=False,
                )
                sources = "image:" + source_id
                self._copy_commit(st, instr, plan, tree, sources, chmod)
            return
        if context is None:
            raise BuildError(f"{cmd} needs a build context")
        tree = _with_heredocs(context, instr)
        plan = plan_copy(
            tree,
            [*instr.sources, *(f"\0heredoc/{c.path}" for c in instr.contents)],
            instr.dest,
            cmd=cmd,
            workdir=st.config.get("WorkingDir") or "/",
            from_context=True,
            is_add=isinstance(instr, Add),
        )
        self._copy_commit(st, instr, plan, tree, plan.digest, chmod)

    def _copy_commit(
        self, st: StageState, instr: Copy | Add, plan: Any, tree: Any, sources: str, chmod: Any
    ) -> None:
        key = step_key(st.image_id, describe(instr, st.config.get("WorkingDir")), sources)
        if self._cached(st, key):
            return
        kind = "multi"
        if len(plan.items) + len(plan.archives) == 1:
            kind = "dir" if plan.items and plan.items[0][0].type == "5" else "file"
        comment = f"{instr.name.upper()} {kind}:{plan.digest} in {instr.dest} "
        top = st.chain_ids[-1] if st.chain_ids else None
        with workspace(self.engine, top) as key_:
            root = RootFS(mount_point(self.engine, key_))
            owner = parse_chown(instr.chown, root)
            write_plan(
                plan,
                tree,
                root,
                owner=owner,
                chmod=chmod,
                archive_owner=owner if instr.chown else None,
                check=self.check,
            )
            self._commit(st, key_, ic.nop_created_by(st.config, comment))
        self.cache.put(key, st.image_id)

    def _source_image(self, name: str) -> str:
        if name.isdigit():
            index = int(name)
            if index >= len(self.stages):
                raise BuildError(f"invalid from flag value {name}: refers to current build stage")
            return self.stages[index].image_id
        for stage in self.stages:
            if stage.name and stage.name == name.lower():
                return stage.image_id
        try:
            return self.engine.images.resolve(name).id
        except (NotFound, InvalidParameter) as e:
            raise BuildError(f"invalid from flag value {name}: {e.message}") from None

    def _workdir_step(self, st: StageState, instr: Workdir) -> None:
        config = copy.deepcopy(st.config)
        comment, _ = ic.apply_metadata(config, instr)
        key = step_key(st.image_id, describe(instr, comment))
        if self._cached(st, key):
            return
        st.config = config
        top = st.chain_ids[-1] if st.chain_ids else None
        with workspace(self.engine, top) as key_:
            RootFS(mount_point(self.engine, key_)).mkdirs(config["WorkingDir"], (0, 0))
            self._commit(st, key_, ic.nop_created_by(st.config, comment))
        self.cache.put(key, st.image_id)


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


def _with_heredocs(context: BuildContext, instr: Copy | Add) -> Any:
    if not instr.contents:
        return context
    from dockyard.build.copy import Node

    class _Tree:
        def lookup(self, path: str) -> Any:
            for c in instr.contents:
                if path == f"\0heredoc/{c.path}".lstrip("/"):
                    data = c.data.encode()
                    return Node(c.path, "0", 0o644, 0, len(data), f"\0{c.path}")
            return context.lookup(path)

        def walk(self, top: str) -> Any:
            return context.walk(top)

        def chunks(self, node: Any) -> Any:
            if node.linkname.startswith("\0"):
                name = node.linkname[1:]
                return iter([next(c.data.encode() for c in instr.contents if c.path == name)])
            return context.chunks(node)

        def all_paths(self) -> Any:
            return context.all_paths()

    return _Tree()
