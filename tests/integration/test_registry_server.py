"""Our registry server over real HTTP: every endpoint, bad input, auth, TLS and GC safety.

Each test module's server runs as `dockyard registry serve` on a free loopback port with its
own root (tests/registry_server.py) and is stopped by its process when the module ends."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry_server import (
    VENV_BIN,
    RegistryServer,
    image_manifest,
    registry_server,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def server() -> Iterator[RegistryServer]:
    with registry_server() as srv:
        yield srv


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(srv: RegistryServer, repo: str, tag: str, payload: bytes) -> tuple[str, dict]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "x": payload.hex()}).encode()
    layer_digest = srv.push_blob(repo, payload)
    config_digest = srv.push_blob(repo, config)
    manifest = image_manifest(config_digest, len(config), [(layer_digest, len(payload))])
    resp = srv.push_manifest(repo, tag, manifest)
    assert resp.status == 201, resp.body
    return resp.headers["Docker-Content-Digest"], manifest


def test_ping(server: RegistryServer) -> None:
    resp = server.request("GET", "/v2/")
    assert resp.status == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_blob_head_get_range_delete(server: RegistryServer) -> None:
    data = os.urandom(3000)
    digest = server.push_blob("mono/repo", data)
    head = server.request("HEAD", f"/v2/mono/repo/blobs/{digest}")
    assert head.status == 200
    assert head.headers["Content-Length"] == "3000"
    assert head.headers["Docker-Content-Digest"] == digest
    get = server.request("GET", f"/v2/mono/repo/blobs/{digest}")
    assert get.status == 200 and get.body == data
    part = server.request("GET", f"/v2/mono/repo/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert part.headers["Content-Range"] == "bytes 10-19/3000"
    assert part.headers["Accept-Ranges"] == "bytes"
    bad = server.request("GET", f"/v2/mono/repo/blobs/{digest}", headers={"Range": "bytes=5000-"})
    assert bad.status == 416
    # Blobs are visible only in repositories that have them.
    assert server.request("HEAD", f"/v2/other/repo/blobs/{digest}").status == 404
    assert server.request("DELETE", f"/v2/mono/repo/blobs/{digest}").status == 202
    gone = server.request("GET", f"/v2/mono/repo/blobs/{digest}")
    assert gone.status == 404 and gone.error_code() == "BLOB_UNKNOWN"


def test_chunked_upload_status_and_out_of_order(server: RegistryServer) -> None:
    data = os.urandom(10_000)
    start = server.request("POST", "/v2/chunked/blobs/uploads/")
    assert start.status == 202
    assert start.headers["Range"] == "0-0"
    location, uuid = start.headers["Location"], start.headers["Docker-Upload-UUID"]
    assert location.endswith(uuid)
    first = server.request(
        "PATCH", location, data[:4000], {"Content-Range": "0-3999", "Content-Length": "4000"}
    )
    assert first.status == 202 and first.headers["Range"] == "0-3999"
    skipped = server.request("PATCH", location, data[6000:8000], {"Content-Range": "6000-7999"})
    assert skipped.status == 416 and skipped.error_code() == "RANGE_INVALID"
    status = server.request("GET", location)
    assert status.status == 204 and status.headers["Range"] == "0-3999"
    second = server.request("PATCH", location, data[4000:9000])  # streamed: no Content-Range
    assert second.status == 202 and second.headers["Range"] == "0-8999"
    digest = sha256(data)
    done = server.request("PUT", f"{location}?digest={digest}", data[9000:])
    assert done.status == 201
    assert done.headers["Location"] == f"/v2/chunked/blobs/{digest}"
    assert server.request("GET", f"/v2/chunked/blobs/{digest}").body == data
    assert server.request("GET", location).status == 404


def test_digest_mismatch_stores_nothing(server: RegistryServer) -> None:
    data = b"the real bytes"
    wrong = sha256(b"other bytes")
    resp = server.request("POST", f"/v2/bad/digest/blobs/uploads/?digest={wrong}", data)
    assert resp.status == 400 and resp.error_code() == "DIGEST_INVALID"
    start = server.request("POST", "/v2/bad/digest/blobs/uploads/")
    location = start.headers["Location"]
    resp = server.request("PUT", f"{location}?digest={wrong}", data)
    assert resp.status == 400 and resp.error_code() == "DIGEST_INVALID"
    for digest in (wrong, sha256(data)):
        assert server.request("HEAD", f"/v2/bad/digest/blobs/{digest}").status == 404
        assert not (server.root / "blobs" / "sha256" / digest.split(":")[1]).exists()
    assert server.request("GET", location).status == 404  # the upload is gone too
    assert not (server.root / "uploads" / start.headers["Docker-Upload-UUID"]).exists()


def test_invalid_digest_and_missing_upload(server: RegistryServer) -> None:
    resp = server.request("POST", "/v2/x/blobs/uploads/?digest=sha256:nothex", b"x")
    assert resp.status == 400 and resp.error_code() == "DIGEST_INVALID"
    resp = server.request("PATCH", "/v2/x/blobs/uploads/no-such-upload", b"x")
    assert resp.status == 404 and resp.error_code() == "BLOB_UPLOAD_UNKNOWN"
    # An upload belongs to the repository that started it.
    location = server.request("POST", "/v2/x/blobs/uploads/").headers["Location"]
    other = location.replace("/v2/x/", "/v2/y/")
    assert server.request("GET", other).status == 404


def test_cancel_upload(server: RegistryServer) -> None:
    start = server.request("POST", "/v2/cancel/blobs/uploads/")
    location = start.headers["Location"]
    server.request("PATCH", location, b"partial")
    assert server.request("DELETE", location).status == 204
    assert server.request("GET", location).status == 404
    assert not (server.root / "uploads" / start.headers["Docker-Upload-UUID"]).exists()


def test_abandoned_upload_is_cleaned() -> None:
    with registry_server("--upload-timeout", "1") as srv:
        start = srv.request("POST", "/v2/slow/blobs/uploads/")
        srv.request("PATCH", start.headers["Location"], b"truncated")
        upload_dir = srv.root / "uploads" / start.headers["Docker-Upload-UUID"]
        assert upload_dir.exists()
        deadline = time.monotonic() + 10
        while upload_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not upload_dir.exists()
        assert srv.request("GET", start.headers["Location"]).status == 404
        assert list((srv.root / "blobs" / "sha256").iterdir()) == []


def test_cross_repository_mount(server: RegistryServer) -> None:
    digest = server.push_blob("mount/source", b"shared layer")
    resp = server.request(
        "POST", f"/v2/mount/target/blobs/uploads/?mount={digest}&from=mount/source"
    )
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/mount/target/blobs/{digest}"
    assert server.request("GET", f"/v2/mount/target/blobs/{digest}").body == b"shared layer"
    # Not in the source repository: an upload starts instead.
    missing = sha256(b"nowhere")
    resp = server.request(
        "POST", f"/v2/mount/target/blobs/uploads/?mount={missing}&from=mount/source"
    )
    assert resp.status == 202 and "Docker-Upload-UUID" in resp.headers


def test_manifest_lifecycle(server: RegistryServer) -> None:
    digest, manifest = push_image(server, "app/web", "v1", b"layer one")
    body = json.dumps(manifest).encode()
    for ref in ("v1", digest):
        get = server.request(
            "GET", f"/v2/app/web/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
        )
        assert get.status == 200 and get.body == body
        assert get.headers["Content-Type"] == OCI_MANIFEST
        assert get.headers["Docker-Content-Digest"] == digest
        head = server.request("HEAD", f"/v2/app/web/manifests/{ref}")
        assert head.status == 200 and head.headers["Content-Length"] == str(len(body))
    assert server.push_manifest("app/web", "v2", manifest).status == 201
    assert server.request("DELETE", "/v2/app/web/manifests/v2").status == 202
    assert server.request("GET", "/v2/app/web/manifests/v2").status == 404
    assert server.request("GET", "/v2/app/web/manifests/v1").status == 200
    assert server.request("DELETE", f"/v2/app/web/manifests/{digest}").status == 202
    gone = server.request("GET", "/v2/app/web/manifests/v1")
    assert gone.status == 404 and gone.error_code() == "MANIFEST_UNKNOWN"


def test_docker_schema2_and_index(server: RegistryServer) -> None:
    digest, manifest = push_image(server, "multi", "amd64", b"amd64 layer")
    docker = dict(manifest, mediaType="application/vnd.docker.distribution.manifest.v2+json")
    docker["config"] = dict(
        manifest["config"], mediaType="application/vnd.docker.container.image.v1+json"
    )
    assert server.push_manifest("multi", "docker", docker).status == 201
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": 10}],
    }
    assert server.push_manifest("multi", "latest", index).status == 201
    missing = dict(
        index, manifests=[{"mediaType": OCI_MANIFEST, "digest": sha256(b"?"), "size": 1}]
    )
    resp = server.push_manifest("multi", "broken", missing)
    assert resp.status == 404 and resp.error_code() == "MANIFEST_BLOB_UNKNOWN"


def test_manifest_bad_input(server: RegistryServer) -> None:
    config = server.push_blob("bad/manifests", b"{}")
    manifest = image_manifest(config, 2, [(sha256(b"never pushed"), 12)])
    resp = server.push_manifest("bad/manifests", "missing-layer", manifest)
    assert resp.status == 404 and resp.error_code() == "MANIFEST_BLOB_UNKNOWN"
    ok = image_manifest(config, 2, [])
    resp = server.push_manifest("bad/manifests", "x", ok, "application/vnd.example.unknown+json")
    assert resp.status == 400 and resp.error_code() == "MANIFEST_INVALID"
    resp = server.request(
        "PUT", "/v2/bad/manifests/manifests/x", b"not json", {"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 400 and resp.error_code() == "MANIFEST_INVALID"
    huge = dict(ok, annotations={"pad": "x" * (4 * 1024 * 1024)})
    resp = server.push_manifest("bad/manifests", "huge", huge)
    assert resp.status == 413 and resp.error_code() == "MANIFEST_INVALID"
    wrong = sha256(b"something else")
    resp = server.push_manifest("bad/manifests", wrong, ok)
    assert resp.status == 400 and resp.error_code() == "DIGEST_INVALID"
    resp = server.push_manifest("bad/manifests", "-badtag", ok)
    assert resp.status == 400 and resp.error_code() == "TAG_INVALID"
    for name in ("Upper/case", "a//b", "trailing-/x", "_layers/x", "a/" + "b" * 300):
        resp = server.request("GET", f"/v2/{name}/tags/list")
        assert resp.status == 400 and resp.error_code() == "NAME_INVALID", name
    # Nothing was stored by any of these.
    assert server.request("GET", "/v2/bad/manifests/tags/list").json() == {
        "name": "bad/manifests",
        "tags": [],
    }


def test_tags_pagination(server: RegistryServer) -> None:
    _, manifest = push_image(server, "paged", "a", b"paged layer")
    for tag in ("b", "c", "d", "e"):
        assert server.push_manifest("paged", tag, manifest).status == 201
    resp = server.request("GET", "/v2/paged/tags/list?n=2")
    assert resp.json() == {"name": "paged", "tags": ["a", "b"]}
    assert resp.headers["Link"] == '</v2/paged/tags/list?n=2&last=b>; rel="next"'
    resp = server.request("GET", "/v2/paged/tags/list?n=2&last=b")
    assert resp.json()["tags"] == ["c", "d"]
    resp = server.request("GET", "/v2/paged/tags/list?n=2&last=d")
    assert resp.json()["tags"] == ["e"] and "Link" not in resp.headers
    assert server.request("GET", "/v2/paged/tags/list?n=-1").status == 400
    unknown = server.request("GET", "/v2/no/such/repo/tags/list")
    assert unknown.status == 404 and unknown.error_code() == "NAME_UNKNOWN"


def test_catalog_pagination() -> None:
    with registry_server() as srv:
        for name in ("zeta", "alpha", "mid/dle"):
            push_image(srv, name, "t", name.encode())
        assert srv.request("GET", "/v2/_catalog").json() == {
            "repositories": ["alpha", "mid/dle", "zeta"]
        }
        page = srv.request("GET", "/v2/_catalog?n=1")
        assert page.json() == {"repositories": ["alpha"]}
        assert page.headers["Link"] == '</v2/_catalog?n=1&last=alpha>; rel="next"'
        rest = srv.request("GET", "/v2/_catalog?n=5&last=alpha")
        assert rest.json() == {"repositories": ["mid/dle", "zeta"]}


def test_referrers(server: RegistryServer) -> None:
    subject_digest, _ = push_image(server, "refs", "base", b"subject layer")
    empty = server.push_blob("refs", b"{}")
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": 100}
    sig = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": subject,
        "annotations": {"org.example": "yes"},
    }
    sbom = dict(sig, artifactType="application/vnd.example.sbom")
    resp = server.push_manifest("refs", sha256(json.dumps(sig).encode()), sig)
    assert resp.status == 201 and resp.headers["OCI-Subject"] == subject_digest
    assert server.push_manifest("refs", sha256(json.dumps(sbom).encode()), sbom).status == 201
    listing = server.request("GET", f"/v2/refs/referrers/{subject_digest}")
    assert listing.status == 200 and listing.headers["Content-Type"] == OCI_INDEX
    found = listing.json()["manifests"]
    assert sorted(d["artifactType"] for d in found) == [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    assert all(d["annotations"] == {"org.example": "yes"} for d in found)
    filtered = server.request(
        "GET", f"/v2/refs/referrers/{subject_digest}?artifactType=application/vnd.example.sig"
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["artifactType"] for d in filtered.json()["manifests"]] == [
        "application/vnd.example.sig"
    ]
    none = server.request("GET", f"/v2/refs/referrers/{sha256(b'nothing')}")
    assert none.status == 200 and none.json()["manifests"] == []
    sig_digest = sha256(json.dumps(sig).encode())
    assert server.request("DELETE", f"/v2/refs/manifests/{sig_digest}").status == 202
    after = server.request("GET", f"/v2/refs/referrers/{subject_digest}").json()["manifests"]
    assert [d["artifactType"] for d in after] == ["application/vnd.example.sbom"]


def _htpasswd(path: Path, user: str, password: str) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{user}:{hashed.replace('$2b$', '$2y$', 1)}\n")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth(tmp_path: Path) -> None:
    _htpasswd(tmp_path / "htpasswd", "alice", "s3cret")
    with registry_server("--htpasswd", str(tmp_path / "htpasswd")) as srv:
        resp = srv.request("POST", "/v2/private/blobs/uploads/")
        assert resp.status == 401 and resp.error_code() == "UNAUTHORIZED"
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="Dockyard Registry"'
        assert srv.request("GET", "/v2/", headers=_basic("alice", "wrong")).status == 401
        assert srv.request("GET", "/v2/", headers=_basic("alice", "s3cret")).status == 200
        digest = srv.push_blob("private", b"authorized", headers=_basic("alice", "s3cret"))
        assert srv.request("HEAD", f"/v2/private/blobs/{digest}").status == 401
        ok = srv.request("HEAD", f"/v2/private/blobs/{digest}", headers=_basic("alice", "s3cret"))
        assert ok.status == 200
        assert list((srv.root / "uploads").iterdir()) == []


def test_bearer_tokens(tmp_path: Path) -> None:
    _htpasswd(tmp_path / "htpasswd", "bob", "pw")
    (tmp_path / "key").write_bytes(os.urandom(32).hex().encode())
    with registry_server(
        "--htpasswd",
        str(tmp_path / "htpasswd"),
        "--token-key",
        str(tmp_path / "key"),
        "--token-realm",
        "http://127.0.0.1/token",
        "--token-service",
        "test-registry",
    ) as srv:
        resp = srv.request("POST", "/v2/team/app/blobs/uploads/")
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == (
            'Bearer realm="http://127.0.0.1/token",service="test-registry",'
            'scope="repository:team/app:pull,push"'
        )
        scope = "repository:team/app:pull,push"
        assert srv.request("GET", f"/token?service=test-registry&scope={scope}").status == 401
        bad = srv.request("GET", f"/token?scope={scope}", headers=_basic("bob", "nope"))
        assert bad.status == 401
        token = srv.request(
            "GET", f"/token?service=test-registry&scope={scope}", headers=_basic("bob", "pw")
        ).json()["token"]  # type: ignore[index]
        auth = {"Authorization": f"Bearer {token}"}
        digest = srv.push_blob("team/app", b"with a token", headers=auth)
        assert (
            srv.request("GET", f"/v2/team/app/blobs/{digest}", headers=auth).body == b"with a token"
        )
        # The token covers team/app only.
        other = srv.request("GET", "/v2/team/other/tags/list", headers=auth)
        assert (
            other.status == 401
            and 'error="insufficient_scope"' in other.headers["WWW-Authenticate"]
        )
        pull = srv.request(
            "GET", "/token?scope=repository:team/app:pull", headers=_basic("bob", "pw")
        ).json()["token"]  # type: ignore[index]
        denied = srv.request(
            "POST", "/v2/team/app/blobs/uploads/", headers={"Authorization": f"Bearer {pull}"}
        )
        assert denied.status == 401
        # A mount from a repository the token does not cover asks for both scopes.
        mount = srv.request(
            "POST", f"/v2/team/app/blobs/uploads/?mount={digest}&from=team/src", headers=auth
        )
        assert mount.status == 401
        assert (
            'scope="repository:team/app:pull,push repository:team/src:pull"'
            in (mount.headers["WWW-Authenticate"])
        )
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert (
            srv.request("GET", "/v2/", headers={"Authorization": f"Bearer {forged}"}).status == 401
        )


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with registry_server("--tls-cert", str(cert), "--tls-key", str(key), tls=True) as srv:
        assert srv.request("GET", "/v2/").status == 200


def _gc(root: Path, *args: str) -> dict[str, int]:
    out = subprocess.run(
        [str(VENV_BIN / "dockyard"), "registry", "gc", "--root", str(root), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines())}


def test_gc_keeps_referenced_and_fresh_blobs() -> None:
    with registry_server() as srv:
        _, manifest = push_image(srv, "gc/app", "v1", b"referenced layer")
        fresh = srv.push_blob("gc/app", b"uploaded, manifest not pushed yet")
        # A GC while the client is between its blob upload and its manifest put.
        stats = _gc(srv.root)
        assert stats["blobs_deleted"] == 0
        assert srv.request("HEAD", f"/v2/gc/app/blobs/{fresh}").status == 200
        config = srv.push_blob("gc/app", b"{}")
        late = image_manifest(config, 2, [(fresh, len(b"uploaded, manifest not pushed yet"))])
        assert srv.push_manifest("gc/app", "v2", late).status == 200 + 1
        orphan = srv.push_blob("gc/orphan", b"nobody references me")
        stats = _gc(srv.root, "--grace", "0")
        assert stats["blobs_deleted"] == 1
        assert srv.request("HEAD", f"/v2/gc/orphan/blobs/{orphan}").status == 404
        for layer in manifest["layers"] + late["layers"]:
            assert srv.request("HEAD", f"/v2/gc/app/blobs/{layer['digest']}").status == 200
        assert srv.request("GET", "/v2/gc/app/manifests/v2").status == 200


def test_online_gc_during_uploads(tmp_path: Path) -> None:
    """The server's own periodic GC (grace 2s) runs while a client uploads and then tags."""
    with registry_server("--gc-interval", "0.2", "--gc-grace", "2") as srv:
        for i in range(10):
            layer = os.urandom(1000)
            digest = srv.push_blob("online", layer)
            config = srv.push_blob("online", f'{{"n":{i}}}'.encode())
            time.sleep(0.1)
            manifest = image_manifest(config, len(f'{{"n":{i}}}'), [(digest, 1000)])
            assert srv.push_manifest("online", f"t{i}", manifest).status == 201
        orphan = srv.push_blob("online", b"orphan")
        deadline = time.monotonic() + 15
        while srv.request("HEAD", f"/v2/online/blobs/{orphan}").status == 200:
            assert time.monotonic() < deadline, "online GC never collected the orphan"
            time.sleep(0.3)
        for i in range(10):
            got = json.loads(srv.request("GET", f"/v2/online/manifests/t{i}").body)
            for layer in got["layers"]:
                assert srv.request("HEAD", f"/v2/online/blobs/{layer['digest']}").status == 200
