"""Networks, as far as Dockyard has them: `host` (the host's stack) and `none` (a private
namespace with only `lo`; every container not on `host` gets one). User-defined networks
and the bridge come with the networking issue; until then there is nothing to prune.
`docker network ls|inspect` and `docker system prune` work against these routes."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from dockyard.errors import NotFound

from .server import Router, json_response

_DRIVERS = {"host": "host", "none": "null"}


def _network(name: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Id": hashlib.sha256(f"dockyard-network-{name}".encode()).hexdigest(),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": _DRIVERS[name],
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }


def _find(ref: str) -> dict[str, Any]:
    for name in _DRIVERS:
        network = _network(name)
        if ref == name or (len(ref) >= 1 and network["Id"].startswith(ref)):
            return network
    raise NotFound(f"network {ref} not found")


async def list_networks(request: web.Request) -> web.Response:
    return json_response([_network(name) for name in _DRIVERS])


async def inspect_network(request: web.Request) -> web.Response:
    return json_response(_find(request.match_info["id"]))


async def prune_networks(request: web.Request) -> web.Response:
    return json_response({"NetworksDeleted": None})


def register(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("POST", "/networks/prune", prune_networks)
    router.add("GET", "/networks/{id}", inspect_network)
