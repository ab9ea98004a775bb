"""docker's client configuration file: `$DOCKER_CONFIG/config.json` (default ~/.docker), whose
`auths` map holds `{"auth": base64("user:password")}` per registry. Other keys (credsStore,
proxies, plugins…) are kept as they are when the file is rewritten.

Stdlib only: the CLI imports this (its start-up time is measured).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from typing import Any

HUB_KEY = "https://index.docker.io/v1/"


class CredentialsError(Exception):
    pass


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def config_path() -> str:
    return os.path.join(config_dir(), "config.json")


def _key(server: str) -> str:
    text = server.strip()
    lowered = text.lower().rstrip("/")
    if lowered in (
        "",
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1",
        "index.docker.io/v1",
    ):
        return HUB_KEY
    for prefix in ("https://", "http://"):
        if lowered.startswith(prefix):
            text = text[len(prefix) :]
    return text.split("/", 1)[0]


def load(path: str | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CredentialsError(f"loading config file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"loading config file {path}: not a JSON object")
    return doc


def save(doc: dict[str, Any], path: str | None = None) -> None:
    """Write atomically with mode 0600 (it holds passwords), as docker does."""
    path = path or config_path()
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="config.json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent="\t")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def get(server: str, path: str | None = None) -> tuple[str, str] | None:
    """(username, password) stored for a registry, or None. An entry may carry `auth`
    (base64 user:password) or `username`/`password` fields."""
    auths = load(path).get("auths") or {}
    if not isinstance(auths, dict):
        return None
    key = _key(server)
    entry = auths.get(key)
    if entry is None:  # keys written with a scheme ("http://localhost:5000")
        for name, value in auths.items():
            if isinstance(name, str) and _key(name) == key:
                entry = value
                break
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            text = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, ValueError):
            raise CredentialsError(f"invalid auth configuration file for {key}") from None
        user, sep, password = text.partition(":")
        if not sep:
            raise CredentialsError(f"invalid auth configuration file for {key}")
        return user, password.strip("\x00")
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str) and user:
        return user, password
    return None


def store(server: str, username: str, password: str, path: str | None = None) -> str:
    """Record credentials for a registry; returns the config file's path."""
    path = path or config_path()
    doc = load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    auths[_key(server)] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    doc["auths"] = auths
    save(doc, path)
    return path


def erase(server: str, path: str | None = None) -> bool:
    """Forget a registry's credentials; False when there were none."""
    path = path or config_path()
    doc = load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    key = _key(server)
    names = [name for name in auths if isinstance(name, str) and _key(name) == key]
    if not names:
        return False
    for name in names:
        del auths[name]
    save(doc, path)
    return True
