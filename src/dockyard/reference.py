"""Docker image references: the grammar and normalisation of github.com/distribution/reference.

Docker parses every image name it is given (pull, run, tag, inspect, rmi, commit, import) through
that Go package, and clients compare our answers and error texts with docker's, so this module
follows its algorithm step by step, including the quirks (see the comments marked "Go").

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path
    domain     := host [ ":" port ]      host: DNS-ish name, IPv4, or [IPv6]
    path       := component [ "/" component ]*     component: [a-z0-9]+ joined by . _ __ or -+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex{32,}

Entry points: `parse_normalized` for anything a user types as an image name, `parse_any` where a
full image ID is also acceptable, `parse_repo_tag` for the `repo`/`tag` query parameters of
the tag, commit and import endpoints. Every failure raises `InvalidReference` (HTTP 400).

Only `re` is imported: the CLI imports this module and its start-up time is measured, and
dataclasses would pull in `inspect` (~15 ms, several times this whole module), so `Reference`
is a hand-written immutable value class instead.
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
# Go: only the path counts (the domain was excluded from the check in distribution/reference 0.6),
# so "library/" added to a familiar name does count.
NAME_TOTAL_LENGTH_MAX = 255


class InvalidReference(InvalidParameter):
    """A string that docker would refuse as an image reference, repository, tag or digest."""


# Go's error texts, verbatim: clients and scripts match on them.
ERR_INVALID_FORMAT = "invalid reference format"
ERR_TAG_FORMAT = "invalid tag format"
ERR_DIGEST_FORMAT = "invalid digest format"
ERR_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_NOT_CANONICAL = "repository name must be canonical"
ERR_DIGEST_IN_REPO = "cannot import digest reference"
ERR_AMBIGUOUS_TAG = "refusing to create an ambiguous tag using digest algorithm as name"
# The three go-digest errors a syntactically valid digest can still hit.
ERR_CHECKSUM_FORMAT = "invalid checksum digest format"
ERR_CHECKSUM_LENGTH = "invalid checksum digest length"
ERR_CHECKSUM_UNSUPPORTED = "unsupported digest algorithm"

# The grammar, spelled out with explicit ASCII classes: Python's \w and \d would accept Unicode
# letters and digits that Go's RE2 rejects. Every pattern is used with fullmatch, never "$",
# which in Python also matches before a trailing newline.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
# Bracketed IPv6 only; zone ids ("%eth0") and dotted IPv4-mapped forms are deliberately refused.
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# One pass gives domain, path, tag and digest. Go matches the name first and then splits it with
# a second regex; both engines are leftmost-first, so the split chosen here is the same.
_REFERENCE_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?")
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
# go-digest's own, laxer, syntax check: decides "unsupported" versus "invalid format".
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+")
# dockerd links crypto/sha256 and crypto/sha512, so go-digest knows exactly these three.
_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}


class Reference:
    """A named image reference: immutable, hashable, compared by value (like a frozen dataclass).

    `domain` is "" only for references from `parse` whose name has no domain part; everything
    `parse_normalized` returns has one ("docker.io" for Docker Hub). `path` never includes it.
    """

    __slots__ = ("digest", "domain", "path", "tag")
    __match_args__ = ("domain", "path", "tag", "digest")

    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(
        self, domain: str, path: str, tag: str | None = None, digest: str | None = None
    ) -> None:
        # No validation here: the parsers validate; this is also the cheap way to rebuild a
        # reference already known to be valid (e.g. from the engine's own store).
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Reference is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Reference is immutable")

    def _key(self) -> tuple[str, str, str | None, str | None]:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reference):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Reference(domain={self.domain!r}, path={self.path!r}, "
            f"tag={self.tag!r}, digest={self.digest!r})"
        )

    def __reduce__(self) -> tuple[type[Reference], tuple[str, str, str | None, str | None]]:
        # The default slot-state pickling would go through the blocked __setattr__.
        return (Reference, self._key())

    def replace(self, **changes: str | None) -> Reference:
        """A copy with some fields changed, unvalidated (dataclasses.replace's counterpart)."""
        fields = dict(zip(self.__match_args__, self._key(), strict=True))
        fields.update(changes)
        return Reference(**fields)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """The full repository name without tag or digest: "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as docker shows it: "busybox", "user/app", "localhost:5000/x"."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        # Go: "library/" is dropped only for a single-component remainder, so
        # docker.io/library/a/b stays "library/a/b" (and re-parses to the same reference).
        if rest != self.path and "/" not in rest:
            return rest
        return self.path

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The full reference as docker shows it: "busybox:latest", "user/app@sha256:..."."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """Go's WithTag: sets or replaces the tag and keeps any digest."""
        return Reference(self.domain, self.path, validate_tag(tag), self.digest)

    def with_digest(self, digest: str) -> Reference:
        """Go's WithDigest: sets or replaces the digest and keeps any tag.

        Like Go, only the digest grammar is checked here, not go-digest's algorithm rules.
        """
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(ERR_DIGEST_FORMAT)
        return Reference(self.domain, self.path, self.tag, digest)

    def with_default_tag(self) -> Reference:
        """Go's TagNameOnly: adds "latest" only when there is neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG)
        return self

    def name_only(self) -> Reference:
        """Go's TrimNamed: the repository alone, without tag and digest."""
        return Reference(self.domain, self.path)


class DigestReference(str):
    """A reference that is only a digest: what `parse_any` returns for a full image ID.

    Both "sha256:<64 hex>" and the bare 64-hex form give one. It *is* the digest string, always
    with its algorithm, so it can be used directly as an image ID or printed in docker's
    messages; `isinstance(x, DigestReference)` (or `str`) tells it from a named `Reference`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"DigestReference({str(self)!r})"

    @property
    def digest(self) -> str:
        return str(self)

    def familiar(self) -> str:
        return str(self)

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def encoded(self) -> str:
        """The hex part: for sha256 this is the image ID without its prefix."""
        return self.partition(":")[2]


def _go_lower(s: str) -> str:
    """Go's strings.ToLower, as far as it matters here.

    Go maps each character on its own (U+0130 "İ" -> "i") where Python uses the full mapping
    ("İ" -> "i" + combining dot); other differences can't turn a string into ASCII, which is
    all the grammar can match, so they change no outcome.
    """
    return s.lower() if s.isascii() else s.replace("\u0130", "i").lower()


def _digest_error(digest: str) -> str | None:
    """go-digest's Digest.Validate: None when valid, else its error text."""
    alg, sep, encoded = digest.partition(":")
    if not alg or not sep or not encoded:
        return ERR_CHECKSUM_FORMAT
    expected = _HEX_LENGTH.get(alg)
    if expected is None:
        return ERR_CHECKSUM_UNSUPPORTED if _GO_DIGEST_RE.fullmatch(digest) else ERR_CHECKSUM_FORMAT
    # Go measures bytes, so a non-ASCII character can turn a format error into a length error.
    size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8", "surrogatepass"))
    if size != expected:
        return ERR_CHECKSUM_LENGTH
    return None if _LOWER_HEX_RE.fullmatch(encoded) else ERR_CHECKSUM_FORMAT


def validate_tag(tag: str) -> str:
    """Returns `tag` if docker accepts it as a tag, else raises "invalid tag format"."""
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReference(ERR_TAG_FORMAT)
    return tag


def parse(s: str) -> Reference:
    """Go's Parse: the bare grammar, without docker's normalisation ("busybox" has no domain)."""
    if not s:
        raise InvalidReference(ERR_NAME_EMPTY)
    match = _REFERENCE_RE.fullmatch(s)
    if match is None:
        lowered = _go_lower(s)
        if lowered != s and _REFERENCE_RE.fullmatch(lowered):
            raise InvalidReference(ERR_UPPERCASE)
        raise InvalidReference(ERR_INVALID_FORMAT)
    domain, path, tag, digest = match.groups()
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    if digest is not None and (problem := _digest_error(digest)) is not None:
        raise InvalidReference(problem)
    return Reference(domain or "", path, tag, digest)


def _split_docker_domain(s: str) -> tuple[str, str]:
    """Go's splitDockerDomain: decides whether the first component is a registry."""
    first, slash, rest = s.partition("/")
    if not slash:
        # Go: a single component is always a Docker Hub official image, even "localhost" or
        # "example.com"; "host:5000" therefore parses as image "host" with tag "5000".
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + s
    if first == "localhost":
        domain, remote = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or _go_lower(first) != first:
        # Path components are lowercase and have neither "." nor ":", so an upper-case first
        # component can only be meant as a host ("LOCALDOMAIN/x").
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, s
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized(s: str) -> Reference:
    """Go's ParseNormalizedNamed: a user-typed image name, made fully qualified.

    "busybox" -> docker.io/library/busybox, "user/app" -> docker.io/user/app. No default tag
    is added (see `Reference.with_default_tag`).
    """
    if _IDENTIFIER_RE.fullmatch(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(s)
    # Go: everything before the first ":" counts as the name, so with a digest and no tag the
    # message shows e.g. "library/Busybox@sha256".
    remote = remainder.partition(":")[0]
    if _go_lower(remote) != remote:
        raise InvalidReference(
            f"{ERR_INVALID_FORMAT}: repository name ({remote}) must be lowercase"
        )
    # Go: the domain chosen above is only a hint; the grammar may still read it as part of the
    # path ("a_b.com/x" has domain "" because "_" is not allowed in a host name).
    return parse(f"{domain}/{remainder}")


def parse_any(s: str) -> Reference | DigestReference:
    """Go's ParseAnyReference: an image ID, a digest or a (normalised) name.

    Returns a `DigestReference` for a bare 64-hex ID (read as sha256) or a valid
    "algorithm:hex" digest, else what `parse_normalized` returns. Short ID prefixes such as
    "abc123" come back as names (docker.io/library/abc123): docker then tries its tag store
    first and an ID-prefix search second, and so should the engine.
    """
    if _IDENTIFIER_RE.fullmatch(s):
        return DigestReference("sha256:" + s)
    if _digest_error(s) is None:
        return DigestReference(s)
    return parse_normalized(s)


def parse_docker_ref(s: str) -> Reference:
    """Go's ParseDockerRef: normalised, "latest" when untagged, and a digest wins over a tag."""
    ref = parse_normalized(s)
    if ref.tag is not None and ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.with_default_tag()


def parse_named(s: str) -> Reference:
    """Go's ParseNamed: like `parse_normalized` but `s` must already be fully qualified."""
    ref = parse_normalized(s)
    if str(ref) != s:
        raise InvalidReference(ERR_NOT_CANONICAL)
    return ref


def parse_repo_tag(repo: str, tag: str | None = None) -> Reference | None:
    """Docker's RepoTagReference: the `repo` and `tag` query parameters of image tag, commit
    and import, combined into a tagged reference.

    Returns None for an empty `repo`: docker then does nothing and still answers success
    (tag: 201 becomes a bare 200 without tagging; commit and import leave the image untagged).
    A tag given in `repo` is replaced by a non-empty `tag`, else kept; "latest" is the default.
    A digest in `repo` is refused ("cannot import digest reference": the daemon's text; the
    docker CLI refuses earlier, with "refusing to create a tag with a digest reference").
    """
    if not repo:
        return None
    ref = parse_normalized(repo)
    if ref.digest is not None:
        raise InvalidReference(ERR_DIGEST_IN_REPO)
    return ref.with_tag(tag) if tag else ref.with_default_tag()


def check_tag_name(ref: Reference) -> None:
    """Refuses a repository named "sha256", which would read as a digest ("sha256:<tag>").

    Docker's tag endpoint checks this right after `parse_repo_tag`, before looking the source
    image up; its reference store checks it again for every tag it records (pull, load, build,
    commit, import), so call this wherever a tag is about to be stored.
    """
    if ref.familiar_name == "sha256":
        raise InvalidReference(ERR_AMBIGUOUS_TAG)
