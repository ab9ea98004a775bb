"""POST /build as the classic builder: each instruction's effect on the image, layers and
history, RUN output, the cache, multi-stage, build args, and bad input that leaves nothing."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import tarfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import Daemon, mounts_under
from tests.integration.test_api import Reply, call


def context_tar(files: dict[str, bytes | str], *, compress: str = "") -> bytes:
    buf = io.BytesIO()
    mode = f"w:{compress}" if compress else "w"
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(raw), 0o644, 1_700_000_000
            info.uid = info.gid = 1234
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


@dataclass
class Build:
    reply: Reply
    lines: list[dict]

    @property
    def stream(self) -> str:
        return "".join(line.get("stream", "") for line in self.lines)

    @property
    def image_id(self) -> str:
        return next(line["aux"]["ID"] for line in self.lines if "aux" in line)

    @property
    def error(self) -> str | None:
        return next((line["error"] for line in self.lines if "error" in line), None)


def build(daemon: Daemon, body: bytes, **params: object) -> Build:
    query: list[tuple[str, str]] = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            query.append((key, json.dumps(v) if isinstance(v, dict) else str(v)))
    reply = call(daemon, "POST", "/v1.41/build?" + urllib.parse.urlencode(query), body)
    lines = [json.loads(x) for x in reply.body.splitlines() if x.strip()]
    return Build(reply, lines)


def ok(daemon: Daemon, files: dict[str, bytes | str], **params: object) -> Build:
    result = build(daemon, context_tar(files), **params)
    assert result.reply.status == 200, result.reply
    assert result.error is None, result.stream + str(result.lines[-1])
    return result


def inspect(daemon: Daemon, ref: str) -> dict:
    reply = call(daemon, "GET", f"/images/{ref}/json")
    assert reply.status == 200, reply
    return reply.json()  # type: ignore[return-value]


def history(daemon: Daemon, ref: str) -> list[dict]:
    return call(daemon, "GET", f"/images/{ref}/history").json()  # type: ignore[return-value]


def containers(daemon: Daemon) -> list[dict]:
    return call(daemon, "GET", "/containers/json?all=1").json()  # type: ignore[return-value]


def run_out(daemon: Daemon, image: str, *cmd: str) -> str:
    return daemon.dockyard("run", "--rm", image, *cmd).stdout.decode()


@pytest.fixture
def tag(daemon: Daemon) -> Iterator[str]:
    name = f"built-{uuid.uuid4().hex[:8]}"
    yield name
    for image in call(daemon, "GET", "/images/json").json():  # type: ignore[union-attr]
        for t in image["RepoTags"] or []:
            if t.startswith(name):
                call(daemon, "DELETE", f"/images/{t}")


def left_by(daemon: Daemon, result: Build) -> list[dict]:
    """The containers of a build's RUN steps that still exist."""
    ran = re.findall(r" ---> Running in ([0-9a-f]{12})", result.stream)
    return [c for c in containers(daemon) if c["Id"][:12] in ran]


def transient_snapshots(daemon: Daemon) -> list[str]:
    return [m for m in mounts_under(daemon.base) if "build" in m]


