"""Image reference parsing must answer exactly as docker (github.com/distribution/reference) does.

The tables restate the cases of that package's reference_test.go and normalize_test.go, plus
docker's tag-endpoint rules; expected error texts were checked against the Go code itself.
The property tests build valid references from the grammar and check the invariants the
engine relies on (round trips, familiar forms, error texts for the common mistakes).
"""

from __future__ import annotations

import pickle
import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.reference import (
    DigestReference,
    InvalidReference,
    Reference,
    check_tag_name,
    parse,
    parse_any,
    parse_docker_ref,
    parse_named,
    parse_normalized,
    parse_repo_tag,
    validate_tag,
)

F64 = "f" * 64
SHA = "sha256:" + F64
HEX_ID = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
REDIS = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
BAD_FORMAT = "invalid reference format"
TOO_LONG = "repository name must not be more than 255 characters"


def lowercase_error(remote: str) -> str:
    return f"invalid reference format: repository name ({remote}) must be lowercase"


def error_of(fn, *args) -> str:
    with pytest.raises(InvalidReference) as info:
        fn(*args)
    return info.value.message


# --- the bare grammar (Go's Parse: no docker.io, no library/) ---------------------------------

# input -> (domain, path, tag, digest)
GRAMMAR_OK = {
    "test_com": ("", "test_com", None, None),
    "test.com:tag": ("", "test.com", "tag", None),
    # Without a slash a port-looking suffix is a tag.
    "test.com:5000": ("", "test.com", "5000", None),
    "test.com/repo:tag": ("test.com", "repo", "tag", None),
    "test:5000/repo": ("test:5000", "repo", None, None),
    "test:5000/repo:tag": ("test:5000", "repo", "tag", None),
    f"test:5000/repo@{SHA}": ("test:5000", "repo", None, SHA),
    f"test:5000/repo:tag@{SHA}": ("test:5000", "repo", "tag", SHA),
    "lowercase:Uppercase": ("", "lowercase", "Uppercase", None),
    "sub-dom1.foo.com/bar/baz/quux": ("sub-dom1.foo.com", "bar/baz/quux", None, None),
    "sub-dom1.foo.com/bar/baz/quux:some-long-tag": (
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
        None,
    ),
    "b.gcr.io/test.example.com/my-app:test.example.com": (
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
        None,
    ),
    "xn--n3h.com/myimage:xn--n3h.com": ("xn--n3h.com", "myimage", "xn--n3h.com", None),
    f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA}": ("xn--7o8h.com", "myimage", "xn--7o8h.com", SHA),
    "foo_bar.com:8080": ("", "foo_bar.com", "8080", None),
    "foo/foo_bar.com:8080": ("foo", "foo_bar.com", "8080", None),
    "192.168.1.1": ("", "192.168.1.1", None, None),
    "192.168.1.1:tag": ("", "192.168.1.1", "tag", None),
    "192.168.1.1:5000": ("", "192.168.1.1", "5000", None),
    "192.168.1.1/repo": ("192.168.1.1", "repo", None, None),
    "192.168.1.1:5000/repo": ("192.168.1.1:5000", "repo", None, None),
    "192.168.1.1:5000/repo:5050": ("192.168.1.1:5000", "repo", "5050", None),
    "[2001:db8::1]/repo": ("[2001:db8::1]", "repo", None, None),
    "[2001:db8:1:2:3:4:5:6]/repo:tag": ("[2001:db8:1:2:3:4:5:6]", "repo", "tag", None),
    "[2001:db8::1]:5000/repo": ("[2001:db8::1]:5000", "repo", None, None),
    "[2001:db8::1]:5000/repo:tag": ("[2001:db8::1]:5000", "repo", "tag", None),
    f"[2001:db8::1]:5000/repo@{SHA}": ("[2001:db8::1]:5000", "repo", None, SHA),
    f"[2001:db8::1]:5000/repo:tag@{SHA}": ("[2001:db8::1]:5000", "repo", "tag", SHA),
    "[2001:db8::]:5000/repo": ("[2001:db8::]:5000", "repo", None, None),
    "[::1]:5000/repo": ("[::1]:5000", "repo", None, None),
    # The length limit is on the path only: a long domain does not count.
    "example.com/" + "a" * 255 + ":tag": ("example.com", "a" * 255, "tag", None),
    "a/" * 127 + "a:tag-puts-this-over-max": (
        "a",
        "a/" * 126 + "a",
        "tag-puts-this-over-max",
        None,
    ),
    # Docker links sha384 and sha512 too (Go's own test runs without them).
    "name@sha512:" + "f" * 128: ("", "name", None, "sha512:" + "f" * 128),
    "name@sha384:" + "e" * 96: ("", "name", None, "sha384:" + "e" * 96),
}

