"""The registry client's pure parts: manifests and indexes, platforms, WWW-Authenticate,
X-Registry-Auth, config.json credentials, docker's progress messages, endpoints."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.distribution import auth, credentials, progress
from dockyard.distribution import manifest as mf
from dockyard.distribution.client import Options, _errors_text, endpoints
from dockyard.image.model import DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def docker_manifest(layers: list[dict] | None = None) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": D1,
                "size": 10,
            },
            "layers": layers
            if layers is not None
            else [{"mediaType": DOCKER_LAYER_GZIP, "digest": D2, "size": 20}],
        }
    ).encode()


def test_docker_manifest_parses() -> None:
    parsed = mf.parse(docker_manifest())
    assert isinstance(parsed, mf.Manifest)
    assert parsed.config.digest == D1
    assert [(d.digest, d.size) for d in parsed.layers] == [(D2, 20)]
    assert parsed.layers[0].short() == "b" * 12


def test_oci_manifest_without_media_type_uses_the_header_or_its_fields() -> None:
    doc = json.loads(docker_manifest())
    del doc["mediaType"]
    doc["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"
    parsed = mf.parse(json.dumps(doc).encode(), OCI_MANIFEST + "; charset=utf-8")
    assert isinstance(parsed, mf.Manifest) and parsed.media_type == OCI_MANIFEST
    index = mf.parse(json.dumps({"schemaVersion": 2, "manifests": []}).encode())
    assert isinstance(index, mf.Index) and index.media_type == OCI_INDEX


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid manifest"),
        (b"[]", "not a JSON object"),
        (b'{"schemaVersion": 1}', "schema 1"),
        (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "unsupported manifest media type"),
        (
            docker_manifest([{"mediaType": "application/x-evil", "digest": D2, "size": 1}]),
            "unsupported layer media type",
        ),
        (
            docker_manifest([{"mediaType": DOCKER_LAYER_GZIP, "digest": "sha256:zz", "size": 1}]),
            "invalid digest",
        ),
        (
            docker_manifest([{"mediaType": DOCKER_LAYER_GZIP, "digest": D2, "size": -1}]),
            "invalid size",
        ),
        (docker_manifest([{"mediaType": DOCKER_LAYER_GZIP, "digest": D2}]), "invalid size"),
        (b" " * (mf.MAX_MANIFEST_SIZE + 1), "too big"),
    ],
)
def test_bad_manifests_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(mf.ManifestError, match=message):
        mf.parse(body)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_manifest_error(data: bytes) -> None:
    try:
        mf.parse(data)
    except mf.ManifestError:
        pass


def index(*platforms: str) -> mf.Index:
    entries = []
    for i, text in enumerate(platforms):
        digest = "sha256:" + f"{i:064x}"
        entries.append((OCI_MANIFEST, digest, 100, mf.parse_platform(text)))
    parsed = mf.parse(mf.index_body(entries))
    assert isinstance(parsed, mf.Index)
    return parsed


def test_platforms_parse_and_normalize() -> None:
    assert str(mf.parse_platform("linux/arm64/v8")) == "linux/arm64"
    assert str(mf.parse_platform("linux/arm")) == "linux/arm/v7"
    assert str(mf.parse_platform("arm64")) == "linux/arm64"
    assert str(mf.parse_platform("Linux/x86_64")) == "linux/amd64"
    assert mf.host_platform().os == "linux"
    with pytest.raises(Exception, match="invalid platform"):
        mf.parse_platform("linux//")


def test_index_picks_the_platform() -> None:
    idx = index("linux/amd64", "linux/arm64", "linux/arm/v6", "linux/arm/v7")
    assert mf.choose(idx, mf.parse_platform("linux/arm64/v8")).digest.endswith("1")
    assert mf.choose(idx, mf.parse_platform("linux/arm/v7")).digest.endswith("3")
    assert mf.choose(idx, mf.parse_platform("linux/amd64")).digest.endswith("0")
    with pytest.raises(mf.ManifestError, match="no matching manifest for linux/s390x"):
        mf.choose(idx, mf.parse_platform("linux/s390x"))


def test_arm_v7_falls_back_to_v6() -> None:
    idx = index("linux/amd64", "linux/arm/v6")
    assert mf.choose(idx, mf.parse_platform("linux/arm/v7")).digest.endswith("1")


@given(st.sampled_from(["amd64", "arm64", "arm/v7", "ppc64le", "s390x", "386"]))
def test_an_index_entry_is_found_for_its_own_platform(arch: str) -> None:
    idx = index("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x")
    if arch == "386":
        with pytest.raises(mf.ManifestError):
            mf.choose(idx, mf.parse_platform(f"linux/{arch}"))
    else:
        chosen = mf.choose(idx, mf.parse_platform(f"linux/{arch}"))
        assert chosen.platform is not None
        assert mf.matches(mf.parse_platform(f"linux/{arch}"), chosen.platform)


def test_schema2_is_what_docker_pushes() -> None:
    media, body = mf.schema2(D1, 10, [(DOCKER_LAYER_GZIP, D2, 20)])
    assert media == DOCKER_MANIFEST
    parsed = mf.parse(body)
    assert isinstance(parsed, mf.Manifest)
    assert parsed.config.media_type == "application/vnd.docker.container.image.v1+json"
    media, body = mf.schema2(D1, 10, [("application/vnd.oci.image.layer.v1.tar+zstd", D2, 20)])
    assert media == OCI_MANIFEST and isinstance(mf.parse(body), mf.Manifest)


# -- WWW-Authenticate --------------------------------------------------------------------------
def test_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    [challenge] = auth.parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }
    assert auth.token_query(challenge, ["repository:a:pull"]) == [
        ("service", "registry.docker.io"),
        ("scope", "repository:a:pull"),
    ]


def test_several_challenges_and_escapes() -> None:
    found = auth.parse_challenges('Basic realm="a \\"b\\"", Bearer realm=x , service="s,t"')
    assert [(c.scheme, c.params) for c in found] == [
        ("basic", {"realm": 'a "b"'}),
        ("bearer", {"realm": "x", "service": "s,t"}),
    ]


quoted = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), max_size=20)


@given(st.dictionaries(st.sampled_from(["realm", "service", "scope", "error"]), quoted))
def test_challenge_params_round_trip(params: dict[str, str]) -> None:
    def q(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Bearer " + ",".join(f"{k}={q(v)}" for k, v in params.items())
    [challenge] = auth.parse_challenges(header)
    assert challenge.params == params


@given(st.text(max_size=80))
def test_challenge_parser_never_raises(header: str) -> None:
    auth.parse_challenges(header)


def test_token_responses() -> None:
    assert auth.token_from_response(b'{"token":"t","expires_in":300}') == ("t", 300)
    assert auth.token_from_response(b'{"access_token":"u"}') == ("u", 60)
    for bad in (b"x", b"[]", b'{"token":""}'):
        with pytest.raises(Exception, match="invalid token response"):
            auth.token_from_response(bad)


# -- X-Registry-Auth and hosts -----------------------------------------------------------------
def test_registry_auth_header_round_trips_and_tolerates_junk() -> None:
    config = auth.AuthConfig("u", "p:w", "localhost:5000")
    assert auth.decode_registry_auth(auth.encode_registry_auth(config)) == config
    unpadded = base64.urlsafe_b64encode(b'{"username":"a","password":"b"}').decode().rstrip("=")
    assert auth.decode_registry_auth(unpadded).username == "a"
    assert auth.decode_registry_auth("e30=").empty
    assert auth.decode_registry_auth("!!!").empty
    assert auth.decode_registry_auth("").empty
    via_auth = auth.auth_from_json({"auth": auth.encode_basic("x", "y")})
    assert (via_auth.username, via_auth.password) == ("x", "y")


def test_registry_hosts() -> None:
    assert auth.registry_host("https://index.docker.io/v1/") == "docker.io"
    assert auth.registry_host("http://localhost:5000/v2/") == "localhost:5000"
    assert auth.config_key("docker.io") == "https://index.docker.io/v1/"
    assert auth.config_key("reg.example:443") == "reg.example:443"
    for host in ("localhost", "localhost:5000", "127.0.0.1:1", "[::1]:5000", "::1"):
        assert auth.is_loopback(host), host
    for host in ("example.com", "10.0.0.1:5000", "localhost.example:5000"):
        assert not auth.is_loopback(host), host


def test_endpoints() -> None:
    options = Options(insecure={"reg.lan:5000"}, mirrors=["https://mirror.lan/"])
    assert endpoints("localhost:5000", options) == ["http://localhost:5000"]
    assert endpoints("reg.lan:5000", options) == ["https://reg.lan:5000", "http://reg.lan:5000"]
    assert endpoints("example.com", options) == ["https://example.com"]
    assert endpoints("docker.io", options) == [
        "https://mirror.lan",
        "https://registry-1.docker.io",
    ]
    assert endpoints("docker.io", options, push=True) == ["https://registry-1.docker.io"]


def test_registry_error_bodies() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
    assert _errors_text(body) == "manifest unknown: manifest unknown"
    assert _errors_text(b"plain text") == "plain text"


# -- config.json -------------------------------------------------------------------------------
def test_credentials_store_get_erase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    path = Path(credentials.config_path())
    path.parent.mkdir()
    path.write_text(json.dumps({"credsStore": "", "proxies": {"default": {}}}))
    assert credentials.get("localhost:5000") is None
    credentials.store("localhost:5000", "me", "s3:cret")
    credentials.store("docker.io", "hub", "pw")
    doc = json.loads(path.read_text())
    assert doc["auths"]["localhost:5000"] == {"auth": base64.b64encode(b"me:s3:cret").decode()}
    assert "https://index.docker.io/v1/" in doc["auths"]
    assert doc["proxies"] == {"default": {}}  # other keys kept
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert credentials.get("http://localhost:5000/") == ("me", "s3:cret")
    assert credentials.get("index.docker.io") == ("hub", "pw")
    assert credentials.erase("localhost:5000")
    assert not credentials.erase("localhost:5000")
    assert credentials.get("localhost:5000") is None


def test_credentials_with_fields_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"r:1": {"username": "a", "password": "b"}}}))
    assert credentials.get("r:1", str(path)) == ("a", "b")
    path.write_text(json.dumps({"auths": {"r:1": {"auth": "bm9jb2xvbg=="}}}))  # "nocolon"
    with pytest.raises(credentials.CredentialsError):
        credentials.get("r:1", str(path))
    path.write_text("{broken")
    with pytest.raises(credentials.CredentialsError):
        credentials.load(str(path))
    assert credentials.load(str(tmp_path / "missing.json")) == {}


# -- progress ----------------------------------------------------------------------------------
def test_progress_bar_is_dockers() -> None:
    assert progress.bar(0, 0) == ""
    assert progress.bar(1000, 2000) == "[" + "=" * 25 + ">" + " " * 25 + "]      1kB/2kB"
    assert progress.bar(2000, 2000).startswith("[" + "=" * 50 + ">]")
    assert progress.bar(1234567, 0) == " 1.235MB"
    message = progress.transfer("Downloading", "0123456789ab", 10, 100)
    assert message["progressDetail"] == {"current": 10, "total": 100}
    assert message["id"] == "0123456789ab"
    assert progress.status("Pull complete", "x", detail=True) == {
        "status": "Pull complete",
        "progressDetail": {},
        "id": "x",
    }


@given(st.integers(0, 10**10), st.integers(1, 10**10))
def test_progress_bar_width_is_fixed(current: int, total: int) -> None:
    text = progress.bar(current, total)
    assert text.index("]") == 52
    assert text[1:52].count(">") == 1


def test_throttle_always_reports_the_end() -> None:
    seen: list[dict] = []
    meter = progress.Throttle(seen.append, "Pushing", "id", 10, interval=3600)
    for _ in range(10):
        meter.add(1)
    assert seen[0]["progressDetail"]["current"] == 1
    assert seen[-1]["progressDetail"] == {"current": 10, "total": 10}
    assert len(seen) == 2