# -- instructions ------------------------------------------------------------------------------
def test_every_instruction_changes_the_config(daemon: Daemon, tag: str) -> None:
    dockerfile = """FROM busybox
ARG A=b
ENV E=1 F="two words"
LABEL x=y "with space"=z
EXPOSE 80 53/udp
VOLUME /data
USER nobody
WORKDIR /w
WORKDIR sub
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --retries=3 CMD true
SHELL ["/bin/sh", "-xc"]
ENTRYPOINT ["/bin/echo"]
CMD ["hi"]
ONBUILD RUN echo trig
MAINTAINER me
"""
    result = ok(daemon, {"Dockerfile": dockerfile}, t=tag)
    assert "Step 1/16 : FROM busybox\n" in result.stream
    assert "Successfully tagged " + tag + ":latest\n" in result.stream
    config = inspect(daemon, tag)["Config"]
    assert config["Env"][-2:] == ["E=1", "F=two words"]
    assert any(e.startswith("PATH=") for e in config["Env"])
    assert config["Labels"] == {"x": "y", "with space": "z"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["User"] == "nobody"
    assert config["WorkingDir"] == "/w/sub"
    assert config["StopSignal"] == "SIGKILL"
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 5_000_000_000,
        "Retries": 3,
    }
    assert config["Shell"] == ["/bin/sh", "-xc"]
    assert config["Entrypoint"] == ["/bin/echo"]
    assert config["Cmd"] == ["hi"]
    assert config["OnBuild"] == ["RUN echo trig"]
    assert inspect(daemon, tag)["Author"] == "me"
    created = [h["CreatedBy"] for h in history(daemon, tag)]
    assert "/bin/sh -c #(nop)  ENV E=1 F=two words" in created
    assert "/bin/sh -c #(nop) WORKDIR /w" in created
    assert '/bin/sh -xc #(nop)  CMD ["hi"]' in created


def test_run_copy_and_history(daemon: Daemon, tag: str) -> None:
    files = {
        "Dockerfile": "FROM busybox\nARG A=b\nCOPY f.txt /tmp/\nCOPY dir /d\n"
        "RUN echo hi && echo err >&2 && echo $A > /a\nCMD cat /a /tmp/f.txt\n",
        "f.txt": "hello\n",
        "dir/x": "x",
        "dir/sub/y": "y",
    }
    result = ok(daemon, files, t=tag, buildargs={"A": "z"})
    assert "hi\n" in result.stream
    assert "\x1b[91merr\n\x1b[0m" in result.stream
    assert " ---> Running in " in result.stream
    assert "Removing intermediate container " in result.stream
    assert run_out(daemon, tag) == "z\nhello\n"
    assert run_out(daemon, tag, "sh", "-c", "cat /d/x /d/sub/y; stat -c %u:%g /d/x /tmp/f.txt") == (
        "xy0:0\n0:0\n"
    )
    info = inspect(daemon, tag)
    base = inspect(daemon, "busybox")
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 3
    created = [h["CreatedBy"] for h in history(daemon, tag)]
    assert created[0] == '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "cat /a /tmp/f.txt"]'
    assert created[1] == "|1 A=z /bin/sh -c echo hi && echo err >&2 && echo $A > /a"
    assert created[2].startswith("/bin/sh -c #(nop) COPY dir:") and created[2].endswith(" in /d ")
    assert created[3].startswith("/bin/sh -c #(nop) COPY file:")
    assert created[4] == "/bin/sh -c #(nop)  ARG A=b"
    assert not left_by(daemon, result)


def test_cache_hits_and_a_changed_source_misses(daemon: Daemon, tag: str) -> None:
    dockerfile = f"FROM busybox\nRUN echo {tag} > /r\nCOPY a /a\nRUN cat /a > /b\n"
    first = ok(daemon, {"Dockerfile": dockerfile, "a": "1"}, t=tag)
    assert "Using cache" not in first.stream
    again = ok(daemon, {"Dockerfile": dockerfile, "a": "1"}, t=tag)
    assert again.stream.count(" ---> Using cache\n") == 3
    assert "Running in" not in again.stream
    assert again.image_id == first.image_id
    changed = ok(daemon, {"Dockerfile": dockerfile, "a": "2"}, t=tag)
    assert changed.stream.count(" ---> Using cache\n") == 1  # the first RUN only
    assert changed.stream.count("Running in") == 1
    assert changed.image_id != first.image_id
    assert run_out(daemon, tag, "cat", "/b") == "2"
    no_cache = ok(daemon, {"Dockerfile": dockerfile, "a": "2"}, t=tag, nocache=1)
    assert "Using cache" not in no_cache.stream
    # the image that lost its tag is still there, untagged (it is the cache of the first build)
    assert inspect(daemon, first.image_id)["RepoTags"] == []


