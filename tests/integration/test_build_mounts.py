"""RUN --mount in builds (BuildKit's semantics on the classic builder): cache mounts kept
between builds per id and out of the image, binds of the context and of stages (read-only,
or rw with the writes thrown away), tmpfs, and the cache key covering the mount specs."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Daemon
from tests.integration.test_api import call
from tests.integration.test_build import (
    build,
    context_tar,
    inspect,
    ok,
    run_out,
    transient_snapshots,
)


@pytest.fixture
def tag(daemon: Daemon) -> Iterator[str]:
    name = f"mounts-{uuid.uuid4().hex[:8]}"
    yield name
    for image in call(daemon, "GET", "/images/json").json():  # type: ignore[union-attr]
        for t in image["RepoTags"] or []:
            if t.startswith(name):
                call(daemon, "DELETE", f"/images/{t}")


def layers(daemon: Daemon, ref: str) -> list[str]:
    return inspect(daemon, ref)["RootFS"]["Layers"]  # type: ignore[no-any-return]


def top_layer(daemon: Daemon, ref: str) -> list[str]:
    """The names in the image's top layer (docker-archive from GET /images/{ref}/get)."""
    reply = call(daemon, "GET", f"/images/{ref}/get")
    assert reply.status == 200, reply
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = archive.extractfile(manifest[0]["Layers"][-1])
        assert layer is not None
        with tarfile.open(fileobj=io.BytesIO(layer.read())) as tar:
            return sorted(m.name.strip("/") for m in tar.getmembers())


def absent(daemon: Daemon, ref: str, path: str) -> bool:
    script = f"test -e {path} && echo present || echo absent"
    return run_out(daemon, ref, "sh", "-c", script) == "absent\n"


def no_leftovers(daemon: Daemon) -> None:
    tmp = daemon.data_root / "tmp"
    assert not [n for n in os.listdir(tmp) if n.startswith("build")] if tmp.exists() else True
    assert not transient_snapshots(daemon)


def test_cache_mount_persists_per_id_and_stays_out_of_the_image(daemon: Daemon, tag: str) -> None:
    cid = uuid.uuid4().hex[:8]
    first = f"FROM busybox\nRUN --mount=type=cache,target=/cache,id={cid} echo one > /cache/f\n"
    ok(daemon, {"Dockerfile": first}, t=f"{tag}:one")
    # the RUN wrote only into the cache: no layer, and no /cache mount point left behind
    assert layers(daemon, f"{tag}:one") == layers(daemon, "busybox")
    assert absent(daemon, f"{tag}:one", "/cache")
    second = (
        "FROM busybox\n"
        f"RUN --mount=type=cache,target=/cache,id={cid} cat /cache/f > /seen\n"
        f"RUN --mount=type=cache,target=/cache,id=other-{cid} ls -A /cache > /other\n"
        f"RUN --mount=type=cache,target=/var/c/{cid} echo x > /var/c/{cid}/y && echo kept > /k\n"
    )
    ok(daemon, {"Dockerfile": second}, t=f"{tag}:two")
    assert run_out(daemon, f"{tag}:two", "cat", "/seen", "/other") == "one\n"
    assert run_out(daemon, f"{tag}:two", "cat", "/k") == "kept\n"
    assert absent(daemon, f"{tag}:two", "/cache")
    assert absent(daemon, f"{tag}:two", "/var/c")  # mount point and its parents made for it
    assert top_layer(daemon, f"{tag}:two") == ["k"]  # not /var (an unchanged parent) either
    caches = daemon.data_root / "build-cache-mounts"
    assert len(os.listdir(caches)) >= 3
    no_leftovers(daemon)


def test_cache_mount_options(daemon: Daemon, tag: str) -> None:
    cid = uuid.uuid4().hex[:8]
    dockerfile = (
        "FROM busybox AS seed\n"
        "RUN mkdir -p /s/d && echo seeded > /s/d/f\n"
        "FROM busybox\n"
        f"RUN --mount=type=cache,id={cid}-m,target=/c,mode=0700,uid=123,gid=45 "
        "stat -c '%a %u %g' /c > /mode\n"
        f"RUN --mount=type=cache,id={cid}-f,target=/c,from=seed,source=/s/d cat /c/f > /from\n"
        f"RUN --mount=type=cache,id={cid}-l,target=/c,sharing=locked touch /c/l\n"
        f"RUN --mount=type=cache,id={cid}-l,target=/c,sharing=private,ro ls /c > /ro\n"
    )
    ok(daemon, {"Dockerfile": dockerfile}, t=tag)
    assert run_out(daemon, tag, "cat", "/mode", "/from", "/ro") == "700 123 45\nseeded\nl\n"
    # a link a step left in a cache does not lead a later `source=` out of it
    plant = f"FROM busybox\nRUN --mount=type=cache,id={cid}-e,target=/c ln -s / /c/esc\n"
    ok(daemon, {"Dockerfile": plant})
    follow = (
        "FROM busybox\n"
        f"RUN --mount=type=cache,id={cid}-e,target=/m,source=esc ls /m > /a\n"
        f"RUN --mount=type=cache,id={cid}-e,target=/m,source=../../.. ls /m > /b\n"
    )
    ok(daemon, {"Dockerfile": follow}, t=f"{tag}:follow")
    assert run_out(daemon, f"{tag}:follow", "cat", "/a", "/b") == "esc\nesc\n"