GRAMMAR_ERRORS = {
    "": "repository name must have at least one component",
    ":justtag": BAD_FORMAT,
    f"@{SHA}": BAD_FORMAT,
    "repo@sha256:" + "f" * 34: "invalid checksum digest length",
    f"validname@invaliddigest:{F64}": "unsupported digest algorithm",
    f"validname@sha256:{F64.upper()}": "invalid checksum digest format",
    "validname@sha256:" + "f" * 31: BAD_FORMAT,  # below the grammar's 32 hex minimum
    "Uppercase:tag": "repository name must be lowercase",
    "test:5000/Uppercase/lowercase:tag": "repository name must be lowercase",
    "domain/" + "a" * 256 + ":tag": TOO_LONG,
    "aa/asdf$$^/aa": BAD_FORMAT,
    "[2001:db8::1]": BAD_FORMAT,
    "[2001:db8::1]:5000": BAD_FORMAT,
    "[2001:db8::1]:tag": BAD_FORMAT,
    "[fe80::1%eth0]:5000/repo": BAD_FORMAT,
    "[fe80::1%@invalidzone]:5000/repo": BAD_FORMAT,
    "repo:" + "t" * 129: BAD_FORMAT,
    # Python's "$" would accept a trailing newline; Go's grammar does not.
    "repo\n": BAD_FORMAT,
    "repo:tag\n": BAD_FORMAT,
    # Unicode letters and digits are not \w for Go.
    "repo:tag\u00e9": BAD_FORMAT,
    "repo:\u0663": BAD_FORMAT,
    # Go lower-cases the dotted capital I to a plain "i", so this is an upper-case error.
    "\u0130mage": "repository name must be lowercase",
}


@pytest.mark.parametrize(
    ("text", "expected"), GRAMMAR_OK.items(), ids=[repr(k)[:60] for k in GRAMMAR_OK]
)
def test_parse_accepts_and_splits(text, expected):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == expected
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "message"), GRAMMAR_ERRORS.items(), ids=[repr(k)[:60] for k in GRAMMAR_ERRORS]
)
def test_parse_rejects_with_gos_message(text, message):
    assert error_of(parse, text) == message


# --- docker's normalisation (ParseNormalizedNamed) --------------------------------------------

