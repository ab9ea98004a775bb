"""`docker commit`: a container's writable layer as one new layer on top of its image.

As moby does it (daemon/commit.go, images/image_commit.go, image.NewChildImage): the new
config is the request's Config (the container's when none is given) with the `-c` changes
applied, then completed from the container's Config (`merge`); the image config copies the
parent's architecture, os and history, and adds a history entry (created_by: the container's
Cmd joined by spaces, author, comment; empty_layer when nothing changed, and then no layer),
`container` and `container_config`. The image's parent is the container's image, so `docker
history` walks back through it and `rmi` of the parent sees a dependent child.

The layer is the snapshotter's diff of the container (containerd's `compare`), streamed through
a pipe into the layer store's ingest (hash, compress, unpack in one pass), while the container
is frozen unless `pause` is false.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard import reference
from dockyard.errors import Conflict, DockyardError, NotFound
from dockyard.image.changes import apply_changes
from dockyard.image.model import canonical_json, rfc3339_nano
from dockyard.image.store import LayerRecord
from dockyard.image.tarstream import DIR, END_OF_ARCHIVE, REG, TarHeader, TarReader, encode_header
from dockyard.snapshot.changes import Change

from .container_files import INIT_PATHS, is_init_path, without_init_paths
from .container_store import Container

if TYPE_CHECKING:
    from .engine import Engine
    from .layers import LayerSession

log = logging.getLogger(__name__)
CHUNK = 1 << 20

# Go's container.Config, in field order; the omitempty fields are left out when empty.
_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""),
    ("Domainname", ""),
    ("User", ""),
    ("AttachStdin", False),
    ("AttachStdout", False),
    ("AttachStderr", False),
    ("ExposedPorts", None),
    ("Tty", False),
    ("OpenStdin", False),
    ("StdinOnce", False),
    ("Env", None),
    ("Cmd", None),
    ("Healthcheck", None),
    ("ArgsEscaped", False),
    ("Image", ""),
    ("Volumes", None),
    ("WorkingDir", ""),
    ("Entrypoint", None),
    ("NetworkDisabled", False),
    ("MacAddress", ""),
    ("OnBuild", None),
    ("Labels", None),
    ("StopSignal", ""),
    ("StopTimeout", None),
    ("Shell", None),
)
_OMIT_EMPTY = {
    "ExposedPorts",
    "Healthcheck",
    "ArgsEscaped",
    "NetworkDisabled",
    "MacAddress",
    "StopSignal",
    "StopTimeout",
    "Shell",
}


def go_config(config: dict[str, Any]) -> dict[str, Any]:
    """A Config as Go marshals the struct: every field in order, omitempty ones when set."""
    out: dict[str, Any] = {}
    for name, default in _CONFIG_FIELDS:
        value = config.get(name, default)
        empty = value is None or (name != "StopTimeout" and value in ("", False, {}, []))
        if name in _OMIT_EMPTY and empty:
            continue
        out[name] = value
    return out


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def merge(user: dict[str, Any], image: dict[str, Any]) -> None:
    """moby's merge: fill what the user's Config leaves empty from `image` (in place)."""
    if not user.get("User"):
        user["User"] = image.get("User") or ""
    if not user.get("ExposedPorts"):
        user["ExposedPorts"] = image.get("ExposedPorts")
    elif image.get("ExposedPorts"):
        for port, value in image["ExposedPorts"].items():
            user["ExposedPorts"].setdefault(port, value)
    if not user.get("Env"):
        user["Env"] = image.get("Env")
    else:
        keys = {_env_key(e) for e in user["Env"]}
        user["Env"] = [
            *user["Env"],
            *(e for e in image.get("Env") or [] if _env_key(e) not in keys),
        ]
    labels = user.get("Labels")
    if labels is None:
        labels = user["Labels"] = {}
    for key, value in (image.get("Labels") or {}).items():
        labels.setdefault(key, value)
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = image.get("Cmd")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = image.get("Entrypoint")
    if image.get("Healthcheck"):
        if not user.get("Healthcheck"):
            user["Healthcheck"] = copy.deepcopy(image["Healthcheck"])
        else:
            mine = user["Healthcheck"]
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not mine.get(key) and image["Healthcheck"].get(key):
                    mine[key] = image["Healthcheck"][key]
    if not user.get("WorkingDir"):
        user["WorkingDir"] = image.get("WorkingDir") or ""
    if not user.get("Volumes"):
        user["Volumes"] = image.get("Volumes")
    elif image.get("Volumes"):
        user["Volumes"].update(image["Volumes"])
    if not user.get("StopSignal"):
        user["StopSignal"] = image.get("StopSignal") or ""


def filter_tar(
    source: BinaryIO,
    out: BinaryIO,
    drop: Callable[[str], bool],
    hold: Callable[[str], bool] | None = None,
) -> None:
    """Copy the tar `source` to `out` without the entries whose absolute path `drop` names,
    nor the directories `hold` names (by default: those above a dropped init path) unless
    something else in them comes."""
    if hold is None:

        def hold(path: str) -> bool:
            return any(drop(p) for p in INIT_PATHS if p.startswith(path + "/"))

    reader = TarReader(source, CHUNK)
    held: list[TarHeader] = []
    while (h := reader.next()) is not None:
        path = "/" + h.name.strip("/")
        held = [d for d in held if path.startswith("/" + d.name.strip("/") + "/")]
        if drop(path):
            continue
        if h.type == DIR and hold(path):
            held.append(h)
            continue
        for parent in held:
            out.write(encode_header(parent))
        held.clear()
        out.write(encode_header(h))
        if h.type == REG:
            while chunk := reader.read(CHUNK):
                out.write(chunk)
            out.write(bytes(-h.size % 512))
    out.write(END_OF_ARCHIVE)


class _Differ:
    """The snapshot's diff written into a pipe by a thread of its own (through `filter_tar`
    with the `filtered` (drop, hold) pair when given); `stream` reads it."""

    def __init__(self, engine: Engine, key: str, filtered: _Filter | None) -> None:
        read_fd, write_fd = os.pipe()
        self.stream = open(read_fd, "rb", buffering=CHUNK)  # noqa: SIM115 - closed in close()
        self._out = open(write_fd, "wb", buffering=CHUNK)  # noqa: SIM115 - closed by the thread
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(engine, key, filtered), name="commit-diff", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Engine, key: str, filtered: _Filter | None) -> None:
        try:
            with self._out:
                if filtered is not None:
                    _diff_filtered(engine, key, self._out, filtered)
                else:
                    engine.snapshots.diff(key, self._out)
        except BaseException as e:  # reported by close(); the reader sees a short tar
            self.error = e

    def close(self) -> None:
        """Stop reading (the writer gets EPIPE if it is not done) and wait for the thread."""
        self.stream.close()
        self._thread.join()


def _diff_filtered(engine: Engine, key: str, out: BinaryIO, filtered: _Filter) -> None:
    read_fd, write_fd = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_fd, "wb", buffering=CHUNK) as raw:
                engine.snapshots.diff(key, raw)
        except BaseException as e:
            failed.append(e)

    thread = threading.Thread(target=produce, name="commit-diff-raw", daemon=True)
    thread.start()
    try:
        with open(read_fd, "rb", buffering=CHUNK) as source:
            filter_tar(source, out, *filtered)
    finally:
        thread.join()
    if failed:
        raise failed[0]


_Filter = tuple[Callable[[str], bool], Callable[[str], bool] | None]


def mount_stubs(changes: list[Change], stubs: Collection[str]) -> tuple[set[str], set[str]]:
    """Of the places `stubs` (mount targets and the directories above them), those a runtime
    made as mount points: added, with nothing else added under them (BuildKit's
    MountStubsCleaner removes them after a step). Returns them and the directories above them
    that are in the diff only as their parents (listed as changed for the stubs below them;
    like `without_init_paths`, a change of such a directory's own mode or owner is not told
    apart from that)."""
    added = {c.path for c in changes if c.kind == "A" and c.path in stubs}
    if not added:
        return set(), set()
    others = [c.path for c in changes if c.path not in added and not is_init_path(c.path)]
    made = {s for s in added if not any(p.startswith(s + "/") for p in others)}
    parents: set[str] = set()
    for path in made:
        parent = path.rsplit("/", 1)[0]
        while parent and not any(p.startswith(parent + "/") for p in others):
            parents.add(parent)
            parent = parent.rsplit("/", 1)[0]
    return made, parents - made


def diff_layer(
    engine: Engine,
    session: LayerSession,
    key: str,
    parent_chain: str | None,
    stubs: Collection[str] = (),
) -> LayerRecord | None:
    """Active snapshot `key`'s changes (without the container init paths, nor the mount points
    `mount_stubs` finds among `stubs`) stored as a new layer on `parent_chain` in `session`;
    None when nothing changed."""
    raw_changes = engine.snapshots.changes(key)
    made, parents = mount_stubs(raw_changes, stubs)
    kept = [c for c in without_init_paths(raw_changes) if c.path not in made | parents]
    if not kept:
        return None
    filtered: _Filter | None = None
    if made:

        def drop(path: str) -> bool:
            return is_init_path(path) or path in made

        def hold(path: str) -> bool:
            return path in parents or any(p.startswith(path + "/") for p in INIT_PATHS)

        filtered = (drop, hold)
    elif any(is_init_path(change.path) for change in raw_changes):
        filtered = (is_init_path, None)
    differ = _Differ(engine, key, filtered)
    try:
        record = session.ingest(differ.stream, parent_chain, escaping_symlinks=True)
    except BaseException as e:
        differ.close()
        if differ.error is not None:
            raise DockyardError(f"diffing {key}: {differ.error}") from e
        raise
    differ.close()
    if differ.error is not None:
        raise DockyardError(f"diffing {key}: {differ.error}")
    return record


def _freeze(engine: Engine, container: Container) -> Any:
    """The container's runtime handle, frozen; None when it was not running or could not
    be frozen (moby ignores that too)."""
    if not container.running or container.state.get("Paused"):
        return None
    try:
        runtime = engine.containers.runtime(container)
        runtime.pause()
    except Exception as e:
        log.debug("not pausing %s for commit: %s", container.id[:12], e)
        return None
    return runtime


def commit(
    engine: Engine,
    ref: str,
    *,
    repo: str = "",
    tag: str = "",
    comment: str = "",
    author: str = "",
    pause: bool = True,
    changes: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> str:
    """POST /commit: the new image's ID."""
    container = engine.containers.find(ref)
    target = reference.parse_repo_tag(repo, tag)
    if target is not None:
        reference.check_tag_name(target)
    if container.state.get("Dead"):
        raise Conflict(f"You cannot commit container {container.id} which is Dead")
    if container.state.get("Status") == "removing":
        raise Conflict(f"You cannot commit container {container.id} which is being removed")
    new_config = apply_changes(copy.deepcopy(config or container.config), changes or [])
    merge(new_config, container.config)
    image = engine.image_store.get(container.image_id)
    if image is None:
        raise NotFound(f"No such image: {container.image_id}")
    parent_config = engine.images.config(image.id)

    with engine.containers.lock(container.id):
        current = engine.container_store.get(container.id)
        if current is None:
            raise NotFound(f"No such container: {container.id}")
        container = current
        frozen = _freeze(engine, container) if pause else None
        try:
            return _commit_locked(
                engine,
                container,
                image.chain_ids,
                image.id,
                parent_config,
                new_config,
                target=target,
                comment=comment,
                author=author,
            )
        finally:
            if frozen is not None:
                with contextlib.suppress(Exception):
                    frozen.resume()


