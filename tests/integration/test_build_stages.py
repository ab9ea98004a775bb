"""Multi-stage builds as BuildKit schedules them: only the stages the target needs, the
independent ones at once, their output still in stage order; a failing stage cancels the
others and leaves nothing behind."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Daemon
from tests.integration.test_api import call
from tests.integration.test_build import (
    build,
    containers,
    context_tar,
    left_by,
    ok,
    run_out,
    transient_snapshots,
)


@pytest.fixture
def tag(daemon: Daemon) -> Iterator[str]:
    name = f"stages-{uuid.uuid4().hex[:8]}"
    yield name
    for image in call(daemon, "GET", "/images/json").json():  # type: ignore[union-attr]
        for t in image["RepoTags"] or []:
            if t.startswith(name):
                call(daemon, "DELETE", f"/images/{t}")


def step_numbers(stream: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"^Step (\d+)/(\d+) : ", stream, re.M)]


def test_independent_stages_run_at_once(daemon: Daemon, tag: str) -> None:
    # each stage notes the host's uptime (containers share it) before and after its sleep
    stamp = "cat /proc/uptime | cut -d' ' -f1"
    dockerfile = "".join(
        f"FROM busybox AS {name}\nRUN {stamp} > /start && sleep 1 && {stamp} > /end\n"
        for name in ("a", "b")
    )
    dockerfile += (
        "FROM busybox\n"
        "COPY --from=a /start /a-start\nCOPY --from=a /end /a-end\n"
        "COPY --from=b /start /b-start\nCOPY --from=b /end /b-end\n"
    )
    result = ok(daemon, {"Dockerfile": dockerfile}, t=tag, nocache=1)
    out = run_out(daemon, tag, "cat", "/a-start", "/a-end", "/b-start", "/b-end").split()
    a_start, a_end, b_start, b_end = map(float, out)
    assert a_start < b_end and b_start < a_end, out  # the two sleeps overlapped
    # the classic output, stage after stage, steps numbered in order
    assert step_numbers(result.stream) == [(n, 9) for n in range(1, 10)]
    stream = result.stream
    assert stream.index("Step 1/9 : FROM busybox AS a") < stream.index("Step 2/9 : RUN")
    assert stream.index("Step 2/9 : RUN") < stream.index("Step 3/9 : FROM busybox AS b")
    assert stream.index("Step 3/9 : FROM busybox AS b") < stream.index("Step 5/9 : FROM busybox\n")


def test_stages_the_target_does_not_need_are_skipped(daemon: Daemon, tag: str) -> None:
    marker = uuid.uuid4().hex[:8]
    dockerfile = (
        f"FROM busybox AS unused\nARG ONLY_THERE\nRUN echo unused-{marker}\n"
        f"FROM busybox AS base\nRUN echo base-{marker} > /b\n"
        "FROM base AS mid\nRUN cat /b > /m\n"
        f"FROM busybox AS other\nRUN echo other-{marker}\n"
        "FROM busybox\nCOPY --from=mid /m /m\n"
    )
    result = ok(daemon, {"Dockerfile": dockerfile}, t=tag, buildargs={"ONLY_THERE": "1"})
    assert f"unused-{marker}" not in result.stream
    assert f"other-{marker}" not in result.stream
    assert step_numbers(result.stream) == [(n, 6) for n in range(1, 7)]
    assert "Step 1/6 : FROM busybox AS base\n" in result.stream
    assert "were not consumed" not in result.stream  # declared in a skipped stage
    assert run_out(daemon, tag, "cat", "/m") == f"base-{marker}\n"
    target = ok(daemon, {"Dockerfile": dockerfile}, target="other")
    assert step_numbers(target.stream) == [(1, 2), (2, 2)]


def test_a_single_stage_build_prints_as_before(daemon: Daemon, tag: str) -> None:
    marker = uuid.uuid4().hex[:8]
    result = ok(daemon, {"Dockerfile": f"FROM busybox\nRUN echo {marker}\n"}, t=tag)
    image = result.image_id.removeprefix("sha256:")[:12]
    cid = re.search(r" ---> Running in ([0-9a-f]{12})", result.stream)
    assert cid is not None
    base = call(daemon, "GET", "/images/busybox/json").json()["Id"]  # type: ignore[index]
    assert result.stream == (
        "Step 1/2 : FROM busybox\n"
        f" ---> {base.removeprefix('sha256:')[:12]}\n"
        f"Step 2/2 : RUN echo {marker}\n"
        f" ---> Running in {cid.group(1)}\n"
        f"{marker}\n"
        f"Removing intermediate container {cid.group(1)}\n"
        f" ---> {image}\n"
        f"Successfully built {image}\n"
        f"Successfully tagged {tag}:latest\n"
    )


def test_a_failing_stage_cancels_the_others_and_leaves_nothing(daemon: Daemon) -> None:
    marker = uuid.uuid4().hex[:8]
    dockerfile = (
        f"FROM busybox AS slow\nRUN echo slow-{marker}; sleep 60\nRUN touch /never\n"
        "FROM busybox AS cached\n"
        f"RUN --mount=type=cache,target=/c,id={marker},sharing=locked echo c-{marker}; sleep 60\n"
        f"FROM busybox AS bad\nRUN sleep 1; echo bad-{marker}; exit 7\n"
        "FROM busybox\nCOPY --from=slow /never /n\nCOPY --from=bad /x /x\n"
        "COPY --from=cached /x /y\n"
    )
    before = {i["Id"] for i in call(daemon, "GET", "/images/json?all=1").json()}  # type: ignore[union-attr]
    result = build(daemon, context_tar({"Dockerfile": dockerfile}), nocache=1)
    assert result.lines[-1]["errorDetail"] == {
        "code": 7,
        "message": f"The command '/bin/sh -c sleep 1; echo bad-{marker}; exit 7' returned a "
        "non-zero code: 7",
    }
    assert f"slow-{marker}" in result.stream and f"bad-{marker}" in result.stream
    # the failed command's container is kept, as docker keeps it; the cancelled ones are gone
    kept = left_by(daemon, result)
    assert len(kept) == 1 and "bad-" in kept[0]["Command"], kept
    call(daemon, "DELETE", f"/containers/{kept[0]['Id']}")
    assert not [c for c in containers(daemon) if marker in c["Command"]]
    after = {i["Id"] for i in call(daemon, "GET", "/images/json?all=1").json()}  # type: ignore[union-attr]
    assert after == before
    assert not transient_snapshots(daemon)
    tmp = daemon.data_root / "tmp"
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("build")]
    # the locked cache mount was released: a new build takes it at once
    again = f"FROM busybox\nRUN --mount=type=cache,target=/c,id={marker},sharing=locked true\n"
    ok(daemon, {"Dockerfile": again})
