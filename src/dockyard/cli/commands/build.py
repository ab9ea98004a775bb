"""build: a Dockerfile and its context to an image, through the Engine API's `POST /build`.

docker/cli's classic-builder path (cli/command/image/build.go, DOCKER_BUILDKIT=0): the context
is a directory, or `-` (a tar on stdin, or a Dockerfile on stdin when it is not a tar); `-f`
names another Dockerfile (relative to the current directory) or `-` for stdin. The context goes
out as a tar written while it is sent (see buildcontext.py); the answer is the builder's JSON
stream, printed as docker prints it when the output is not a terminal, and with some colour and
a closing summary when it is. A build that fails exits with the error's code (a failing RUN's
exit status, else 1), as docker's CLI does.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli import buildcontext
from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

from .common import validate_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _plain_component(part: str) -> bool:
    """[a-z0-9]+ joined by `.`, `_`, `__` or `-+`: a path component of the reference grammar."""
    if not part or part[0] not in _ALNUM or part[-1] not in _ALNUM:
        return False
    run = ""
    for ch in part:
        if ch in _ALNUM:
            run = ""
            continue
        if ch not in "._-":
            return False
        run += ch
        if not (run in (".", "_", "__") or set(run) == {"-"}):
            return False
    return True


def _simple_reference(value: str) -> bool:
    """True for a short `name[:tag]` with no domain that the grammar certainly accepts: then
    reference.py (and its `re`, ~16 ms of start-up) is not needed. Anything else goes there."""
    if len(value) > 200 or "@" in value:
        return False
    name, colon, tag = value.partition(":")
    if colon and not (
        tag and len(tag) <= 128 and tag[0] != "." and tag[0] != "-" and set(tag) <= _TAG_CHARS
    ):
        return False
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or parts[0] == "localhost"):
        return False
    if len(name) == 64 and set(name) <= set("0123456789abcdef"):
        return False
    return all(_plain_component(part) for part in parts)


def check_tag(value: str) -> str:
    """docker's validateTag: ParseNormalizedNamed, or the flag's error."""
    if not _simple_reference(value):
        from dockyard import reference

        try:
            reference.parse_normalized(value)
        except reference.InvalidReference as exc:
            raise ValueError(exc.message) from None
    return value


def check_label(value: str) -> str:
    """opts.ValidateLabel."""
    key = value.partition("=")[0].lstrip(" \t")
    if not key:
        raise ValueError(f"invalid label '{value}': empty name")
    if " " in key or "\t" in key:
        raise ValueError(f"label '{key}' contains whitespaces")
    return value


# -- preparing the context --------------------------------------------------------------------


def _missing_component(path: str) -> str:
    """The first prefix of an absolute path that does not exist (what Go's lstat names)."""
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if not os.path.lexists(prefix):
            return prefix
    return path


def _eval_symlinks(path: str, what: str) -> str:
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        missing = _missing_component(path) if isinstance(exc, FileNotFoundError) else path
        raise CLIError(
            f"unable to prepare context: unable to evaluate symlinks in {what} path: "
            f"lstat {missing}: {reason}"
        ) from None


def _local_context(directory: str, dockerfile: str) -> tuple[str, str]:
    """GetContextFromLocalDir: the real context directory and the Dockerfile relative to it."""
    root = _eval_symlinks(os.path.abspath(directory), "context")
    if not os.path.isdir(root):
        raise CLIError(f"unable to prepare context: context must be a directory: {root}")
    if dockerfile == "-":
        return root, "-"
    if dockerfile:
        path = os.path.abspath(dockerfile)
    else:
        path = os.path.join(root, buildcontext.DEFAULT_DOCKERFILE)
        lower = os.path.join(root, "dockerfile")
        if not os.path.lexists(path) and os.path.lexists(lower):
            path = lower
    path = _eval_symlinks(path, "Dockerfile")
    return root, os.path.relpath(path, root)


def _read_exactly(stream: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def prepare(source: str, dockerfile: str, stdin: Any) -> tuple[Iterable[bytes], str]:
    """The context tar (as chunks) and the `dockerfile` parameter, or docker's error."""
    if dockerfile == "-" and source == "-":
        raise CLIError("invalid argument: can't use stdin for both build context and dockerfile")
    if source == "-":
        head = _read_exactly(stdin, 2 * buildcontext.BLOCK)
        if buildcontext.is_archive(head):
            return buildcontext.prefixed(head, stdin), dockerfile
        if dockerfile:
            raise CLIError(
                "unable to prepare context: ambiguous Dockerfile source: "
                "both stdin and flag correspond to Dockerfiles"
            )
        data = head + stdin.read()
        return buildcontext.dockerfile_tar(data, _now()), buildcontext.DEFAULT_DOCKERFILE
    if not os.path.exists(source):
        if source.startswith(("http://", "https://", "git://", "git@", "github.com/")):
            raise CLIError(
                "unable to prepare context: building from a URL or git repository is not "
                "supported: clone or download it and build the directory"
            )
        raise CLIError(f'unable to prepare context: path "{source}" not found')
    root, rel = _local_context(source, dockerfile)
    from_stdin = rel == "-"
    outside = rel == ".." or rel.startswith("../")
    try:
        paths = buildcontext.context_paths(root, rel, dockerfile_from_stdin=from_stdin)
    except buildcontext.ContextError as exc:
        raise CLIError(str(exc)) from None
    if not (from_stdin or outside):
        return buildcontext.tar_directory(root, paths), rel
    if from_stdin:
        content = stdin.read()
    else:
        try:
            with open(dockerfile, "rb") as f:
                content = f.read()
        except OSError as exc:
            raise CLIError(
                f"unable to open Dockerfile: open {dockerfile}: {(exc.strerror or '').lower()}"
            ) from None
    name = buildcontext.random_dockerfile_name()
    chunks = buildcontext.tar_directory(
        root,
        paths,
        replace={".dockerignore": buildcontext.amend_dockerignore(name)},
        extra=[(name, content)],
        mtime=_now(),
    )
    return chunks, name


def _now() -> int:
    import time

    return int(time.time())


# -- showing the build ------------------------------------------------------------------------


def human_size(size: int) -> str:
    """go-units HumanSize (4 significant digits, decimal units), as the upload line shows it."""
    from dockyard.units import human_size_precision

    return human_size_precision(size, 4)


class Display:
    """docker's jsonmessage.Display for a build; on a terminal, with colour and a summary."""

    def __init__(self, ctx: Context, quiet: bool) -> None:
        self.ctx = ctx
        self.quiet = quiet
        self.tty = not quiet and ctx.out.isatty()
        self.buffer: list[str] = []  # quiet: what docker's buildBuff holds
        self.uploaded = ""  # quiet: its progBuff, the upload line
        self.image_id = ""
        self.steps = 0
        self.cached = 0
        self._last_progress = 0.0

    def sending(self, total: int, done: bool) -> None:
        """The upload line: docker prints it once at the end unless on a terminal."""
        line = f"Sending build context to Docker daemon  {human_size(total):>8}"
        if self.quiet:
            self.uploaded = line + "\n" if done else ""
            return
        out = self.ctx.out
        if self.tty:
            import time

            now = time.monotonic()
            if done or now - self._last_progress > 0.1:
                self._last_progress = now
                out.write(f"\r\x1b[2K{line}" + ("\n" if done else ""))
                out.flush()
        elif done:
            out.write(line + "\n")

    def message(self, message: dict[str, Any]) -> None:
        error = message.get("errorDetail") or {}
        if error or message.get("error"):
            text = error.get("message") or message.get("error") or ""
            if self.quiet:
                self.ctx.err.write(self.uploaded + "".join(self.buffer))
            raise CLIError(text, error.get("code") or 1)
        aux = message.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = aux["ID"]
        stream = message.get("stream")
        if stream is not None:
            self.write(stream)
        elif message.get("status"):
            progress = message.get("progress") or message.get("progressDetail")
            if progress and not self.tty:
                return  # docker shows progress bars only on a terminal
            ident = message.get("id")
            self.write((f"{ident}: " if ident else "") + message["status"] + "\n")

    def write(self, text: str) -> None:
        if self.quiet:
            self.buffer.append(text)
            return
        if text.startswith("Step "):
            self.steps += 1
        elif text.startswith(" ---> Using cache"):
            self.cached += 1
        out = self.ctx.out
        if self.tty:
            text = _styled(text)
        out.write(text)
        out.flush()

    def summary(self, elapsed: float) -> None:
        if not self.tty or not self.image_id:
            return
        short = self.image_id.split(":", 1)[-1][:12]
        cache = f", {self.cached} from cache" if self.cached else ""
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        self.ctx.out.write(
            f"\x1b[32m✔\x1b[0m \x1b[1mBuilt {short}\x1b[0m in {elapsed:.2f}s ({steps}{cache})\n"
        )


def _styled(text: str) -> str:
    """One stream message on a terminal: the step line bold, the builder's notes dim, the
    result green. The daemon may send a step line and its newline as two messages."""
    line = text.rstrip("\n")
    end = text[len(line) :]
    if text.startswith("Step "):
        head, sep, rest = line.partition(" : ")
        if sep:
            return f"\x1b[1;34m{head}{sep}\x1b[0;1m{rest}\x1b[0m{end}"
    elif text.startswith((" ---> ", "Removing intermediate container")):
        return f"\x1b[2m{line}\x1b[0m{end}"
    elif text.startswith(("Successfully built", "Successfully tagged")):
        return f"\x1b[32m{line}\x1b[0m{end}"
    return text


# -- the command ------------------------------------------------------------------------------


def _query(opts: dict[str, Any], dockerfile: str) -> list[tuple[str, Any]]:
    """The query docker's client.ImageBuild sends for these options."""
    from dockyard.cli import wirejson

    query: list[tuple[str, Any]] = [("t", tag) for tag in opts["tag"]]
    if opts["quiet"]:
        query.append(("q", "1"))
    if opts["no-cache"]:
        query.append(("nocache", "1"))
    query.append(("rm", "1" if opts["rm"] else "0"))
    if opts["force-rm"]:
        query.append(("forcerm", "1"))
    if opts["pull"]:
        query.append(("pull", "1"))
    if dockerfile:
        query.append(("dockerfile", dockerfile))
    if opts["target"]:
        query.append(("target", opts["target"]))
    args: dict[str, str | None] = {}
    for item in opts["build-arg"]:
        key, eq, value = item.partition("=")
        args[key] = value if eq else None
    if args:
        query.append(("buildargs", wirejson.dumps(args)))
    labels = {k: v for k, _, v in (label.partition("=") for label in opts["label"])}
    if labels:
        query.append(("labels", wirejson.dumps(labels)))
    if opts["platform"]:
        query.append(("platform", opts["platform"].lower()))
    query.append(("networkmode", opts["network"]))
    return query


def run_build(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import time

    started = time.monotonic()
    if opts["file"] == "-" and args[0] == "-":
        raise CLIError("invalid argument: can't use stdin for both build context and dockerfile")
    iidfile: str = opts["iidfile"]
    if iidfile:
        try:
            os.remove(iidfile)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CLIError(
                f"removing image ID file: remove {iidfile}: {(exc.strerror or '').lower()}"
            ) from None
    chunks, dockerfile = prepare(args[0], opts["file"], sys.stdin.buffer)
    display = Display(ctx, opts["quiet"])
    body = buildcontext.StreamReader(chunks, display.sending)
    try:
        response = ctx.client.request(
            "POST",
            "/build",
            _query(opts, dockerfile),
            body=body,  # type: ignore[arg-type]
            headers={"Content-Type": "application/x-tar"},
        )
    except buildcontext.ContextError as exc:
        raise CLIError(str(exc)) from None
    except Exception:
        if display.quiet:  # docker shows what the upload printed before the daemon's error
            ctx.err.write(display.uploaded)
        raise
    from dockyard.cli import wirejson

    for line in response.lines():
        try:
            message = wirejson.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            display.message(message)
    image_id = display.image_id
    if opts["quiet"]:
        image_id = "".join(display.buffer)
        ctx.out.write(image_id)
    else:
        display.summary(time.monotonic() - started)
    if iidfile:
        if not image_id:
            raise CLIError(f"server did not provide an image ID. Cannot write {iidfile}")
        with open(iidfile, "w") as f:
            f.write(image_id)
    return 0


BUILD = Command(
    run_build,
    "[OPTIONS] PATH | URL | -",
    "Build an image from a Dockerfile",
    [
        Flag(
            "build-arg",
            kind="list",
            help="Set build-time variables",
            convert=validate_env,
        ),
        Flag("file", "f", "string", help='Name of the Dockerfile (Default is "PATH/Dockerfile")'),
        Flag("force-rm", kind="bool", default=False, help="Always remove intermediate containers"),
        Flag("iidfile", kind="string", help="Write the image ID to the file"),
        Flag("label", kind="list", help="Set metadata for an image", convert=check_label),
        Flag(
            "network",
            kind="string",
            default="default",
            help="Set the networking mode for the RUN instructions during build",
        ),
        Flag("no-cache", kind="bool", help="Do not use cache when building the image"),
        Flag(
            "platform",
            kind="string",
            default=os.environ.get("DOCKER_DEFAULT_PLATFORM", ""),
            help="Set platform if server is multi-platform capable",
        ),
        Flag("pull", kind="bool", help="Always attempt to pull a newer version of the image"),
        Flag(
            "quiet",
            "q",
            "bool",
            help="Suppress the build output and print image ID on success",
        ),
        Flag(
            "rm",
            kind="bool",
            default=True,
            help="Remove intermediate containers after a successful build",
        ),
        Flag(
            "tag",
            "t",
            "list",
            help='Name and optionally a tag in the "name:tag" format',
            convert=check_tag,
        ),
        Flag("target", kind="string", help="Set the target build stage to build."),
    ],
    min_args=1,
    max_args=1,
)
