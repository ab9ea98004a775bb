"""version, info and system df."""

from __future__ import annotations

import platform

from dockyard import __version__
from dockyard.cli.client import APIError, ConnectError
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import FORMAT_HELP, write_items

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

API_VERSION = "1.47"


def _template(ctx: Context, fmt: str, data: Any) -> None:
    from dockyard.cli.gotemplate import TemplateError, execute

    try:
        ctx.out.write(execute(fmt, data) + "\n")
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}") from None


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def run_version(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    client = {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": "linux",
        "Arch": _arch(),
    }
    server: dict[str, Any] | None = None
    failure = ""
    try:
        server = ctx.client.get_json("/version")
    except (ConnectError, APIError) as exc:
        failure = str(exc)
    if opts["format"]:
        _template(ctx, opts["format"], {"Client": client, "Server": server})
    else:
        lines = [
            "Client:",
            f" Version:           {client['Version']}",
            f" API version:       {client['ApiVersion']}",
            f" Python version:    {client['PythonVersion']}",
            f" OS/Arch:           {client['Os']}/{client['Arch']}",
        ]
        if server is not None:
            lines += [
                "",
                f"Server: {server.get('Platform', {}).get('Name', '')}",
                " Engine:",
                f"  Version:          {server.get('Version', '')}",
                f"  API version:      {server.get('ApiVersion', '')} (minimum version {server.get('MinAPIVersion', '')})",
                f"  Runtime version:  {server.get('GoVersion', '')}",
                f"  OS/Arch:          {server.get('Os', '')}/{server.get('Arch', '')}",
                f"  Kernel version:   {server.get('KernelVersion', '')}",
            ]
        ctx.out.write("\n".join(lines) + "\n")
    if failure:
        raise CLIError(f"Cannot connect to the Dockyard daemon at {ctx.client.host}: {failure}")
    return 0


VERSION = Command(
    run_version,
    "[OPTIONS]",
    "Show the Dockyard version information",
    [Flag("format", "f", "string", help="Format output using a custom template")],
    max_args=0,
)


def run_info(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    info = ctx.client.get_json("/info")
    if opts["format"]:
        _template(ctx, opts["format"], info)
        return 0
    from dockyard.units import bytes_size

    lines = [
        "Client:",
        f" Version:    {__version__}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(info.get('MemTotal', 0))}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Dockyard Root Dir: {info.get('DockerRootDir', '')}",
        f" Debug Mode: {str(info.get('Debug', False)).lower()}",
        f" Experimental: {str(info.get('ExperimentalBuild', False)).lower()}",
        f" Live Restore Enabled: {str(info.get('LiveRestoreEnabled', False)).lower()}",
    ]
    ctx.out.write("\n".join(lines) + "\n")
    for warning in info.get("Warnings") or []:
        ctx.err.write(warning + "\n")
    return 0


INFO = Command(
    run_info,
    "[OPTIONS]",
    "Display system-wide information",
    [Flag("format", "f", "string", help=FORMAT_HELP)],
    max_args=0,
)

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
DF_IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"


def _reclaimable(total: int, used: int) -> str:
    from dockyard.units import human_size_precision

    reclaimable = total - used
    if total > 0:
        return f"{human_size_precision(reclaimable, 4)} ({reclaimable * 100 // total}%)"
    return human_size_precision(reclaimable, 4)


def run_df(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.units import human_size_precision

    usage = ctx.client.get_json("/system/df")
    images = usage.get("Images") or []
    containers = usage.get("Containers") or []
    volumes = usage.get("Volumes") or []
    layers = usage.get("LayersSize", 0)
    used = sum(
        i["Size"] - i["SharedSize"]
        for i in images
        if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1
    )
    container_size = sum(c.get("SizeRw", 0) for c in containers)
    running_size = sum(c.get("SizeRw", 0) for c in containers if c.get("State") == "running")
    rows = [
        {
            "Type": "Images",
            "TotalCount": str(len(images)),
            "Active": str(sum(1 for i in images if i.get("Containers"))),
            "Size": human_size_precision(layers, 4),
            "Reclaimable": _reclaimable(layers, used),
        },
        {
            "Type": "Containers",
            "TotalCount": str(len(containers)),
            "Active": str(sum(1 for c in containers if c.get("State") == "running")),
            "Size": human_size_precision(container_size, 4),
            "Reclaimable": _reclaimable(container_size, running_size) if container_size else "0B",
        },
        {
            "Type": "Local Volumes",
            "TotalCount": str(len(volumes)),
            "Active": "0",
            "Size": "0B",
            "Reclaimable": "0B",
        },
        {
            "Type": "Build Cache",
            "TotalCount": "0",
            "Active": "0",
            "Size": "0B",
            "Reclaimable": "0B",
        },
    ]
    if opts["verbose"]:
        from .images import IMAGE_HEADERS, image_rows

        ctx.print("Images space usage:\n")
        image_items = [r for i in images for r in image_rows(i, trunc=True, digests=False)]
        write_items(ctx, DF_IMAGE_TABLE, image_items, IMAGE_HEADERS, DF_IMAGE_TABLE)
        ctx.print("\nContainers space usage:\n")
        ctx.print(
            "CONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE      CREATED   STATUS    NAMES"
        )
        ctx.print("\nLocal Volumes space usage:\n")
        ctx.print("VOLUME NAME   LINKS     SIZE")
        ctx.print("\nBuild cache usage: 0B\n")
        ctx.print("CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED")
        return 0
    write_items(ctx, opts["format"], rows, DF_HEADERS, DF_TABLE)
    return 0


DF = Command(
    run_df,
    "[OPTIONS]",
    "Show docker disk usage",
    [
        Flag("format", kind="string", help=FORMAT_HELP),
        Flag("verbose", "v", help="Show detailed information on space usage"),
    ],
    max_args=0,
)