# Each row: forms that must all normalise to one reference -> (domain, path, familiar name).
NORMALISED = [
    (["localhost/fooo"], "localhost", "fooo", "localhost/fooo"),
    (["localhost/fooo/bar"], "localhost", "fooo/bar", "localhost/fooo/bar"),
    (["LOCALDOMAIN/fooo"], "LOCALDOMAIN", "fooo", "LOCALDOMAIN/fooo"),
    (["LOCALDOMAIN/fooo/bar"], "LOCALDOMAIN", "fooo/bar", "LOCALDOMAIN/fooo/bar"),
    (
        ["fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"],
        "docker.io",
        "fooo/bar",
        "fooo/bar",
    ),
    (
        ["ubuntu", "library/ubuntu", "docker.io/library/ubuntu", "docker.io/ubuntu"],
        "docker.io",
        "library/ubuntu",
        "ubuntu",
    ),
    (["nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"], "docker.io", "nonlibrary/ubuntu", None),
    (["other/library"], "docker.io", "other/library", None),
    (["127.0.0.1:8000/private/moonbase"], "127.0.0.1:8000", "private/moonbase", None),
    (["127.0.0.1:8000/privatebase"], "127.0.0.1:8000", "privatebase", None),
    (["example.com/private/moonbase"], "example.com", "private/moonbase", None),
    (["example.com:8000/privatebasee"], "example.com:8000", "privatebasee", None),
    (
        ["ubuntu-12.04-base", "index.docker.io/library/ubuntu-12.04-base"],
        "docker.io",
        "library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
    ),
    # "library/" is only dropped from a single remaining component.
    (["library/foo/bar", "docker.io/library/foo/bar"], "docker.io", "library/foo/bar", None),
    (["store/foo/bar"], "docker.io", "store/foo/bar", None),
    # An upper-case first component can only be a host.
    (["Foo/bar"], "Foo", "bar", "Foo/bar"),
    (["FOO/bar"], "FOO", "bar", "FOO/bar"),
    (["test_com/foo"], "docker.io", "test_com/foo", None),
    (["test-com:8080/foo"], "test-com:8080", "foo", None),
    (["xn--n3h.com:18080/foo"], "xn--n3h.com:18080", "foo", None),
    (["docker.io/" + HEX_ID], "docker.io", "library/" + HEX_ID, HEX_ID),
    # A single component is never a host, not even "localhost".
    (["localhost"], "docker.io", "library/localhost", "localhost"),
    # Looks like a host, but "_" is not allowed in one: Go keeps it all as the path, no domain.
    (["a.b_c/foo"], "", "a.b_c/foo", "a.b_c/foo"),
]


@pytest.mark.parametrize(
    ("text", "domain", "path", "familiar"),
    [
        (text, d, p, f or (p if d == "docker.io" else f"{d}/{p}"))
        for ts, d, p, f in NORMALISED
        for text in ts
    ],
)
def test_parse_normalized_names(text, domain, path, familiar):
    ref = parse_normalized(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, None, None)
    assert ref.name == (f"{domain}/{path}" if domain else path)
    assert ref.familiar_name == familiar
    assert ref.familiar() == familiar
    assert str(ref) == ref.name


@pytest.mark.parametrize(
    "text",
    [
        "docker/docker",
        "debian",
        "localhost/library/debian",
        "127.0.0.1:5000/docker/docker",
        "192.168.0.1",
        "192.168.0.1:80",  # image 192.168.0.1, tag 80
        "192.168.0.1:8/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",  # 64, not hex
        "[fc00::1]:5000/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "DOCKER/docker",
        "docker-rules/docker",
        "docker---rules/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
        HEX_ID + ":tag",  # only a bare 64-hex string is taken for an ID
        "busybox:_t",
        "busybox:" + "t" * 128,
    ],
)
def test_parse_normalized_accepts(text):
    parse_normalized(text)


