"""The registry's filesystem layout. Blob bytes are shared; visibility is per repository.

    <root>/blobs/<algo>/<hex>                           content, written once, never modified
    <root>/uploads/<uuid>/data, repo                     uploads in progress (never content)
    <root>/repositories/<name>/_layers/<algo>/<hex>      the repository may serve this blob
    <root>/repositories/<name>/_manifests/revisions/<algo>/<hex>   a manifest (holds its type)
    <root>/repositories/<name>/_manifests/tags/<tag>     a tag (holds the manifest digest)
    <root>/repositories/<name>/_referrers/<algo>-<subject hex>/<algo>-<hex>  referrer descriptor

Repository components never start with "_", so the reserved directories cannot clash with a
nested repository name. Every file is written to a temp name and renamed into place, so a
reader sees a whole file or none. Writers that make a blob referenced (upload commit, mount,
manifest put) hold the GC lock shared; the collector holds it exclusively (see gc.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator

from .names import ALGORITHMS


def _split(digest: str) -> tuple[str, str]:
    algo, _, hexpart = digest.partition(":")
    return algo, hexpart


def write_atomic(path: str, data: bytes, *, sync: bool = False) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.rename(tmp, path)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


class Storage:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.blob_dir = os.path.join(self.root, "blobs")
        self.upload_dir = os.path.join(self.root, "uploads")
        self.repo_dir = os.path.join(self.root, "repositories")
        self.lock_path = os.path.join(self.root, "gc.lock")
        for d in (self.blob_dir, self.upload_dir, self.repo_dir):
            os.makedirs(d, exist_ok=True)
        for algo in ALGORITHMS:
            os.makedirs(os.path.join(self.blob_dir, algo), exist_ok=True)

    # -- the GC lock -----------------------------------------------------------------------
    @contextlib.contextmanager
    def gc_lock(self, exclusive: bool = False) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        algo, hexpart = _split(digest)
        return os.path.join(self.blob_dir, algo, hexpart)

    def blob_size(self, digest: str) -> int | None:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            return None

    def put_blob_bytes(self, digest: str, data: bytes) -> None:
        path = self.blob_path(digest)
        if os.path.exists(path):
            os.utime(path)
        else:
            write_atomic(path, data, sync=True)

    def all_blobs(self) -> Iterator[tuple[str, str]]:
        """(digest, path) of every stored blob."""
        for algo in ALGORITHMS:
            base = os.path.join(self.blob_dir, algo)
            for entry in os.scandir(base):
                if ".tmp-" not in entry.name:
                    yield f"{algo}:{entry.name}", entry.path

    # -- repositories and links ------------------------------------------------------------
    def _repo(self, name: str) -> str:
        return os.path.join(self.repo_dir, name)

    def repo_exists(self, name: str) -> bool:
        return os.path.isdir(self._repo(name))

    def _layer_link(self, name: str, digest: str) -> str:
        algo, hexpart = _split(digest)
        return os.path.join(self._repo(name), "_layers", algo, hexpart)

    def link_blob(self, name: str, digest: str) -> None:
        path = self._layer_link(name, digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab"):
            pass
        os.utime(path)  # a fresh link is what the GC's grace period measures

    def has_blob(self, name: str, digest: str) -> bool:
        return os.path.exists(self._layer_link(name, digest)) and os.path.exists(
            self.blob_path(digest)
        )

    def unlink_blob(self, name: str, digest: str) -> bool:
        return _unlink(self._layer_link(name, digest))

    def repositories(self) -> list[str]:
        found = []
        for dirpath, dirnames, _ in os.walk(self.repo_dir):
            if "_manifests" in dirnames or "_layers" in dirnames:
                found.append(os.path.relpath(dirpath, self.repo_dir))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    def layer_links(self, name: str) -> Iterator[tuple[str, str]]:
        base = os.path.join(self._repo(name), "_layers")
        for algo in ALGORITHMS:
            try:
                entries = list(os.scandir(os.path.join(base, algo)))
            except FileNotFoundError:
                continue
            for entry in entries:
                yield f"{algo}:{entry.name}", entry.path

    # -- uploads ---------------------------------------------------------------------------
    def new_upload(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        path = os.path.join(self.upload_dir, upload_id)
        os.makedirs(path)
        with open(os.path.join(path, "repo"), "w") as f:
            f.write(name)
        open(os.path.join(path, "data"), "wb").close()
        return upload_id

    def upload_data(self, upload_id: str) -> str:
        return os.path.join(self.upload_dir, upload_id, "data")

    def upload_repo(self, upload_id: str) -> str | None:
        """The repository an upload belongs to, or None when there is no such upload."""
        if "/" in upload_id or upload_id in ("", ".", ".."):
            return None
        try:
            with open(os.path.join(self.upload_dir, upload_id, "repo")) as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def upload_size(self, upload_id: str) -> int:
        return os.stat(self.upload_data(upload_id)).st_size

    def commit_upload(self, name: str, upload_id: str, digest: str) -> None:
        """Publish a verified upload as a blob and link it into the repository."""
        data = self.upload_data(upload_id)
        with self.gc_lock():
            target = self.blob_path(digest)
            if os.path.exists(target):
                os.utime(target)
            else:
                with open(data, "rb+") as f:
                    os.fsync(f.fileno())
                os.rename(data, target)
            self.link_blob(name, digest)
        self.remove_upload(upload_id)

    def remove_upload(self, upload_id: str) -> None:
        shutil.rmtree(os.path.join(self.upload_dir, upload_id), ignore_errors=True)

    def clean_uploads(self, max_age: float) -> int:
        """Remove uploads untouched for max_age seconds; returns how many."""
        removed = 0
        now = time.time()
        for entry in os.scandir(self.upload_dir):
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue  # finished or cancelled meanwhile
            try:  # a brand-new upload may have no data file yet: its directory's time counts
                mtime = max(mtime, os.stat(self.upload_data(entry.name)).st_mtime)
            except FileNotFoundError:
                pass
            if now - mtime > max_age:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed

    # -- manifests and tags ----------------------------------------------------------------
    def _revision(self, name: str, digest: str) -> str:
        algo, hexpart = _split(digest)
        return os.path.join(self._repo(name), "_manifests", "revisions", algo, hexpart)

    def _tag(self, name: str, tag: str) -> str:
        return os.path.join(self._repo(name), "_manifests", "tags", tag)

    def _referrer_dir(self, name: str, subject: str) -> str:
        return os.path.join(self._repo(name), "_referrers", subject.replace(":", "-"))

    def has_manifest(self, name: str, digest: str) -> bool:
        return os.path.exists(self._revision(name, digest))

    def put_manifest(
        self,
        name: str,
        digest: str,
        data: bytes,
        media_type: str,
        tags: list[str],
        subject: str | None,
        referrer: dict | None,
    ) -> None:
        self.put_blob_bytes(digest, data)
        write_atomic(self._revision(name, digest), media_type.encode())
        if subject is not None and referrer is not None:
            path = os.path.join(self._referrer_dir(name, subject), digest.replace(":", "-"))
            write_atomic(path, json.dumps(referrer).encode())
        for tag in tags:
            write_atomic(self._tag(name, tag), digest.encode())

    def resolve(self, name: str, reference: str) -> str | None:
        """The digest a tag or digest reference names in this repository."""
        if ":" in reference:
            return reference if self.has_manifest(name, reference) else None
        try:
            with open(self._tag(name, reference)) as f:
                digest = f.read()
        except FileNotFoundError:
            return None
        return digest if self.has_manifest(name, digest) else None

    def get_manifest(self, name: str, digest: str) -> tuple[bytes, str] | None:
        try:
            with open(self._revision(name, digest)) as f:
                media_type = f.read()
            with open(self.blob_path(digest), "rb") as f:
                return f.read(), media_type
        except FileNotFoundError:
            return None

    def delete_tag(self, name: str, tag: str) -> bool:
        return _unlink(self._tag(name, tag))

    def delete_manifest(self, name: str, digest: str, subject: str | None) -> bool:
        """Remove a manifest from a repository, with every tag that points at it."""
        if not _unlink(self._revision(name, digest)):
            return False
        for tag in self.tags(name) or []:
            path = self._tag(name, tag)
            try:
                with open(path) as f:
                    if f.read() == digest:
                        _unlink(path)
            except FileNotFoundError:
                pass
        if subject is not None:
            directory = self._referrer_dir(name, subject)
            _unlink(os.path.join(directory, digest.replace(":", "-")))
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        return True

    def tags(self, name: str) -> list[str] | None:
        try:
            names = os.listdir(os.path.join(self._repo(name), "_manifests", "tags"))
        except FileNotFoundError:
            return [] if self.repo_exists(name) else None
        return sorted(n for n in names if ".tmp-" not in n)

    def revisions(self, name: str) -> Iterator[str]:
        base = os.path.join(self._repo(name), "_manifests", "revisions")
        for algo in ALGORITHMS:
            try:
                names = os.listdir(os.path.join(base, algo))
            except FileNotFoundError:
                continue
            for hexpart in names:
                if ".tmp-" not in hexpart:
                    yield f"{algo}:{hexpart}"

    def referrers(self, name: str, subject: str) -> list[dict]:
        directory = self._referrer_dir(name, subject)
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            if ".tmp-" in entry:
                continue
            try:
                with open(os.path.join(directory, entry), "rb") as f:
                    found.append(json.loads(f.read()))
            except (FileNotFoundError, ValueError):
                continue
        return found
