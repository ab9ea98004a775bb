"""The engine: opens a data-root, reconciles what a crash left, and holds the services."""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid

from dockyard.content.blobs import BlobStore
from dockyard.content.db import Database
from dockyard.errors import Conflict
from dockyard.image.store import ImageStore
from dockyard.snapshot.mounts import unmount_under
from dockyard.snapshot.snapshotter import Snapshotter

from .archives import ArchiveService
from .container_store import ContainerStore
from .containers import ContainerService
from .execs import ExecService
from .images import ImageService
from .layers import LayerStore
from .pull import BlobSources, Options, PullService
from .push import PushService
from .shims import ShimManager


class Engine:
    def __init__(
        self, data_root: str, storage_driver: str | None = None, exec_root: str | None = None
    ) -> None:
        self.data_root = os.path.abspath(data_root)
        self.exec_root = os.path.abspath(exec_root or os.path.join(self.data_root, "exec"))
        os.makedirs(self.data_root, mode=0o711, exist_ok=True)
        # One daemon per data-root: a second one would corrupt the store.
        self._lock = open(os.path.join(self.data_root, "dockyard.lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise Conflict(
                f"data-root {self.data_root} is in use by another dockyard daemon"
            ) from None
        self.instance_id = self._instance_id()
        self.db = Database(os.path.join(self.data_root, "dockyard.db"))
        self.blobs = BlobStore(os.path.join(self.data_root, "content"))
        self.snapshots = Snapshotter.open(
            os.path.join(self.data_root, "snapshots"), self.db, storage_driver
        )
        self.image_store = ImageStore(self.db)
        self.layers = LayerStore(self.db, self.blobs, self.snapshots, self.image_store)
        self.images = ImageService(self.image_store, self.blobs, self.layers)
        self.tmp_root = os.path.join(self.data_root, "tmp")
        self.archives = ArchiveService(self.images, self.tmp_root)
        self.registry_options = Options()  # dockyardd --insecure-registry, --registry-mirror
        blob_sources = BlobSources(self.images)
        self.pulls = PullService(self.images, self.registry_options, blob_sources)
        self.pushes = PushService(self.images, self.registry_options, blob_sources)
        self.shims = ShimManager(self.exec_root)
        self.container_store = ContainerStore(self.db)
        self.containers = ContainerService(
            self.container_store, self.images, self.snapshots, self.shims, self.data_root
        )
        self.execs = ExecService(self.containers)
        self.images.users = self._image_users
        self.images.layers_in_use = self._layers_under_containers
        self.reconcile()
        self.containers.reconcile()

    def _instance_id(self) -> str:
        path = os.path.join(self.data_root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            value = str(uuid.uuid4())
            with open(path + ".tmp", "w") as f:
                f.write(value)
            os.rename(path + ".tmp", path)
            return value

    def reconcile(self) -> None:
        """Remove what a crash left half-done: partial blob writes, layer imports in progress,
        blobs that no row refers to (written, but the transaction that would name them never
        committed)."""
        self.blobs.clean_ingest()
        unmount_under(self.tmp_root)  # a build's snapshot mounts (build/run.py workspace)
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        self.snapshots.clean()
        used = {r["blob"] for r in self.db.query("SELECT blob FROM layers")}
        used |= {r["id"] for r in self.db.query("SELECT id FROM images")}
        for digest in list(self.blobs.digests()):
            if digest not in used:
                self.blobs.delete(digest)

    def _image_users(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.running) for c in self.container_store.using_image(image_id)]

    def _layers_under_containers(self) -> set[str]:
        """Every layer some container's writable layer is built on (its image may be gone)."""
        parents = {
            r["chain_id"]: r["parent"] for r in self.db.query("SELECT chain_id, parent FROM layers")
        }
        keep: set[str] = set()
        rows = self.db.query("SELECT parent FROM snapshots WHERE key LIKE 'container/%'")
        for row in rows:
            chain = row["parent"]
            while chain and chain not in keep:
                keep.add(chain)
                chain = parents.get(chain)
        return keep

    def shutdown(self) -> None:
        """Graceful stop: containers are stopped, the shim zygote told to go."""
        self.containers.shutdown()
        self.shims.shutdown()

    def close(self) -> None:
        self.containers.watcher.close()
        self.db.close()
        self._lock.close()