NORMALISED_ERRORS = {
    "https://github.com/docker/docker": BAD_FORMAT,
    "docker/Docker": lowercase_error("docker/Docker"),
    "docker.io/docker/Docker": lowercase_error("docker/Docker"),
    "Busybox": lowercase_error("library/Busybox"),
    "index.docker.io/Foo": lowercase_error("library/Foo"),
    "docker.io/library/Foo:Bar": lowercase_error("library/Foo"),
    "localhost:5000/Foo:Tag": lowercase_error("Foo"),
    "lower.com/Upper/x": lowercase_error("Upper/x"),
    # Go cuts the name at the first ":", which here is inside the digest.
    f"Busybox@{SHA}": lowercase_error("library/Busybox@sha256"),
    f"busybox@SHA256:{F64}": lowercase_error("library/busybox@SHA256"),
    "\u0130box": lowercase_error("library/\u0130box"),
    # Taken for a host, then only lower-casing makes it a valid path: Go's plain message.
    "Foo__x/bar": "repository name must be lowercase",
    HEX_ID: f"invalid repository name ({HEX_ID}), cannot specify 64-byte hexadecimal strings",
    "": BAD_FORMAT,
    "-docker": BAD_FORMAT,
    "-docker/docker": BAD_FORMAT,
    "-docker.io/docker/docker": BAD_FORMAT,
    "docker-/docker": BAD_FORMAT,
    "-docker-/docker": BAD_FORMAT,
    "docker///docker": BAD_FORMAT,
    "docker.io/docker///docker": BAD_FORMAT,
    "____/____": BAD_FORMAT,
    "_docker/_docker": BAD_FORMAT,
    "dock..er/docker": BAD_FORMAT,
    "dock_.er/docker": BAD_FORMAT,
    "dock-.er/docker": BAD_FORMAT,
    "docker/": BAD_FORMAT,
    "[fc00::1]": BAD_FORMAT,
    "[fc00::1]:5000": BAD_FORMAT,
    "fc00::1:5000/debian": BAD_FORMAT,
    "[fe80::1%eth0]:5000/debian": BAD_FORMAT,
    "[2001:db8:3:4::192.0.2.33]:5000/debian": BAD_FORMAT,
    "busybox:": BAD_FORMAT,
    "busybox@": BAD_FORMAT,
    "busybox:-t": BAD_FORMAT,
    "busybox:.t": BAD_FORMAT,
    "busybox:tag:tag": BAD_FORMAT,
    "busybox:" + "t" * 129: BAD_FORMAT,
    " busybox": BAD_FORMAT,
    "busybox:latest\n": BAD_FORMAT,
    f"busybox@sha256:{F64.upper()}": "invalid checksum digest format",
    "busybox@sha256:" + "f" * 63: "invalid checksum digest length",
    "busybox@sha384:" + "f" * 64: "invalid checksum digest length",
    "busybox@md5:" + "f" * 32: "unsupported digest algorithm",
    "_".join(["this_is_not_a_valid_namespace_because_its_length_is_greater_than_255"] * 4)
    + "/docker": TOO_LONG,
}


@pytest.mark.parametrize(
    ("text", "message"), NORMALISED_ERRORS.items(), ids=[repr(k)[:60] for k in NORMALISED_ERRORS]
)
def test_parse_normalized_rejects_with_dockers_message(text, message):
    assert error_of(parse_normalized, text) == message


def test_length_limit_counts_the_path_including_library_prefix():
    # 255 is the limit on the path, so a familiar name has 247 characters ("library/" + 247).
    assert parse_normalized("a" * 247).path == "library/" + "a" * 247
    assert error_of(parse_normalized, "a" * 248) == TOO_LONG
    assert parse_normalized("x/" + "a" * 253).path == "x/" + "a" * 253
    assert error_of(parse_normalized, "x/" + "a" * 254) == TOO_LONG
    assert parse_normalized("example.com/" + "a" * 255).domain == "example.com"
    assert error_of(parse_normalized, "example.com/" + "a" * 256) == TOO_LONG


