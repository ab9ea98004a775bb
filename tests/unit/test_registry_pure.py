"""The registry server's pure parts: name/tag/digest grammar, manifest checks, tokens, htpasswd."""

from __future__ import annotations

import json
import os

import bcrypt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.registry import manifests as mf
from dockyard.registry.auth import Htpasswd, Tokens, allows, parse_basic, parse_scope
from dockyard.registry.errors import RegistryError
from dockyard.registry.names import digest_of, valid_digest, valid_name, valid_tag

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z", "a" * 255])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize(
    "name", ["", "A", "a/", "/a", "a//b", "a/_x", "-a", "a-", "a___b", "a:b", "a" * 256]
)
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)


def test_tags_and_digests() -> None:
    assert valid_tag("v1.0_rc-1") and valid_tag("_x") and valid_tag("a" * 128)
    assert not valid_tag("-x") and not valid_tag(".x") and not valid_tag("a" * 129)
    assert valid_digest(SHA) and valid_digest("sha512:" + "0" * 128)
    assert not valid_digest("sha256:" + "A" * 64)  # uppercase hex
    assert not valid_digest("sha256:abc") and not valid_digest("md5:" + "a" * 32)
    assert (
        digest_of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@given(st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))
def test_computed_digests_are_valid(data: bytes, algo: str) -> None:
    assert valid_digest(digest_of(data, algo))


def _manifest(**extra: object) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": SHA,
            "size": 2,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": SHA, "size": 1},
            {
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                "digest": "sha256:" + "b" * 64,
                "size": 1,
            },
        ],
    }
    doc.update(extra)
    return doc


def test_parse_image_manifest() -> None:
    parsed = mf.parse_manifest(json.dumps(_manifest()).encode(), mf.OCI_MANIFEST)
    assert parsed.media_type == mf.OCI_MANIFEST
    assert parsed.blobs == [SHA, SHA]  # the non-distributable layer need not be present
    assert parsed.artifact_type == "application/vnd.oci.image.config.v1+json"
    subject = {"mediaType": mf.OCI_MANIFEST, "digest": SHA, "size": 3}
    with_subject = _manifest(subject=subject, artifactType="application/x")
    parsed = mf.parse_manifest(json.dumps(with_subject).encode(), "application/json")
    assert parsed.subject == SHA and parsed.artifact_type == "application/x"
    desc = mf.referrer_descriptor(parsed, SHA, 10)
    assert desc == {
        "mediaType": mf.OCI_MANIFEST,
        "digest": SHA,
        "size": 10,
        "artifactType": "application/x",
    }


def test_parse_index() -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": mf.OCI_MANIFEST, "digest": SHA, "size": 5}],
    }
    parsed = mf.parse_manifest(json.dumps(index).encode(), mf.OCI_INDEX)
    assert parsed.children == [SHA] and parsed.blobs == []
    assert mf.references(json.dumps(index).encode()) == [SHA]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{", mf.OCI_MANIFEST, 400),
        (b"[]", mf.OCI_MANIFEST, 400),
        (json.dumps(_manifest()).encode(), "application/vnd.example+json", 400),
        (json.dumps(_manifest()).encode(), mf.DOCKER_MANIFEST, 400),  # mediaType disagrees
        (json.dumps(_manifest(schemaVersion=1)).encode(), mf.OCI_MANIFEST, 400),
        (json.dumps(_manifest(layers="x")).encode(), mf.OCI_MANIFEST, 400),
        (
            json.dumps(_manifest(config={"digest": "sha256:x", "size": 1})).encode(),
            mf.OCI_MANIFEST,
            400,
        ),
        (b" " * (mf.MAX_MANIFEST_SIZE + 1), mf.OCI_MANIFEST, 413),
    ],
)
def test_bad_manifests(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(RegistryError) as info:
        mf.parse_manifest(body, content_type)
    assert info.value.code == "MANIFEST_INVALID" and info.value.status == status
    assert json.loads(info.value.body())["errors"][0]["code"] == "MANIFEST_INVALID"


def test_tokens() -> None:
    tokens = Tokens(b"key", "https://auth/token", "svc")
    access = [parse_scope("repository:a/b:pull,push")]
    token = tokens.issue("u", access)  # type: ignore[list-item]
    claims = tokens.verify(token)
    assert claims is not None and claims["sub"] == "u"
    assert allows(claims, "repository", "a/b", ["pull", "push"])
    assert not allows(claims, "repository", "a/c", ["pull"])
    assert Tokens(b"other", "r", "svc").verify(token) is None
    assert Tokens(b"key", "r", "other-service").verify(token) is None
    assert tokens.verify(tokens.issue("u", [], ttl=-10)) is None
    assert tokens.verify("not.a.token") is None
    assert parse_scope("repository:localhost:5000/x:pull") == {
        "type": "repository",
        "name": "localhost:5000/x",
        "actions": ["pull"],
    }
    assert tokens.challenge("repository:x:pull") == (
        'Bearer realm="https://auth/token",service="svc",scope="repository:x:pull"'
    )


def test_htpasswd(tmp_path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "h").write_text(f"# comment\nann:{hashed.replace('$2b$', '$2y$')}\nplain:pw\n")
    users = Htpasswd(str(tmp_path / "h"))
    assert users.verify("ann", "pw") and not users.verify("ann", "no")
    assert not users.verify("plain", "pw")  # only bcrypt entries are accepted
    assert not users.verify("nobody", "pw")
    assert parse_basic("Basic YW5uOnB3") == ("ann", "pw")
    assert parse_basic("Basic !!!") is None and parse_basic("Bearer x") is None


def test_clean_uploads_keeps_a_new_upload_without_data(tmp_path):
    """Between its directory and its data file an upload is new, not ancient."""
    from dockyard.registry.storage import Storage

    storage = Storage(str(tmp_path))
    fresh = storage.new_upload("repo")
    data = storage.upload_data(fresh)
    if os.path.exists(data):
        os.unlink(data)
    old = storage.new_upload("repo")
    for path in (storage.upload_data(old), os.path.dirname(storage.upload_data(old))):
        if os.path.exists(path):
            os.utime(path, (1, 1))
    assert storage.clean_uploads(60) == 1
    assert os.path.isdir(os.path.dirname(data))
    assert not os.path.exists(os.path.dirname(storage.upload_data(old)))
