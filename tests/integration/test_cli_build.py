"""`dockyard build` against our daemon: the classic builder's lines, the image it makes, the
cache on a rebuild, -q and --iidfile, .dockerignore, -f outside the context and the stdin forms,
and a failing RUN's exit code and message."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

from dockyard.cli import buildcontext
from tests.conftest import Daemon

SHORT_ID = re.compile(r"[0-9a-f]{12}")


def make_context(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.dockyard("image", "inspect", name).stdout)[0]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_build_prints_the_classic_lines_and_makes_the_image(daemon: Daemon, tmp_path: Path) -> None:
    name = unique("cli-build")
    ctx = make_context(
        tmp_path,
        {
            "Dockerfile": (
                "FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n"
                'CMD ["cat", "/hello.txt"]\n'
            ),
            "hello.txt": "hello from the context\n",
        },
    )
    result = daemon.dockyard("build", "-t", name, "-t", f"{name}:v2", str(ctx))
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("Sending build context to Docker daemon")
    assert lines[1] == "Step 1/4 : FROM busybox"
    assert SHORT_ID.fullmatch(lines[2].removeprefix(" ---> "))
    assert "Step 2/4 : COPY hello.txt /hello.txt" in lines
    assert "Step 3/4 : RUN cat /hello.txt" in lines
    assert "hello from the context" in lines
    assert 'Step 4/4 : CMD ["cat", "/hello.txt"]' in lines
    assert lines[-3].startswith("Successfully built ")
    assert lines[-2:] == [f"Successfully tagged {name}:latest", f"Successfully tagged {name}:v2"]
    image = inspect(daemon, name)
    assert image["Id"].split(":")[1].startswith(lines[-3].split()[-1])
    assert image["Config"]["Cmd"] == ["cat", "/hello.txt"]
    assert inspect(daemon, f"{name}:v2")["Id"] == image["Id"]
    run = daemon.dockyard("run", "--rm", "--network", "none", name)
    assert run.stdout == b"hello from the context\n"


def test_rebuild_says_using_cache(daemon: Daemon, tmp_path: Path) -> None:
    name = unique("cli-cache")
    ctx = make_context(
        tmp_path, {"Dockerfile": "FROM busybox\nRUN echo one > /one\nENV A=b\n", "f": "x"}
    )
    first = daemon.dockyard("build", "-t", name, str(ctx)).stdout.decode()
    second = daemon.dockyard("build", "-t", name, str(ctx)).stdout.decode()
    assert " ---> Using cache" not in first
    assert second.count(" ---> Using cache\n") == 2
    assert first.splitlines()[-2] == second.splitlines()[-2]  # Successfully built <same id>
    third = daemon.dockyard("build", "--no-cache", "-t", name, str(ctx)).stdout.decode()
    assert " ---> Using cache" not in third


def test_image_build_quiet_and_iidfile(daemon: Daemon, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nLABEL q=1\n"})
    iidfile = tmp_path / "iid"
    iidfile.write_text("stale")
    result = daemon.dockyard("image", "build", "-q", "--iidfile", str(iidfile), str(ctx))
    out = result.stdout.decode()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
    assert iidfile.read_text() == out
    iidfile.unlink()
    loud = daemon.dockyard("build", "--iidfile", str(iidfile), str(ctx)).stdout.decode()
    assert iidfile.read_text() == out.strip()
    assert loud.splitlines()[-1] == f"Successfully built {out[7:19]}"


def test_failing_run_exits_with_its_code(daemon: Daemon, tmp_path: Path) -> None:
    name = unique("cli-fail")
    ctx = make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before\nRUN exit 3\n"})
    result = daemon.dockyard("build", "-t", name, str(ctx), check=False)
    assert result.returncode == 3
    assert result.stderr.decode() == (
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3\n"
    )
    assert "Step 3/3 : RUN exit 3" in result.stdout.decode()
    missing = daemon.dockyard("image", "inspect", name, check=False)
    assert missing.returncode == 1


def test_quiet_failing_build_exits_with_its_code(daemon: Daemon, tmp_path: Path) -> None:
    """dockerd (and the docker CLI) with -q: the buffered steps, then the error in the stream."""
    ctx = make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 3\n"})
    quiet = daemon.dockyard("build", "-q", str(ctx), check=False)
    assert quiet.returncode == 3 and quiet.stdout == b""
    assert quiet.stderr.decode().endswith("returned a non-zero code: 3\n")


def test_dockerignore_and_dockerfile_outside_the_context(daemon: Daemon, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        {".dockerignore": "*.log\nsecret\n", "a.txt": "a", "b.log": "", "secret/k": ""},
    )
    (tmp_path / "Df").write_text("FROM busybox\nCOPY . /ctx\nRUN ls -a /ctx\n")
    result = daemon.dockyard("build", "--no-cache", "-f", str(tmp_path / "Df"), str(ctx))
    out = result.stdout.decode().splitlines()
    listing = out[out.index("Step 3/3 : RUN ls -a /ctx") + 2 :]
    assert "a.txt" in listing
    assert not {"b.log", "secret", "Df"} & set(listing)
    assert not [line for line in listing if line.startswith(".dockerfile.")]


def test_stdin_forms(daemon: Daemon, tmp_path: Path) -> None:
    dockerfile = b"FROM busybox\nRUN echo from-stdin\n"
    result = daemon.dockyard("build", "--no-cache", "-", input=dockerfile)
    assert "from-stdin" in result.stdout.decode().splitlines()
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "1"})
    result = daemon.dockyard("build", "-f", "-", str(ctx), input=dockerfile)
    assert "Step 2/2 : RUN echo from-stdin" in result.stdout.decode()
    tar = subprocess.run(["tar", "-C", str(ctx), "-cf", "-", "."], capture_output=True).stdout
    result = daemon.dockyard("build", "-", input=tar)
    assert "Step 2/2 : COPY f /f" in result.stdout.decode()


def test_build_args_labels_target(daemon: Daemon, tmp_path: Path) -> None:
    name = unique("cli-args")
    ctx = make_context(
        tmp_path,
        {
            "Dockerfile": (
                "FROM busybox AS first\nARG GREETING=hi\nRUN echo $GREETING > /g\n"
                "FROM busybox\nRUN false\n"
            )
        },
    )
    result = daemon.dockyard(
        "build", "--target", "first", "--build-arg", "GREETING=hey", "--label", "team=ops",
        "-t", name, str(ctx),
    )  # fmt: skip
    assert "RUN false" not in result.stdout.decode()
    image = inspect(daemon, name)
    assert image["Config"]["Labels"] == {"team": "ops"}
    run = daemon.dockyard("run", "--rm", "--network", "none", name, "cat", "/g")
    assert run.stdout == b"hey\n"


def test_bad_input(daemon: Daemon, tmp_path: Path) -> None:
    missing = daemon.dockyard("build", str(tmp_path / "nothere"), check=False)
    assert missing.returncode == 1
    assert missing.stderr.decode() == (
        f'unable to prepare context: path "{tmp_path}/nothere" not found\n'
    )
    bad_tag = daemon.dockyard("build", "-t", "Bad", str(tmp_path), check=False)
    assert bad_tag.returncode == 125
    assert bad_tag.stderr.decode().startswith(
        'invalid argument "Bad" for "-t, --tag" flag: invalid reference format: '
        "repository name (library/Bad) must be lowercase\n"
    )
    tar = buildcontext.file_entry("x", b"") + buildcontext.end_of_archive()
    located = daemon.dockyard("build", "-f", "nope", "-", input=tar, check=False)
    assert located.returncode == 1
    assert located.stderr.decode() == (
        "Error response from daemon: Cannot locate specified Dockerfile: nope\n"
    )
    parse = make_context(tmp_path / "p", {"Dockerfile": "FROM busybox\nRUNN true\n"})
    result = daemon.dockyard("build", str(parse), check=False)
    assert result.returncode == 1
    assert "unknown instruction: RUNN" in result.stderr.decode()
