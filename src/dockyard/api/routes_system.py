"""System routes: /_ping, /version, /info, /system/df."""

from __future__ import annotations

import os
import platform
import time

from aiohttp import web

from dockyard import __version__
from dockyard.engine import container_prune, volume_service

from .server import API_VERSION, MIN_API_VERSION, Router, _set_headers, engine_of, json_response
from .streams import run_sync

_PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Builder-Version": "1",
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    response = web.Response(body=body, content_type="text/plain", charset="utf-8")
    _set_headers(response)
    response.headers.update(_PING_HEADERS)
    if request.method == "HEAD":
        response.headers["Content-Length"] = "0"
    return response


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def version(request: web.Request) -> web.Response:
    kernel = platform.release()
    return json_response(
        {
            "Platform": {"Name": "Dockyard"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": __version__,
                    "Details": {
                        "ApiVersion": API_VERSION,
                        "Arch": _arch(),
                        "BuildTime": "",
                        "Experimental": "false",
                        "GitCommit": "",
                        "GoVersion": "python" + platform.python_version(),
                        "KernelVersion": kernel,
                        "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux",
                    },
                }
            ],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "python" + platform.python_version(),
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        }
    )


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def info(request: web.Request) -> web.Response:
    engine = engine_of(request)
    images = await run_sync(engine.image_store.all)
    return json_response(
        {
            "ID": engine.instance_id,
            **(await run_sync(container_prune.counts, engine)),
            "Images": len(images),
            "Driver": engine.snapshots.driver,
            "DriverStatus": engine.snapshots.status(),
            "Plugins": {"Volume": ["local"], "Network": [], "Authorization": None, "Log": []},
            "MemoryLimit": True,
            "SwapLimit": False,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": True,
            "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")),
            "OomKillDisable": False,
            "NGoroutines": 0,
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
            "NEventsListener": 0,
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": None,
                "AllowNondistributableArtifactsHostnames": None,
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": None,
            },
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "DockerRootDir": engine.data_root,
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""),
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            **engine.shims.runtimes.info(),
            # The docker CLI prints swarm node details unless the state is "inactive".
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": [],
            "Warnings": None,
        }
    )


async def system_df(request: web.Request) -> web.Response:
    engine = engine_of(request)
    usage = await run_sync(engine.images.disk_usage)
    containers = await run_sync(container_prune.disk_usage, engine, usage["Images"])
    volumes = await run_sync(volume_service.disk_usage, engine)
    return json_response(
        {
            "LayersSize": usage["LayersSize"],
            "Images": usage["Images"],
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }
    )


def register(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/system/df", system_df)