def _commit_locked(
    engine: Engine,
    container: Container,
    chain_ids: list[str],
    parent_id: str,
    parent_config: dict[str, Any],
    new_config: dict[str, Any],
    *,
    target: reference.Reference | None,
    comment: str,
    author: str,
) -> str:
    with engine.layers.session() as session:
        layers: list[LayerRecord] = []
        for chain_id in chain_ids:
            record = session.existing(chain_id)
            if record is None:
                raise NotFound(f"layer {chain_id} of image {parent_id} does not exist")
            layers.append(record)
        top = diff_layer(
            engine, session, container.snapshot_key, chain_ids[-1] if chain_ids else None
        )
        empty = top is None
        if top is not None:
            layers.append(top)
        now = rfc3339_nano(time.time_ns())
        entry: dict[str, Any] = {"created": now}
        if author:
            entry["author"] = author
        created_by = " ".join(container.config.get("Cmd") or [])
        if created_by:
            entry["created_by"] = created_by
        if comment:
            entry["comment"] = comment
        if empty:
            entry["empty_layer"] = True
        doc: dict[str, Any] = {
            "architecture": parent_config.get("architecture") or "amd64",
            "config": go_config(new_config),
            "container": container.id,
            "container_config": go_config(container.config),
            "created": now,
            "history": [*(parent_config.get("history") or []), entry],
            "os": parent_config.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        }
        if author:
            doc["author"] = author
        for name in ("variant", "os.version", "os.features"):
            if parent_config.get(name):
                doc[name] = parent_config[name]
        doc = dict(sorted(doc.items()))  # moby sorts the top-level keys
        return engine.images.add_image(
            canonical_json(doc), layers, targets=[target] if target else [], parent=parent_id
        )