def test_tag_and_digest_together():
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = parse_normalized(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.familiar() == short
    assert ref.tag == "latest"
    assert ref.digest == short.partition("@")[2]


def test_familiar_form_of_a_dotted_hub_namespace():
    # Go prints docker.io/a.b/c as "a.b/c", which parses back with "a.b" as the registry.
    # Docker Hub namespaces have no dots, so this never bites in practice; kept as Go has it.
    ref = parse_normalized("docker.io/a.b/c")
    assert (ref.domain, ref.path, ref.familiar()) == ("docker.io", "a.b/c", "a.b/c")
    again = parse_normalized(ref.familiar())
    assert (again.domain, again.path) == ("a.b", "c")


def test_parse_normalized_adds_no_default_tag():
    assert parse_normalized("busybox").tag is None
    assert str(parse_normalized("busybox")) == "docker.io/library/busybox"


def test_the_error_is_a_400_invalid_parameter():
    with pytest.raises(InvalidParameter) as info:
        parse_normalized("Busybox")
    assert isinstance(info.value, InvalidReference)
    assert info.value.status == 400
    assert str(info.value) == lowercase_error("library/Busybox")


# --- image IDs and digests (ParseAnyReference) ------------------------------------------------

ANY_NAMED = {
    "redis": "docker.io/library/redis",
    "redis:latest": "docker.io/library/redis:latest",
    "docker.io/library/redis:latest": "docker.io/library/redis:latest",
    f"redis@{REDIS}": f"docker.io/library/redis@{REDIS}",
    "dmcgowan/myapp": "docker.io/dmcgowan/myapp",
    "dmcgowan/myapp:latest": "docker.io/dmcgowan/myapp:latest",
    f"dmcgowan/myapp@{REDIS}": f"docker.io/dmcgowan/myapp@{REDIS}",
    # One hex digit short of an ID, or a short ID prefix: just a name.
    REDIS[7:-1]: "docker.io/library/" + REDIS[7:-1],
    "dbcc1": "docker.io/library/dbcc1",
    # Not a valid digest (wrong length), so "sha256" is a repository and the rest a tag.
    "sha256:abc": "docker.io/library/sha256:abc",
}


@pytest.mark.parametrize(
    ("text", "expected"), ANY_NAMED.items(), ids=[repr(k)[:60] for k in ANY_NAMED]
)
def test_parse_any_names(text, expected):
    ref = parse_any(text)
    assert isinstance(ref, Reference)
    assert ref == parse_normalized(text)
    assert str(ref) == expected


@pytest.mark.parametrize(
    ("text", "digest"),
    [
        (REDIS[7:], REDIS),
        (REDIS, REDIS),
        ("sha512:" + "a" * 128, "sha512:" + "a" * 128),
    ],
)
def test_parse_any_ids_and_digests(text, digest):
    ref = parse_any(text)
    assert isinstance(ref, DigestReference)
    # It is the digest string itself, usable as an image ID as it stands.
    assert isinstance(ref, str)
    assert ref == ref.digest == str(ref) == ref.familiar() == digest
    assert ref.algorithm == digest.partition(":")[0]
    assert ref.encoded == digest.partition(":")[2]


def test_parse_any_errors_are_those_of_parse_normalized():
    assert error_of(parse_any, "Busybox") == lowercase_error("library/Busybox")
    upper_id = HEX_ID.upper()
    assert error_of(parse_any, upper_id) == lowercase_error("library/" + upper_id)
    # Upper-case hex is no digest, so Go reads repository "sha256" with an upper-case tag.
    assert parse_any("sha256:" + F64.upper()) == parse(f"docker.io/library/sha256:{F64.upper()}")


# --- ParseDockerRef, ParseNamed ---------------------------------------------------------------

E66 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:latest", "docker.io/library/busybox:latest"),
        (f"busybox@{E66}", f"docker.io/library/busybox@{E66}"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
        ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
        (f"gcr.io/library/busybox:latest@{E66}", f"gcr.io/library/busybox@{E66}"),
    ],
)
def test_parse_docker_ref(text, expected):
    ref = parse_docker_ref(text)
    assert str(ref) == expected
    assert parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("test.com/foo", ("test.com", "foo")),
        ("test:8080/foo", ("test:8080", "foo")),
        ("docker.io/library/foo", ("docker.io", "library/foo")),
        ("test_com/foo", None),
        ("test.com", None),
        ("foo", None),
        ("library/foo", None),
        ("docker.io/foo", None),  # becomes docker.io/library/foo
    ],
)
def test_parse_named_requires_the_canonical_form(text, outcome):
    if outcome is None:
        assert error_of(parse_named, text) == "repository name must be canonical"
    else:
        ref = parse_named(text)
        assert (ref.domain, ref.path) == outcome