def test_multi_stage_copy_from_and_target(daemon: Daemon, tag: str) -> None:
    dockerfile = """FROM busybox AS one
RUN echo built > /artifact
FROM scratch AS two
COPY --from=one /artifact /copied
COPY --from=0 /bin/busybox /bin/busybox
FROM busybox
COPY --from=two /copied /final
CMD cat /final
"""
    result = ok(daemon, {"Dockerfile": dockerfile}, t=tag)
    assert run_out(daemon, tag) == "built\n"
    target = ok(daemon, {"Dockerfile": dockerfile}, t=f"{tag}:two", target="two")
    assert "Step 5/5 : COPY --from=0" in target.stream  # the stages after the target do not count
    assert run_out(daemon, f"{tag}:two", "/bin/busybox", "cat", "/copied") == "built\n"
    assert result.image_id != target.image_id


def test_onbuild_triggers_run_in_the_child(daemon: Daemon, tag: str) -> None:
    ok(daemon, {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /t\n"}, t=f"{tag}:base")
    child = ok(daemon, {"Dockerfile": f"FROM {tag}:base\nCMD cat /t\n"}, t=f"{tag}:child")
    assert "# Executing 1 build trigger\n" in child.stream
    assert run_out(daemon, f"{tag}:child") == "triggered\n"
    assert inspect(daemon, f"{tag}:child")["Config"]["OnBuild"] is None


def test_copy_semantics(daemon: Daemon, tag: str) -> None:
    dockerfile = """FROM busybox
WORKDIR /app
COPY --chown=65534:65534 --chmod=600 a.txt rel/
COPY *.md /docs/
COPY a.txt /single
ADD arch.tar.gz /unpacked/
COPY <<EOF /heredoc
inline $HOME
EOF
RUN stat -c '%u %a %n' rel/a.txt && ls /docs | tr '\\n' ' ' && cat /unpacked/in/file /heredoc
"""
    inner = context_tar({"in/file": "from archive\n"}, compress="gz")
    files = {
        "Dockerfile": dockerfile,
        "a.txt": "a",
        "x.md": "x",
        "y.md": "y",
        "arch.tar.gz": inner,
    }
    result = ok(daemon, files, t=tag)
    assert "65534 600 rel/a.txt\n" in result.stream
    assert "x.md y.md " in result.stream
    assert "from archive\n" in result.stream
    assert "inline /root\n" in result.stream or "inline \n" in result.stream


def test_build_args_labels_and_several_tags(daemon: Daemon, tag: str) -> None:
    dockerfile = "ARG BASE=busybox\nFROM $BASE\nARG V=default\nRUN echo v=$V $HTTP_PROXY\n"
    result = ok(
        daemon,
        {"Dockerfile": dockerfile},
        t=[f"{tag}:a", f"{tag}:b"],
        buildargs={"V": "given", "HTTP_PROXY": "http://p", "UNUSED": "x"},
        labels={"lk": "lv"},
    )
    assert "v=given http://p\n" in result.stream
    assert "[Warning] One or more build-args [UNUSED] were not consumed\n" in result.stream
    assert "Successfully tagged " + tag + ":a\n" in result.stream
    assert inspect(daemon, f"{tag}:a")["Id"] == inspect(daemon, f"{tag}:b")["Id"]
    assert inspect(daemon, f"{tag}:a")["Config"]["Labels"] == {"lk": "lv"}
    created = [h["CreatedBy"] for h in history(daemon, f"{tag}:a")]
    assert "|1 V=given /bin/sh -c echo v=$V $HTTP_PROXY" in created  # proxies stay out


def test_quiet_and_compressed_context(daemon: Daemon, tag: str) -> None:
    for compress in ("gz", "bz2", "xz"):
        body = context_tar({"Dockerfile": "FROM busybox\nLABEL q=1\n"}, compress=compress)
        result = build(daemon, body, t=tag, q=1)
        assert result.reply.status == 200
        assert result.stream == result.image_id + "\n"


# -- failures ----------------------------------------------------------------------------------
def test_failing_run_reports_the_code_and_keeps_nothing_mounted(daemon: Daemon, tag: str) -> None:
    before = {i["Id"] for i in call(daemon, "GET", "/images/json?all=1").json()}  # type: ignore[union-attr]
    result = build(
        daemon, context_tar({"Dockerfile": "FROM busybox\nRUN false\n"}), t=tag, forcerm=1
    )
    assert result.reply.status == 200
    assert result.lines[-1] == {
        "errorDetail": {
            "code": 1,
            "message": "The command '/bin/sh -c false' returned a non-zero code: 1",
        },
        "error": "The command '/bin/sh -c false' returned a non-zero code: 1",
    }
    after = {i["Id"] for i in call(daemon, "GET", "/images/json?all=1").json()}  # type: ignore[union-attr]
    assert after == before
    assert not left_by(daemon, result)
    assert not transient_snapshots(daemon)


def test_failing_run_without_forcerm_keeps_its_container_as_docker(daemon: Daemon) -> None:
    marker = uuid.uuid4().hex[:8]
    result = build(
        daemon, context_tar({"Dockerfile": f"FROM busybox\nRUN echo {marker}; exit 3\n"})
    )
    assert result.lines[-1]["errorDetail"]["code"] == 3
    kept = left_by(daemon, result)
    assert len(kept) == 1 and kept[0]["State"] == "exited"
    call(daemon, "DELETE", f"/containers/{kept[0]['Id']}")


@pytest.mark.parametrize(
    ("files", "params", "status", "message"),
    [
        (
            {"Dockerfile": "FROM busybox\nRUNN x\n"},
            {},
            400,
            "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)",
        ),
        (
            {"Dockerfile": "FROM busybox\n"},
            {"dockerfile": "nope"},
            400,
            "Cannot locate specified Dockerfile: nope",
        ),
        (
            {"Dockerfile": "FROM busybox\n"},
            {"target": "x"},
            400,
            "failed to reach build target x in Dockerfile",
        ),
        ({"Dockerfile": "FROM busybox\n"}, {"t": "Bad:Tag"}, 400, None),
    ],
)
def test_bad_requests_are_http_errors(
    fresh_daemon: Daemon, files: dict, params: dict, status: int, message: str | None
) -> None:
    result = build(fresh_daemon, context_tar(files), **params)
    assert result.reply.status == status, result.reply
    if message is not None:
        assert result.reply.json() == {"message": message}
    assert containers(fresh_daemon) == []
    assert os.listdir(fresh_daemon.data_root / "snapshots") == []


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        (  # not here, so pulled: from a registry that does not answer
            "FROM 127.0.0.1:1/nosuchimage\n",
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused '
            "(registry 127.0.0.1:1 is unreachable)",
        ),
        (
            "FROM busybox\nCOPY missing /x\n",
            "COPY failed: file not found in build context or excluded by .dockerignore: "
            "stat missing: file does not exist",
        ),
        ("FROM busybox\nCOPY ../x /x\n", "Forbidden path outside the build context: ../x ()"),
        (
            "FROM busybox\nCOPY --from=nostage /x /x\n",
            "invalid from flag value nostage: No such image: nostage:latest",
        ),
        ("FROM busybox\nADD http://example.com/x /x\n", None),
        (
            "FROM busybox\nCOPY a b /x\n",
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ),
    ],
)
def test_failing_steps_stream_docker_errors(
    daemon: Daemon, dockerfile: str, message: str | None
) -> None:
    result = build(daemon, context_tar({"Dockerfile": dockerfile, "a": "a", "b": "b"}))
    assert result.reply.status == 200
    assert result.error is not None
    if message is not None:
        assert result.error == message
    assert not transient_snapshots(daemon)


