"""Garbage collection: delete blobs no manifest references, safely beside a serving registry.

Mark: every manifest revision of every repository, and the config, layers and index entries it
names. Sweep: blobs neither marked nor touched within `grace` seconds (the newest of the blob's
own mtime and of its repository links, which uploads and mounts refresh), then repository links
whose blob is gone, then uploads older than `upload_age`.

Safety while serving: the whole mark and sweep holds the GC lock exclusively, and every writer
that makes a blob referenced (upload commit, mount, manifest put) holds it shared, so a manifest
is either stored before the mark (its blobs are marked) or checked for its blobs after the sweep.
The grace period keeps a blob that was uploaded but not yet referenced by a manifest.
"""

from __future__ import annotations

import os
import time

from .manifests import references
from .storage import Storage


def collect(
    storage: Storage, *, grace: float = 3600.0, upload_age: float = 86400.0, dry_run: bool = False
) -> dict[str, int]:
    now = time.time()
    stats = {"manifests": 0, "blobs_kept": 0, "blobs_deleted": 0, "bytes_freed": 0}
    stats["links_deleted"] = 0
    with storage.gc_lock(exclusive=True):
        marked: set[str] = set()
        touched: dict[str, float] = {}
        repos = storage.repositories()
        for name in repos:
            for digest in storage.revisions(name):
                stats["manifests"] += 1
                marked.add(digest)
                found = storage.get_manifest(name, digest)
                if found is not None:
                    marked.update(references(found[0]))
            for digest, path in storage.layer_links(name):
                try:
                    mtime = os.stat(path).st_mtime
                except FileNotFoundError:
                    continue
                touched[digest] = max(touched.get(digest, 0.0), mtime)
        for digest, path in list(storage.all_blobs()):
            if digest in marked:
                stats["blobs_kept"] += 1
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if now - max(st.st_mtime, touched.get(digest, 0.0)) < grace:
                stats["blobs_kept"] += 1
                continue
            stats["blobs_deleted"] += 1
            stats["bytes_freed"] += st.st_size
            if not dry_run:
                os.unlink(path)
        if not dry_run:
            for name in repos:
                for digest, path in storage.layer_links(name):
                    if storage.blob_size(digest) is None:
                        os.unlink(path)
                        stats["links_deleted"] += 1
    if not dry_run:
        stats["uploads_deleted"] = storage.clean_uploads(upload_age)
    return stats