# --- building references ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "digest", "tag", "combined"),
    [
        ("test.com/foo", None, "tag", "test.com/foo:tag"),
        ("foo", None, "tag2", "foo:tag2"),
        ("test.com:8000/foo", None, "tag4", "test.com:8000/foo:tag4"),
        ("test.com:8000/foo", None, "TAG5", "test.com:8000/foo:TAG5"),
        (
            "test.com:8000/foo",
            "sha256:1234567890098765432112345667890098765",
            "TAG5",
            "test.com:8000/foo:TAG5@sha256:1234567890098765432112345667890098765",
        ),
    ],
)
def test_with_tag_keeps_the_digest(name, digest, tag, combined):
    ref = parse(name)
    if digest:
        ref = ref.with_digest(digest)
    assert str(ref.with_tag(tag)) == combined


def test_with_tag_replaces_a_tag():
    assert str(parse_normalized("busybox:1").with_tag("2")) == "docker.io/library/busybox:2"


def test_with_digest_keeps_the_tag_and_checks_only_the_grammar():
    short = "sha256:1234567890098765432112345667890098765"  # too short for go-digest, still OK
    assert str(parse("foo:latest").with_digest(short)) == f"foo:latest@{short}"
    assert error_of(parse("busybox").with_digest, "foo") == "invalid digest format"


@pytest.mark.parametrize(
    "bad", ["-foo", ".foo", "", "a" * 129, "t\u00e9", "a:b", "a/b", "latest\n"]
)
def test_invalid_tags(bad):
    assert error_of(validate_tag, bad) == "invalid tag format"
    assert error_of(parse_normalized("busybox").with_tag, bad) == "invalid tag format"


@pytest.mark.parametrize("good", ["latest", "_x", "0", "A-b.c_d", "a" * 128, "5000"])
def test_valid_tags(good):
    assert validate_tag(good) == good


def test_with_default_tag_only_when_bare():
    assert parse_normalized("busybox").with_default_tag().tag == "latest"
    assert parse_normalized("busybox:1").with_default_tag().tag == "1"
    digested = parse_normalized(f"busybox@{SHA}")
    assert digested.with_default_tag() == digested


def test_name_only():
    ref = parse_normalized(f"busybox:1@{SHA}").name_only()
    assert ref == Reference("docker.io", "library/busybox")


def test_reference_is_an_immutable_value():
    ref = parse_normalized("busybox:1")
    assert ref == Reference("docker.io", "library/busybox", "1", None)
    assert len({ref, Reference("docker.io", "library/busybox", "1")}) == 1
    assert ref != parse_normalized("busybox:2")
    assert ref != str(ref)
    with pytest.raises(AttributeError):
        ref.tag = "2"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert ref.replace(tag="2") == parse_normalized("busybox:2")
    assert "library/busybox" in repr(ref)
    digest = DigestReference(SHA)
    assert pickle.loads(pickle.dumps(digest)) == digest
    assert digest != ref


# --- the tag endpoint (RepoTagReference and the digest-name check) -----------------------------


@pytest.mark.parametrize(
    ("repo", "tag", "expected"),
    [
        ("busybox", None, "docker.io/library/busybox:latest"),
        ("busybox", "", "docker.io/library/busybox:latest"),
        ("busybox", "v1", "docker.io/library/busybox:v1"),
        ("busybox:old", None, "docker.io/library/busybox:old"),
        ("busybox:old", "new", "docker.io/library/busybox:new"),
        ("HOSTNAME.DOMAIN.COM:443/foo/bar", None, "HOSTNAME.DOMAIN.COM:443/foo/bar:latest"),
        ("index.docker.io/library/busybox", "x", "docker.io/library/busybox:x"),
    ],
)
def test_parse_repo_tag(repo, tag, expected):
    ref = parse_repo_tag(repo, tag)
    assert ref is not None
    assert str(ref) == expected