def test_bind_mounts_of_the_context(daemon: Daemon, tag: str) -> None:
    marker = uuid.uuid4().hex[:8]
    dockerfile = (
        "FROM busybox\n"
        f"RUN --mount=type=bind,source=sub,target=/src cat /src/a.txt /src/deep/b > /out # {marker}\n"
        "RUN --mount=type=bind,source=sub,target=/src "
        "(touch /src/x 2>/dev/null && echo writable || echo readonly) > /ro\n"
        "RUN --mount=type=bind,source=sub,target=/src,rw echo new > /src/a.txt && "
        "cat /src/a.txt > /rw1\n"
        "RUN --mount=type=bind,source=sub/a.txt,target=/one.txt cat /one.txt > /rw2\n"
        "RUN --mount=type=bind,source=link,target=/l cat /l/a.txt > /via-link\n"
        "RUN --mount=type=bind,target=/ctx ls /ctx > /root-listing\n"
    )
    files = {"Dockerfile": dockerfile, "sub/a.txt": "hello\n", "sub/deep/b": "deep\n"}
    body = io.BytesIO(context_tar(files))
    with tarfile.open(fileobj=body, mode="a") as tar:  # a symlink that climbs: stays inside
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../sub"
        tar.addfile(info)
    result = build(daemon, body.getvalue(), t=tag)
    assert result.error is None, result.stream + str(result.lines[-1])
    out = run_out(daemon, tag, "cat", "/out", "/ro", "/rw1", "/rw2", "/via-link")
    assert out == "hello\ndeep\nreadonly\nnew\nhello\nhello\n"  # the rw write was thrown away
    assert run_out(daemon, tag, "cat", "/root-listing") == "Dockerfile\nlink\nsub\n"
    for path in ("/src", "/one.txt", "/l", "/ctx"):
        assert absent(daemon, tag, path), path
    no_leftovers(daemon)


def test_bind_from_a_stage_and_an_image(daemon: Daemon, tag: str) -> None:
    dockerfile = (
        "FROM busybox AS gen\n"
        "RUN mkdir /g && echo generated > /g/file\n"
        "FROM busybox\n"
        "RUN --mount=type=bind,from=gen,source=/g,target=/mnt/g cat /mnt/g/file > /out\n"
        "RUN --mount=type=bind,from=gen,source=/g,target=/mnt/g,rw "
        "echo changed > /mnt/g/file && cat /mnt/g/file > /rw\n"
        "RUN --mount=type=bind,from=0,source=/g/file,target=/again cat /again >> /out\n"
        "RUN --mount=type=bind,from=busybox,target=/bb test -x /bb/bin/sh && echo sh >> /out\n"
    )
    ok(daemon, {"Dockerfile": dockerfile}, t=tag)
    assert run_out(daemon, tag, "cat", "/out", "/rw") == "generated\ngenerated\nsh\nchanged\n"
    assert absent(daemon, tag, "/mnt")
    missing = build(
        daemon,
        context_tar(
            {"Dockerfile": "FROM busybox\nRUN --mount=type=bind,source=nope,target=/n true\n"}
        ),
    )
    assert missing.error == 'failed to compute cache key: "/nope": not found'
    no_leftovers(daemon)


def test_tmpfs_mount(daemon: Daemon, tag: str) -> None:
    dockerfile = (
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/t,size=1m "
        "grep ' /t ' /proc/mounts | cut -d' ' -f3 > /fs && echo x > /t/f\n"
    )
    ok(daemon, {"Dockerfile": dockerfile}, t=tag)
    assert run_out(daemon, tag, "cat", "/fs") == "tmpfs\n"
    assert absent(daemon, tag, "/t")


def test_cache_key_covers_the_mount_specs_and_bound_content(daemon: Daemon, tag: str) -> None:
    marker = uuid.uuid4().hex[:8]

    def dockerfile(spec: str) -> str:
        return f"FROM busybox\nRUN --mount={spec} echo {marker}\n"

    cache_a = dockerfile("type=cache,target=/c,id=a")
    ok(daemon, {"Dockerfile": cache_a})
    assert " ---> Using cache\n" in ok(daemon, {"Dockerfile": cache_a}).stream
    for spec in ("type=cache,target=/c,id=b", "type=cache,target=/d,id=a", "type=tmpfs,target=/c"):
        assert "Using cache" not in ok(daemon, {"Dockerfile": dockerfile(spec)}).stream, spec
    bind = dockerfile("type=bind,source=f,target=/f")
    ok(daemon, {"Dockerfile": bind, "f": "1"})
    assert "Using cache" in ok(daemon, {"Dockerfile": bind, "f": "1", "other": "x"}).stream
    assert "Using cache" not in ok(daemon, {"Dockerfile": bind, "f": "2"}).stream
