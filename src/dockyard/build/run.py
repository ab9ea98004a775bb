"""RUN: the command in a container made through the engine, its output streamed, its changes
a layer. Also the snapshot workspace COPY, ADD and WORKDIR write into."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dockyard.engine.shims import read_frame
from dockyard.errors import DockyardError, NotFound
from dockyard.snapshot.snapshotter import TRANSIENT, Snapshotter

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

log = logging.getLogger("dockyard.build")
STDERR_START, STDERR_END = "\x1b[91m", "\x1b[0m"


class Cancelled(DockyardError):
    status = 499


@contextmanager
def workspace(engine: Engine, parent_chain: str | None, readonly: bool = False) -> Iterator[str]:
    """A new snapshot on `parent_chain` (writable, or a read-only view) mounted on a
    directory of its own (`mount_point`); yields its key. Diff it inside the block: it is
    unmounted and removed when the block ends, whatever happened."""
    key = TRANSIENT + ("build-view-" if readonly else "build-") + uuid.uuid4().hex
    target = os.path.join(engine.tmp_root, key.replace("/", "-"))
    os.makedirs(target)
    try:
        if readonly:
            engine.snapshots.view(key, parent_chain)
        else:
            engine.snapshots.prepare(key, parent_chain)
        try:
            engine.snapshots.mount(key, target)
            try:
                yield key
            finally:
                Snapshotter.unmount(target)
        finally:
            with contextlib.suppress(NotFound):
                engine.snapshots.remove(key)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


def mount_point(engine: Engine, key: str) -> str:
    return os.path.join(engine.tmp_root, key.replace("/", "-"))


class RunStep:
    """One RUN's container: created, attached, started, waited for; killed on cancel."""

    def __init__(self, engine: Engine, out: Callable[[str], None]) -> None:
        self.engine = engine
        self.out = out
        self.container_id: str | None = None
        self._lock = threading.Lock()
        self.cancelled = False

    def create(self, body: dict[str, Any]) -> str:
        created = self.engine.containers.create(body)
        self.container_id = created["Id"]
        return self.container_id

    def run(self) -> int:
        """Start the container, stream its output, and return its exit code."""
        cid = self.container_id
        assert cid is not None
        _, attached = self.engine.containers.attach(cid, False, True, True)
        try:
            self.engine.containers.start(cid)
        except BaseException:
            attached.cancel()
            raise
        sock = attached.result(timeout=60)
        try:
            while (frame := read_frame(sock)) is not None:
                stream, payload = frame
                text = payload.decode("utf-8", "replace")
                if stream == 1:
                    self.out(text)
                elif stream == 2:
                    self.out(STDERR_START + text + STDERR_END)
        finally:
            sock.close()
        result = self.engine.containers.wait(cid).result()
        if self.cancelled:
            raise Cancelled("build cancelled")
        return int(result.get("StatusCode") or 0)

    def cancel(self) -> None:
        self.cancelled = True
        cid = self.container_id
        if cid is not None:
            with contextlib.suppress(Exception):
                self.engine.containers.kill(cid)

    def remove(self) -> None:
        if self.container_id is not None:
            try:
                self.engine.containers.remove(self.container_id, force=True, volumes=True)
            except NotFound:
                pass
            except Exception:
                log.exception("removing build container %s", self.container_id[:12])