def test_parse_repo_tag_without_repo_is_none():
    assert parse_repo_tag("", "x") is None


@pytest.mark.parametrize(
    ("repo", "tag", "message"),
    [
        (f"busybox@{SHA}", None, "cannot import digest reference"),
        (f"busybox:1@{SHA}", "2", "cannot import digest reference"),
        ("Busybox", None, lowercase_error("library/Busybox")),
        (
            HEX_ID,
            None,
            f"invalid repository name ({HEX_ID}), cannot specify 64-byte hexadecimal strings",
        ),
        ("busybox", "-bad", "invalid tag format"),
        ("busybox", "a" * 129, "invalid tag format"),
    ],
)
def test_parse_repo_tag_errors(repo, tag, message):
    assert error_of(parse_repo_tag, repo, tag) == message


def test_a_repository_named_like_the_digest_algorithm_is_refused():
    ambiguous = "refusing to create an ambiguous tag using digest algorithm as name"
    for repo in ("sha256", "sha256:sometag", "docker.io/library/sha256"):
        ref = parse_repo_tag(repo, None)
        assert ref is not None
        assert error_of(check_tag_name, ref) == ambiguous
    for repo in ("sha512", "user/sha256", "example.com/sha256"):
        ref = parse_repo_tag(repo, None)
        assert ref is not None
        check_tag_name(ref)


# --- properties -------------------------------------------------------------------------------

LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
alnum = st.text(LOWER_ALNUM, min_size=1, max_size=8)
separators = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def path_components(draw) -> str:
    text = draw(alnum)
    for _ in range(draw(st.integers(0, 3))):
        text += draw(separators) + draw(alnum)
    return text


