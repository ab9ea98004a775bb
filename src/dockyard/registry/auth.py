"""Who may do what: htpasswd basic auth and the registry token protocol (HMAC-signed JWTs).

Basic mode (`--htpasswd`): every request carries `Authorization: Basic`; a valid user may pull
and push anything, anything else gets 401 with `WWW-Authenticate: Basic realm=...`.

Token mode (`--token-realm URL --token-key FILE`): requests carry `Authorization: Bearer <jwt>`;
a missing or insufficient token gets 401 with
`Bearer realm="...",service="...",scope="repository:<name>:pull,push"`. The server can be its own
token issuer (`GET /token?service=&scope=` with basic auth against the htpasswd file): tokens are
HS256 JWTs signed with the key file's bytes, so issuer and registry share one secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

import bcrypt

TOKEN_TTL = 300


class Htpasswd:
    """`user:hash` lines; bcrypt hashes ($2y$/$2b$/$2a$), as `htpasswd -B` writes them."""

    def __init__(self, path: str) -> None:
        self.users: dict[str, bytes] = {}
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and ":" in line:
                    user, _, hashed = line.partition(":")
                    self.users[user] = hashed.encode()

    def verify(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        if hashed is None or not hashed.startswith((b"$2y$", b"$2b$", b"$2a$")):
            return False
        # bcrypt's $2y$ is $2b$ under another name (PHP's spelling, which htpasswd keeps).
        normalized = b"$2b$" + hashed[4:] if hashed.startswith(b"$2y$") else hashed
        try:
            return bcrypt.checkpw(password.encode(), normalized)
        except ValueError:
            return False


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_scope(scope: str) -> dict | None:
    """`repository:name:pull,push` → an access entry (names may hold ':' for ports)."""
    kind, _, rest = scope.partition(":")
    name, sep, actions = rest.rpartition(":")
    if not kind or not sep or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class Tokens:
    def __init__(self, key: bytes, realm: str, service: str) -> None:
        self.key = key
        self.realm = realm
        self.service = service

    def issue(self, subject: str, access: list[dict], ttl: int = TOKEN_TTL) -> str:
        now = int(time.time())
        claims = {
            "iss": "dockyard",
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl,
            "access": access,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def verify(self, token: str) -> dict | None:
        """The claims of a token we signed that is still valid for this service, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError):
            return None
        now = time.time()
        if not isinstance(claims, dict) or claims.get("aud") != self.service:
            return None
        if not now < claims.get("exp", 0) or claims.get("nbf", 0) > now + 60:
            return None
        return claims

    def challenge(self, scope: str | None, error: str | None = None) -> str:
        parts = [f'realm="{self.realm}"', f'service="{self.service}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)


def allows(claims: dict, kind: str, name: str, actions: list[str]) -> bool:
    granted: set[str] = set()
    for entry in claims.get("access") or []:
        if isinstance(entry, dict) and entry.get("type") == kind and entry.get("name") == name:
            granted.update(entry.get("actions") or [])
    return "*" in granted or all(a in granted for a in actions)
