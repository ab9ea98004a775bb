"""Registry authentication, the pure parts: WWW-Authenticate challenges (RFC 7235), token
scopes, the X-Registry-Auth header the docker CLI sends, and registry host names.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
    "https://index.docker.io/v1/",
    "https://index.docker.io/v1",
    "index.docker.io/v1",
    "",
}


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str] = field(default_factory=dict)


_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge of a WWW-Authenticate header: `Bearer realm="…",service="…"`, several
    challenges separated by commas, quoted strings with backslash escapes. Malformed parts are
    skipped, never raised: a server's header is not ours to reject."""
    challenges: list[Challenge] = []
    i, n = 0, len(header)

    def skip_ws(j: int) -> int:
        while j < n and header[j] in " \t":
            j += 1
        return j

    def token(j: int) -> tuple[str, int]:
        start = j
        while j < n and header[j] in _TCHAR:
            j += 1
        return header[start:j], j

    current: Challenge | None = None
    while i < n:
        i = skip_ws(i)
        if i < n and header[i] == ",":
            i += 1
            continue
        name, j = token(i)
        if not name:
            i += 1  # junk: skip a character
            continue
        k = skip_ws(j)
        if k < n and header[k] == "=" and current is not None:
            k = skip_ws(k + 1)
            if k < n and header[k] == '"':
                k += 1
                value = []
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    value.append(header[k])
                    k += 1
                current.params[name.lower()] = "".join(value)
                i = k + 1
            else:
                value_token, k = token(k)
                current.params[name.lower()] = value_token
                i = k
            continue
        # A scheme starts a new challenge (token68 values of Basic/Negotiate are ignored).
        current = Challenge(name.lower(), {})
        challenges.append(current)
        i = j
    return challenges


def repository_scope(repository: str, actions: list[str]) -> str:
    """`repository:library/busybox:pull,push` (distribution's token scope)."""
    return f"repository:{repository}:{','.join(actions)}"


def token_query(challenge: Challenge, scopes: list[str]) -> list[tuple[str, str]]:
    query = []
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    query.extend(("scope", scope) for scope in scopes)
    return query


def token_from_response(body: bytes) -> tuple[str, int]:
    """(token, lifetime in seconds) of a token endpoint's answer: `token` or `access_token`."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise InvalidParameter("invalid token response: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid token response: not a JSON object")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise InvalidParameter("invalid token response: no token")
    expires = doc.get("expires_in")
    lifetime = expires if isinstance(expires, int) and expires > 0 else 60
    return value, lifetime


@dataclass(frozen=True)
class AuthConfig:
    """What a client hands the daemon for one registry (the docker CLI's X-Registry-Auth)."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def to_json(self) -> dict[str, str]:
        doc = {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.server_address,
        }
        if self.identity_token:
            doc["identitytoken"] = self.identity_token
        if self.registry_token:
            doc["registrytoken"] = self.registry_token
        return doc


def auth_from_json(doc: Any) -> AuthConfig:
    if not isinstance(doc, dict):
        return AuthConfig()

    def text(*keys: str) -> str:
        for key in keys:
            for candidate in (key, key.lower(), key.capitalize()):
                value = doc.get(candidate)
                if isinstance(value, str) and value:
                    return value
        return ""

    username, password = text("username"), text("password")
    encoded = text("auth")
    if encoded and not username:
        username, password = decode_basic(encoded)
    return AuthConfig(
        username=username,
        password=password,
        server_address=text("serveraddress", "serverAddress"),
        identity_token=text("identitytoken", "identityToken"),
        registry_token=text("registrytoken", "registryToken"),
    )


def decode_registry_auth(header: str) -> AuthConfig:
    """The X-Registry-Auth header: base64url (padded or not) JSON. moby ignores a header it
    cannot decode rather than failing the request; so do we."""
    header = header.strip()
    if not header:
        return AuthConfig()
    padded = header + "=" * (-len(header) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        return auth_from_json(json.loads(raw))
    except (binascii.Error, ValueError):
        return AuthConfig()


def encode_registry_auth(auth: AuthConfig) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth.to_json()).encode()).decode()


def encode_basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def decode_basic(value: str) -> tuple[str, str]:
    try:
        text = base64.b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise InvalidParameter("invalid auth configuration: auth is not base64") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise InvalidParameter("invalid auth configuration: auth has no user:password")
    return user, password.strip("\x00")


def registry_host(server: str) -> str:
    """The registry a login address names: "localhost:5000" from "http://localhost:5000/v2/",
    "docker.io" for Docker Hub's many spellings."""
    text = server.strip()
    if text.lower() in _HUB_ALIASES:
        return DOCKER_HUB
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    host = text.split("/", 1)[0]
    return DOCKER_HUB if host.lower() in _HUB_ALIASES else host


def config_key(host: str) -> str:
    """The key docker's config.json uses for a registry's credentials."""
    return DOCKER_HUB_CONFIG_KEY if registry_host(host) == DOCKER_HUB else registry_host(host)


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1, with or without a port: plain HTTP, as docker allows."""
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    elif host.count(":") > 1:
        name = host
    else:
        name = host.rsplit(":", 1)[0] if ":" in host else host
    name = name.lower()
    return name == "localhost" or name.startswith("127.") or name == "::1"