paths = st.lists(path_components(), min_size=1, max_size=4).map("/".join)
host_labels = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
ports = st.integers(1, 65535).map(lambda p: f":{p}")
# Hosts that docker's normalisation also reads as hosts (it looks for a "." or ":"): dotted
# names, IPv4, bracketed IPv6, and any of those or a single label with a port.
hosts = st.one_of(
    st.lists(host_labels, min_size=2, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.from_regex(r"\[[0-9a-fA-F]{0,4}:[0-9a-fA-F:]{0,16}\]", fullmatch=True),
)
domains = st.one_of(hosts, st.tuples(hosts | host_labels, ports).map("".join))
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
digests = st.one_of(
    st.text("0123456789abcdef", min_size=64, max_size=64).map("sha256:".__add__),
    st.text("0123456789abcdef", min_size=128, max_size=128).map("sha512:".__add__),
)


def suffix(tag: str | None, digest: str | None) -> str:
    return (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")


@given(domains, paths, st.none() | tags, st.none() | digests)
def test_any_valid_combination_parses_into_its_parts(domain, path, tag, digest):
    text = f"{domain}/{path}{suffix(tag, digest)}"
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == text
    assert parse_normalized(text) == ref


@given(
    st.sampled_from([None, "docker.io", "index.docker.io", "localhost", "localhost:5000"])
    | domains,
    paths,
    st.none() | tags,
    st.none() | digests,
)
def test_normalisation_round_trips(domain, path, tag, digest):
    if domain is None:
        # Without a domain, a dotted first component of several would itself be read as a host.
        first, slash, _ = path.partition("/")
        assume(not slash or "." not in first)
    text = (f"{domain}/" if domain else "") + path + suffix(tag, digest)
    ref = parse_normalized(text)

    hub = domain in (None, "docker.io", "index.docker.io")
    assert ref.domain == ("docker.io" if hub else domain)
    assert ref.path == ("library/" + path if hub and "/" not in path else path)
    assert (ref.tag, ref.digest) == (tag, digest)

    assert parse_normalized(str(ref)) == ref
    # Go quirk (see test_familiar_form_of_a_dotted_hub_namespace): a Docker Hub namespace with
    # a "." is printed without docker.io, and then reads back as a host.
    if not (hub and "." in path.split("/")[0] and "/" in path):
        assert parse_normalized(ref.familiar()) == ref
        assert parse_any(ref.familiar()) == ref
    assert ref.familiar() == ref.familiar_name + suffix(tag, digest)
    assert parse_docker_ref(str(ref)).tag == (None if digest else tag or "latest")


@given(st.sampled_from([None, "docker.io", "example.com", "localhost:5000"]), paths, st.data())
def test_upper_case_in_the_repository_always_fails(domain, path, data):
    components = path.split("/")
    letters = [i for i, c in enumerate(components[-1]) if c.isalpha()]
    assume(letters)
    if domain is None:
        assume(len(components) == 1 or "." not in components[0])
    i = data.draw(st.sampled_from(letters))
    last = components[-1]
    components[-1] = last[:i] + last[i].upper() + last[i + 1 :]
    bad_path = "/".join(components)
    tag = data.draw(st.none() | tags)
    text = (f"{domain}/" if domain else "") + bad_path + suffix(tag, None)

    hub = domain in (None, "docker.io")
    remote = "library/" + bad_path if hub and len(components) == 1 else bad_path
    assert error_of(parse_normalized, text) == lowercase_error(remote)
    assert error_of(parse_any, text) == lowercase_error(remote)


@given(st.lists(st.text(LOWER_ALNUM, min_size=5, max_size=10), min_size=50, max_size=80))
def test_paths_over_255_characters_fail(components):
    path = "/".join(components)
    assert len(path) > 255
    assert error_of(parse_normalized, f"example.com/{path}") == TOO_LONG
    assert error_of(parse, f"example.com/{path}:tag") == TOO_LONG


@given(st.text("0123456789abcdef", min_size=64, max_size=64))
def test_a_bare_64_hex_string_is_an_id_not_a_name(hex_id):
    assert parse_any(hex_id) == DigestReference("sha256:" + hex_id)
    assert parse_any("sha256:" + hex_id) == DigestReference("sha256:" + hex_id)
    message = f"invalid repository name ({hex_id}), cannot specify 64-byte hexadecimal strings"
    assert error_of(parse_normalized, hex_id) == message


@given(paths, tags, st.none() | digests)
def test_with_tag_sets_the_tag_and_keeps_the_rest(path, tag, digest):
    ref = parse_normalized(path + suffix(None, digest))
    tagged = ref.with_tag(tag)
    assert (tagged.domain, tagged.path, tagged.tag, tagged.digest) == (
        ref.domain,
        ref.path,
        tag,
        digest,
    )
    assert parse_normalized(str(tagged)) == tagged


@given(st.text(max_size=80))
def test_arbitrary_text_either_parses_or_raises_invalid_reference(text):
    for fn in (parse, parse_normalized, parse_any, parse_docker_ref):
        try:
            ref = fn(text)
        except InvalidReference as exc:
            assert exc.message
        else:
            # Whatever is accepted prints as a string that parses back to the same thing.
            assert fn(str(ref)) == ref


def test_long_hostile_input_is_rejected_quickly():
    # Backtracking regex engines can blow up on nested repetition; these must stay linear.
    for text in (
        "a-" * 50_000 + "!",
        "a." * 50_000 + "!",
        "a.b-" * 25_000 + ":1/x!",
        "x/" + "a__" * 30_000 + "!",
    ):
        start = time.perf_counter()
        assert error_of(parse_normalized, text) == BAD_FORMAT
        assert time.perf_counter() - start < 2.0
