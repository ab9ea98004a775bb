"""The Engine API as clients see it on the wire: version prefixes and negotiation, /_ping and its
headers, unknown routes, and error bodies that the docker client can decode."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass

import pytest

from tests.conftest import Daemon


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def call(daemon: Daemon, method: str, path: str, body: bytes | None = None) -> Reply:
    conn = UnixHTTPConnection(str(daemon.socket))
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def assert_json_error(reply: Reply, status: int, message: str) -> None:
    assert reply.status == status, reply
    # The docker client decodes an error body only when the type is exactly this.
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"message": message}


# -- version negotiation ---------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41", "/v1.47"])
def test_supported_versions_answer(daemon: Daemon, prefix: str) -> None:
    reply = call(daemon, "GET", f"{prefix}/images/json")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    repo_tags = [tag for image in reply.json() for tag in image["RepoTags"] or []]  # type: ignore[union-attr]
    assert "busybox:latest" in repo_tags


def test_too_old_version_is_refused(daemon: Daemon) -> None:
    for path in ("/v1.23/_ping", "/v1.23/images/json", "/v1.12/version"):
        version = path.split("/")[1][1:]
        assert_json_error(
            call(daemon, "GET", path),
            400,
            f"client version {version} is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version",
        )


def test_too_new_version_is_refused(daemon: Daemon) -> None:
    assert_json_error(
        call(daemon, "GET", "/v9.99/images/json"),
        400,
        "client version 9.99 is too new. Maximum supported API version is 1.47",
    )
    assert_json_error(
        call(daemon, "GET", "/v1.48/_ping"),
        400,
        "client version 1.48 is too new. Maximum supported API version is 1.47",
    )


def test_old_api_versions_get_old_shapes(daemon: Daemon) -> None:
    """Fields a version-pinned client still reads: VirtualSize before 1.44."""
    old = call(daemon, "GET", "/v1.41/images/json").json()
    new = call(daemon, "GET", "/v1.47/images/json").json()
    assert all("VirtualSize" in image for image in old)  # type: ignore[union-attr]
    assert not any("VirtualSize" in image for image in new)  # type: ignore[union-attr]


# -- /_ping ----------------------------------------------------------------------------------


def _assert_ping_headers(reply: Reply) -> None:
    assert reply.status == 200
    assert reply.headers["API-Version"] == "1.47"
    assert reply.headers["OSType"] == "linux"
    assert reply.headers["Builder-Version"] == "1"
    assert reply.headers["Docker-Experimental"] == "false"
    assert reply.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert reply.headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.47"])
def test_ping_get(daemon: Daemon, prefix: str) -> None:
    reply = call(daemon, "GET", f"{prefix}/_ping")
    _assert_ping_headers(reply)
    assert reply.body == b"OK"
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_ping_head(daemon: Daemon) -> None:
    reply = call(daemon, "HEAD", "/_ping")
    _assert_ping_headers(reply)
    assert reply.body == b""
    assert reply.headers["Content-Length"] == "0"


# -- unknown routes and error bodies ---------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/nope"),
        ("GET", "/v1.47/nope"),
        ("POST", "/containers/x/frobnicate"),
        ("GET", "/v1.24/images"),
    ],
)
def test_unknown_route_is_json_404(daemon: Daemon, method: str, path: str) -> None:
    assert_json_error(call(daemon, method, path), 404, "page not found")


def test_wrong_method_is_json_error(daemon: Daemon) -> None:
    reply = call(daemon, "DELETE", "/_ping")
    assert reply.status == 405
    assert reply.headers["Content-Type"] == "application/json"
    assert "message" in reply.json()  # type: ignore[operator]


@pytest.mark.parametrize(
    "method,path,status,message",
    [
        ("GET", "/images/nosuch/json", 404, "No such image: nosuch:latest"),
        ("GET", "/v1.24/images/nosuch:1/history", 404, "No such image: nosuch:1"),
        ("DELETE", "/images/nosuch", 404, "No such image: nosuch:latest"),
        ("GET", "/images/a$b/json", 400, "invalid reference format"),
        (
            "POST",
            "/images/busybox/tag?repo=Bad",
            400,
            "invalid reference format: repository name (library/Bad) must be lowercase",
        ),
        ("POST", "/images/nosuch/tag?repo=x", 404, "No such image: nosuch:latest"),
        ("GET", '/images/json?filters={"foo":{"x":true}}', 400, "invalid filter 'foo'"),
        ("GET", "/images/get?names=nosuch", 404, "No such image: nosuch"),
    ],
)
def test_error_bodies(daemon: Daemon, method: str, path: str, status: int, message: str) -> None:
    assert_json_error(call(daemon, method, path), status, message)


def test_success_bodies_are_json(daemon: Daemon) -> None:
    for path in ("/version", "/info", "/system/df", "/images/busybox/json"):
        reply = call(daemon, "GET", path)
        assert reply.status == 200, path
        assert reply.headers["Content-Type"] == "application/json", path
        assert reply.body.endswith(b"\n")
        assert isinstance(reply.json(), dict)
    version = call(daemon, "GET", "/version").json()
    assert version["ApiVersion"] == "1.47"  # type: ignore[index]
    assert version["MinAPIVersion"] == "1.24"  # type: ignore[index]


def test_import_error_is_a_status_not_a_stream(daemon: Daemon) -> None:
    """An import the daemon refuses answers an error status, so `docker import` prints
    "Error response from daemon: …" (load, by contrast, reports in its JSON stream)."""
    reply = call(daemon, "POST", "/images/create?fromSrc=-&repo=x", body=b"\x00garbage" * 200)
    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json"
    assert "invalid tar header" in reply.json()["message"]  # type: ignore[index]

    reply = call(daemon, "POST", "/images/load", body=b"\x00garbage" * 200)
    assert reply.status == 200
    lines = [json.loads(line) for line in reply.body.splitlines() if line.strip()]
    assert lines and "invalid tar header" in lines[-1]["error"]
    assert lines[-1]["errorDetail"]["message"] == lines[-1]["error"]
