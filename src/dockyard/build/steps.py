"""One build step: an instruction's effect on its stage, with the cache in front of it.

`StepRunner` is the half of the Builder (builder.py) that executes instructions: RUN commits
the diff of a container made through the engine (with its `--mount`s, runmounts.py), COPY,
ADD and WORKDIR write into a snapshot of the parent and store its diff as a layer, the other
instructions only change the config (an `empty_layer` history entry). A step whose cache key
(cache.py) was seen before reuses that image and says `---> Using cache`; in a stage, a miss
makes every later step a miss.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.build import imageconfig as ic
from dockyard.build.cache import CacheStore, describe, step_key
from dockyard.build.context import BuildContext
from dockyard.build.copy import DirTree, RootFS, parse_chmod, parse_chown, plan_copy, write_plan
from dockyard.build.expand import StageScope
from dockyard.build.instructions import Add, Arg, Copy, From, Instruction, Run, Workdir
from dockyard.build.run import RunStep, mount_point, workspace
from dockyard.build.runmounts import RunMounts, input_digest, stubs_of
from dockyard.engine.commit import diff_layer, go_config
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.image.model import canonical_json, rfc3339_nano

if TYPE_CHECKING:
    from dockyard.build.builder import BuildOptions
    from dockyard.engine.engine import Engine
    from dockyard.image.store import LayerRecord

__all__ = ["BuildError", "StageState", "StepRunner"]


class BuildError(DockyardError):
    """A step failed; `code` is a RUN's exit status (reported as errorDetail.code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StageState:
    index: int
    name: str
    image_id: str  # "" before the first step of a FROM scratch stage
    doc: dict[str, Any]  # the current image's whole config document
    config: dict[str, Any]  # its container config, changed step by step
    chain_ids: list[str]
    scope: StageScope
    cache_broken: bool = False  # a miss in this stage: the later steps are misses too


class StepRunner:
    """The steps of a build; the Builder supplies the stages, the output and cancellation."""

    engine: Engine
    options: BuildOptions
    cache: CacheStore
    context: BuildContext | None
    _cancelled: threading.Event
    _lock: threading.Lock
    _runs: set[RunStep]
    out: Callable[[str], None]
    check: Callable[[], None]
    stage_image: Callable[[str], str]

    # -- one step ------------------------------------------------------------------------------
    def _step(self, st: StageState, raw: Instruction, context: BuildContext | None) -> None:
        instr = st.scope.expand(raw)
        if isinstance(instr, Run):
            self._run_step(st, instr, context)
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
        if st.cache_broken:
            return False
        image_id = self.cache.get(key)
        if image_id is None:
            st.cache_broken = True  # a miss invalidates every later step
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
        stubs: frozenset[str] = frozenset(),
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
                parent = st.chain_ids[-1] if st.chain_ids else None
                top = diff_layer(self.engine, session, layer_key, parent, stubs)
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
    def _run_step(self, st: StageState, instr: Run, context: BuildContext | None) -> None:
        cmd = ic.command_line(st.config, instr)
        env_keys = {e.partition("=")[0] for e in st.config.get("Env") or []}
        arg_env = sorted(f"{k}={v}" for k, v in st.scope.args.items() if k not in env_keys)
        save_cmd = ([f"|{len(arg_env)}", *arg_env] if arg_env else []) + cmd
        mounts = instr.mounts

        def image_of(name: str) -> str:
            return self.stage_image(name)

        inputs = input_digest(mounts, context, image_of) if mounts else None
        key = step_key(st.image_id, describe(instr, save_cmd), inputs)
        if self._cached(st, key):
            return
        if not st.image_id:
            raise BuildError(f"The command '{' '.join(cmd)}' cannot run: the image has no files")
        with RunMounts(self.engine, context, image_of, self.check) as prepared:
            prepared.prepare(mounts, st.config.get("WorkingDir") or "/")
            self._run_container(st, cmd, save_cmd, prepared)
        self.cache.put(key, st.image_id)

    def _run_container(
        self, st: StageState, cmd: list[str], save_cmd: list[str], mounts: RunMounts
    ) -> None:
        env_keys = {e.partition("=")[0] for e in st.config.get("Env") or []}
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
        if mounts.binds:
            body["HostConfig"]["Binds"] = mounts.binds
        if mounts.tmpfs:
            body["HostConfig"]["Tmpfs"] = mounts.tmpfs
        step = RunStep(self.engine, self.out)
        with self._lock:
            self.check()
            self._runs.add(step)
        try:
            cid = step.create(body)
            self.out(f" ---> Running in {cid[:12]}\n")
            code = step.run()
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code
                )
            stubs = frozenset(stubs_of(mounts.targets))
            self._commit(st, f"container/{cid}", " ".join(save_cmd), stubs=stubs)
        except BaseException as e:
            with self._lock:
                self._runs.discard(step)
            # docker keeps the container of a command that failed (for a look inside) unless
            # forcerm; one that failed any other way (the client left, the commit failed) goes
            failed_command = isinstance(e, BuildError) and e.code is not None
            if self.options.force_rm or self._cancelled.is_set() or not failed_command:
                step.remove()
            raise
        with self._lock:
            self._runs.discard(step)
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
            source_id = self.stage_image(from_)
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
