"""Image routes: list, import, inspect, history, tag, remove, save, load, prune."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.engine.filters import Filters
from dockyard.errors import DockyardError, InvalidParameter

from .server import Router, engine_of, json_response, prepare_stream, version_at_least
from .streams import body_reader, json_error, json_line, response_writer, run_sync

# Fields docker's inspect answer carried before API 1.50 even when empty.
_LEGACY_CONFIG = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def bool_value(request: web.Request, name: str, default: bool = False) -> bool:
    """moby's httputils.BoolValue: anything but "", 0, no, false, none is true."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in ("", "0", "no", "false", "none")


async def list_images(request: web.Request) -> web.Response:
    engine = engine_of(request)
    filters = Filters.from_json(request.query.get("filters"))
    if not version_at_least(request, "1.25") and request.query.get("filter"):
        filters.fields.setdefault("reference", set()).add(request.query["filter"])
    images = await run_sync(
        lambda: engine.images.list(
            all_images=bool_value(request, "all"),
            filters=filters,
            shared_size=bool_value(request, "shared-size"),
        )
    )
    if not version_at_least(request, "1.43"):
        for image in images:
            if not image["RepoTags"] and not image["RepoDigests"]:
                image["RepoTags"] = ["<none>:<none>"]
                image["RepoDigests"] = ["<none>@<none>"]
    if not version_at_least(request, "1.44"):
        for image in images:
            image["VirtualSize"] = image["Size"]
    return json_response(images)


async def create_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    query = request.query
    if query.get("fromImage"):
        from .routes_distribution import pull_image

        return await pull_image(request)
    source = query.get("fromSrc", "")
    if source != "-":
        raise InvalidParameter("importing from a URL is not supported: send the tar as the body")
    message = query.get("message") or f"Imported from {source}"
    reader = body_reader(request)
    image_id = await run_sync(
        lambda: engine.images.import_image(
            reader,
            repo=query.get("repo", ""),
            tag=query.get("tag", ""),
            message=message,
            changes=query.getall("changes", []),
            platform=query.get("platform", ""),
        )
    )
    response = await prepare_stream(request, "application/json")
    await response.write(json_line({"status": image_id}))
    await response.write_eof()
    return response


async def inspect_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    data: dict[str, Any] = await run_sync(engine.images.inspect, request.match_info["name"])
    if not version_at_least(request, "1.50"):
        data["Config"] = {**_LEGACY_CONFIG, **data["Config"]}
    if not version_at_least(request, "1.45"):
        data["Container"] = ""
        data["ContainerConfig"] = dict(_LEGACY_CONFIG)
    if not version_at_least(request, "1.44"):
        data["VirtualSize"] = data["Size"]
    if data["GraphDriver"]["Data"] is None:
        data["GraphDriver"]["Data"] = {}
    return json_response(data)


async def image_history(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return json_response(await run_sync(engine.images.history, request.match_info["name"]))


async def tag_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await run_sync(
        engine.images.tag,
        request.match_info["name"],
        request.query.get("repo", ""),
        request.query.get("tag", ""),
    )
    return web.Response(status=201)


async def delete_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    name = request.match_info["name"]
    if not name.strip():
        raise InvalidParameter("image name cannot be blank")
    records = await run_sync(
        lambda: engine.images.delete(
            name, force=bool_value(request, "force"), prune=not bool_value(request, "noprune")
        )
    )
    return json_response(records)


async def save_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    names = (
        [request.match_info["name"]]
        if "name" in request.match_info
        else request.query.getall("names", [])
    )
    plan = await run_sync(engine.archives.plan_save, names)
    response = await prepare_stream(request, "application/x-tar")
    out = response_writer(response)
    try:
        await run_sync(engine.archives.write_save, plan, out)
        await run_sync(out.flush)
    except DockyardError as exc:
        await response.write(json_error(exc.message))
    except ConnectionError:  # the client went away (`save | head`): nobody to tell
        return response
    await response.write_eof()
    return response


async def load_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    reader = body_reader(request)
    response = await prepare_stream(request, "application/json")
    try:
        messages = await run_sync(engine.archives.load, reader)
        for message in messages:
            await response.write(json_line({"stream": message + "\n"}))
    except DockyardError as exc:
        await response.write(json_error(exc.message))
    await response.write_eof()
    return response


async def prune_images(request: web.Request) -> web.Response:
    engine = engine_of(request)
    filters = Filters.from_json(request.query.get("filters"))
    return json_response(await run_sync(engine.images.prune, filters))


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/create", create_image)
    router.add("GET", "/images/get", save_images)
    router.add("POST", "/images/load", load_images)
    router.add("POST", "/images/prune", prune_images)
    router.add("GET", "/images/{name:.+}/json", inspect_image)
    router.add("GET", "/images/{name:.+}/history", image_history)
    router.add("GET", "/images/{name:.+}/get", save_images)
    router.add("POST", "/images/{name:.+}/tag", tag_image)
    router.add("DELETE", "/images/{name:.+}", delete_image)