def test_hostile_context_tars_are_refused(fresh_daemon: Daemon) -> None:
    for name in ("../escape", "/abs/path"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            df = b"FROM scratch\nCOPY . /\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(df)
            tar.addfile(info, io.BytesIO(df))
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        result = build(fresh_daemon, buf.getvalue())
        if name.startswith("/"):  # a leading / is dropped, as docker does: the file stays inside
            assert result.reply.status == 200
        else:
            assert result.reply.status == 400, result.reply
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w") as tar:
        df = b"FROM scratch\nCOPY link/passwd /x\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../../etc"
        tar.addfile(info)
    result = build(fresh_daemon, link.getvalue())
    assert result.error is not None and "file not found in build context" in result.error
    garbage = build(fresh_daemon, b"not a tar at all" * 100)
    assert garbage.reply.status == 400
    assert containers(fresh_daemon) == []


def test_entrypoint_and_cmd_run(daemon: Daemon, tag: str) -> None:
    dockerfile = (
        "FROM busybox\nRUN mkdir -m 777 /tmp/w\nUSER nobody\nWORKDIR /tmp/w\n"
        "RUN id -u > me && pwd >> me\n"
        "RUN <<EOF\necho heredoc $(cat me | tr '\\n' ' ')\nEOF\n"
        'ENTRYPOINT ["/bin/echo"]\nCMD ["hi"]\n'
    )
    result = ok(daemon, {"Dockerfile": dockerfile}, t=tag)
    assert "heredoc 65534 /tmp/w\n" in result.stream
    assert run_out(daemon, tag) == "hi\n"
    assert run_out(daemon, tag, "there") == "there\n"
    out = daemon.dockyard("run", "--rm", "--entrypoint", "sh", tag, "-c", "id -u; pwd").stdout
    assert out.decode() == "65534\n/tmp/w\n"


def test_client_gone_mid_run_leaves_nothing(daemon: Daemon) -> None:
    marker = uuid.uuid4().hex[:8]
    body = context_tar({"Dockerfile": f"FROM busybox\nRUN echo start-{marker}; sleep 60\n"})
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.socket))
    head = (
        f"POST /v1.41/build HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    seen = b""
    deadline = time.monotonic() + 30
    while f"start-{marker}".encode() not in seen and time.monotonic() < deadline:
        seen += sock.recv(65536)
    assert f"start-{marker}".encode() in seen
    sock.close()

    def ours() -> list[dict]:
        return [c for c in containers(daemon) if marker in c["Command"]]

    deadline = time.monotonic() + 20
    while (ours() or transient_snapshots(daemon)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ours() == []
    assert not transient_snapshots(daemon)


def test_scratch_images(daemon: Daemon, tag: str) -> None:
    empty = build(daemon, context_tar({"Dockerfile": "FROM scratch\n"}))
    assert empty.error == "No image was generated. Is your Dockerfile empty?"
    result = ok(daemon, {"Dockerfile": 'FROM scratch\nCOPY f /f\nCMD ["x"]\n', "f": "1"}, t=tag)
    info = inspect(daemon, tag)
    assert len(info["RootFS"]["Layers"]) == 1
    assert info["Config"]["Cmd"] == ["x"] and info["Parent"] != ""
    assert " ---> \n" in result.stream  # FROM scratch has no image ID, as docker prints it


def test_from_pulls_a_missing_base_image(daemon: Daemon, tag: str) -> None:
    """FROM an image that is not here pulls it, its progress in the build's output."""
    from tests.registry_server import registry_server

    with registry_server() as srv:
        remote = f"{srv.address}/base/busybox:{tag}"
        daemon.dockyard("tag", "busybox", remote)
        daemon.dockyard("push", remote)
        daemon.dockyard("rmi", remote)
        result = ok(daemon, {"Dockerfile": f"FROM {remote}\nRUN echo pulled > /p\n"}, t=tag)
    assert {"status": "Pulling from base/busybox", "id": tag} in result.lines
    assert {"status": f"Status: Downloaded newer image for {remote}"} in result.lines
    assert inspect(daemon, remote)["Id"] == inspect(daemon, "busybox")["Id"]
    assert run_out(daemon, tag, "cat", "/p") == "pulled\n"
    daemon.dockyard("rmi", remote)
