"""cp: files between a container and the local filesystem.

As the docker CLI does it (cli/command/container/cp.go, go-archive's copy.go): the container
side is stat'ed first (`HEAD …/archive`) to decide where the archive goes and what its top
entry is called; a local source is archived with its top entry already renamed, and what the
daemon sends is extracted with its top entry renamed into the destination directory as its
root (image/copy_extract.py: nothing lands outside it, whatever the tar's names and symlinks
say; files keep the local user as owner).
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.command import CLIError, Command, Context
from dockyard.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_IRREGULAR = 1 << 19


# -- cp: paths ---------------------------------------------------------------------------------
def split_cp_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: CONTAINER:PATH, or a local path (absolute, or starting with ".")."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def _os_error(op: str, e: OSError) -> CLIError:
    return CLIError(f"{op} {e.filename}: {(e.strerror or str(e)).lower()}")


def _resolve_local(path: str) -> str:
    from dockyard.image.copy_archive import go_clean, preserve_trailing

    return preserve_trailing(go_clean(os.path.abspath(path)), path)


def _eval_symlinks(path: str) -> str:
    """filepath.EvalSymlinks: every link followed, the path must exist."""
    try:
        os.lstat(path)
        return os.path.realpath(path, strict=True)
    except OSError as e:
        raise _os_error("lstat", e) from None


class CopyInfo:
    __slots__ = ("exists", "is_dir", "path", "rebase_name")

    def __init__(self, path: str, exists: bool = False, is_dir: bool = False, rebase: str = ""):
        self.path, self.exists, self.is_dir, self.rebase_name = path, exists, is_dir, rebase


def get_rebase_name(path: str, resolved: str) -> tuple[str, str]:
    from dockyard.image.copy_archive import go_base, specifies_current_dir

    if specifies_current_dir(path) and not specifies_current_dir(resolved):
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, go_base(path) if go_base(path) != go_base(resolved) else ""


def copy_info_source_path(path: str, follow_link: bool) -> CopyInfo:
    from dockyard.image.copy_archive import go_base

    if follow_link:
        resolved, rebase = get_rebase_name(path, _eval_symlinks(path))
    else:
        directory, base = path[: path.rfind("/") + 1], path[path.rfind("/") + 1 :]
        resolved = _eval_symlinks(directory or ".").rstrip("/") + "/" + base
        rebase = go_base(path) if path.endswith("/") and go_base(path) != go_base(resolved) else ""
    try:
        st = os.lstat(resolved)
    except OSError as e:
        raise _os_error("lstat", e) from None
    return CopyInfo(resolved, True, (st.st_mode & 0o170000) == 0o040000, rebase)


def copy_info_destination_path(path: str) -> CopyInfo:
    """go-archive's CopyInfoDestinationPath: symlinks at the end followed (up to 10)."""
    from dockyard.image.copy_archive import split_path_dir_entry

    original = path
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _os_error("lstat", e) from None
    hops = 0
    while st is not None and (st.st_mode & 0o170000) == 0o120000:
        if hops > 10:
            raise CLIError(f"too many symlinks in {original}")
        hops += 1
        target = os.readlink(path)
        if not target.startswith("/"):
            target = os.path.join(split_path_dir_entry(path)[0], target)
        path = target
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is None:
        parent = split_path_dir_entry(path)[0]
        try:
            parent_st = os.stat(parent)
        except OSError as e:
            raise _os_error("stat", e) from None
        if (parent_st.st_mode & 0o170000) != 0o040000:
            raise CLIError("not a directory")
        return CopyInfo(path)
    return CopyInfo(path, True, (st.st_mode & 0o170000) == 0o040000)


def prepare_archive_copy(src: CopyInfo, dst: CopyInfo) -> tuple[str, str | None]:
    """go-archive's PrepareArchiveCopy: (directory to extract into, new name of the archive's
    top entry or None to keep it)."""
    from dockyard.image.copy_archive import asserts_directory, split_path_dir_entry

    dst_dir, dst_base = split_path_dir_entry(dst.path)
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise CLIError("cannot copy directory")
    if not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise CLIError("no such directory")
    return dst_dir, dst_base


def validate_output_path(path: str) -> None:
    """docker's ValidateOutputPath."""
    from dockyard.image.copy_archive import go_clean, go_dir

    directory = go_dir(go_clean(path))
    if directory not in ("", ".") and not os.path.exists(directory):
        raise CLIError(f'invalid output path: directory "{directory}" does not exist')
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _os_error("stat", e) from None
    kind = st.st_mode & 0o170000
    if kind in (0o040000, 0o100000):
        return
    what = "got a device" if kind in (0o020000, 0o060000) else "got an irregular file"
    raise CLIError(f'invalid output path: "{path}" must be a directory or a regular file: {what}')


def _stat(ctx: Context, container: str, path: str) -> dict[str, Any] | None:
    import base64
    import json

    response = ctx.client.request(
        "HEAD", f"/containers/{container}/archive", {"path": path}, check=False
    )
    response.read()
    if response.status != 200:
        return None
    header = response.headers.get("x-docker-container-path-stat", "")
    try:
        return json.loads(base64.b64decode(header))
    except ValueError:
        return None


def _human(n: int) -> str:
    from dockyard.units import human_size_precision

    return human_size_precision(n, 3)


class _Counting:
    """A reader that counts what passes through it."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        while not self._pending:
            chunk = next(self._chunks, b"")
            if not chunk:
                return b""
            self._pending = chunk
        if n < 0 or n >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:n], self._pending[n:]
        self.total += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


# -- cp: the two directions --------------------------------------------------------------------
def _copy_from(ctx: Context, container: str, src: str, dst: str, opts: dict[str, Any]) -> int:
    import base64
    import json

    from dockyard.image.copy_archive import go_clean, split_path_dir_entry
    from dockyard.image.copy_extract import extract_tar, name_rebaser

    if dst != "-":
        dst = _resolve_local(dst)
    validate_output_path(dst)
    rebase_name = ""
    if opts["follow-link"]:
        found = _stat(ctx, container, src)
        if found is not None and found["mode"] & MODE_SYMLINK:
            target = found["linkTarget"]
            if not target.startswith("/"):
                target = go_clean(split_path_dir_entry(src)[0] + "/" + target)
            src, rebase_name = get_rebase_name(src, target)
    response = ctx.client.request("GET", f"/containers/{container}/archive", {"path": src})
    if dst == "-":
        out = sys.stdout.buffer
        for chunk in response.chunks():
            out.write(chunk)
        out.flush()
        return 0
    try:
        path_stat = json.loads(base64.b64decode(response.headers["x-docker-container-path-stat"]))
    except (KeyError, ValueError) as e:
        raise CLIError(f"unable to get resource stat from response: {e}") from None
    src_info = CopyInfo(src, True, bool(path_stat["mode"] & MODE_DIR), rebase_name)
    src_base = split_path_dir_entry(src)[1]
    renames = []
    if rebase_name:
        renames.append(name_rebaser(src_base, rebase_name))
    dst_info = copy_info_destination_path(dst)
    dst_dir, new_base = prepare_archive_copy(src_info, dst_info)
    if new_base is not None:
        renames.append(name_rebaser(rebase_name or src_base, new_base))

    def rebase(name: str) -> str:
        for rename in renames:
            name = rename(name)
        return name

    stream = _Counting(response.chunks())
    try:
        dest_fd = os.open(dst_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise _os_error("open", e) from None
    try:
        extract_tar(
            stream,  # type: ignore[arg-type]
            dest_fd,
            dest_name=dst_dir,
            no_overwrite_dir_non_dir=True,
            no_lchown=True,
            rebase=rebase if renames else None,
        )
    except OSError as e:
        raise _os_error("open", e) from None
    except Exception as e:  # a DockyardError: the tar did not fit the destination
        raise CLIError(getattr(e, "message", str(e))) from None
    finally:
        os.close(dest_fd)
        response.close()
    if not _quiet(opts):
        ctx.err.write(f"Successfully copied {_human(stream.total)} to {dst}\n")
    return 0


def _copy_to(ctx: Context, container: str, src: str, dst: str, opts: dict[str, Any]) -> int:
    import threading

    from dockyard.image.copy_archive import go_clean, local_source, split_path_dir_entry, write_tar

    if src != "-":
        src = _resolve_local(src)
    dst_info = CopyInfo(dst)
    found = _stat(ctx, container, dst)
    if found is not None and found["mode"] & MODE_SYMLINK:
        target = found["linkTarget"]
        if not target.startswith("/"):
            target = go_clean(split_path_dir_entry(dst)[0] + "/" + target)
        dst_info.path = target
        found = _stat(ctx, container, target)
    if found is not None:
        mode = found["mode"]
        what = "got a device" if mode & MODE_DEVICE else "got an irregular file"
        if mode & (MODE_DEVICE | MODE_IRREGULAR):
            raise CLIError(
                f'destination "{container}:{dst}" must be a directory or a regular file: {what}'
            )
        dst_info.exists, dst_info.is_dir = True, bool(mode & MODE_DIR)
    query: dict[str, Any] = {"noOverwriteDirNonDir": "true"}
    if opts["archive"]:
        query["copyUIDGID"] = "true"
    headers = {"Content-Type": "application/x-tar"}
    if src == "-":
        if not dst_info.is_dir:
            raise CLIError(f'destination "{container}:{dst}" must be a directory')
        query["path"] = dst_info.path
        ctx.client.request(
            "PUT", f"/containers/{container}/archive", query, body=sys.stdin.buffer, headers=headers
        ).read()
        return 0
    src_info = copy_info_source_path(src, opts["follow-link"])
    dst_dir, new_base = prepare_archive_copy(src_info, dst_info)
    try:
        source = local_source(src_info.path, new_base or src_info.rebase_name)
    except OSError as e:
        raise _os_error("lstat", e) from None
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_fd, "wb", buffering=1 << 20) as out:
                write_tar(source, out)
        except BrokenPipeError:
            pass  # the daemon answered (an error) before taking it all
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    query["path"] = dst_dir
    with open(read_fd, "rb", buffering=0) as reader:
        counted = _CountingFile(reader)
        try:
            ctx.client.request(
                "PUT", f"/containers/{container}/archive", query, body=counted, headers=headers
            ).read()
        finally:
            reader.close()
            thread.join()
    if failure:
        raise CLIError(str(failure[0]))
    if not _quiet(opts):
        ctx.err.write(
            f"Successfully copied {_human(counted.total)} to {container}:{dst_info.path}\n"
        )
    return 0


class _CountingFile:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.total += len(data)
        return data

    def fileno(self) -> int:
        raise OSError("a pipe")  # the client sends it chunked


def _quiet(opts: dict[str, Any]) -> bool:
    return bool(opts["quiet"]) or not sys.stdout.isatty()


def run_cp(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    source, destination = args
    if not source:
        raise CLIError("source can not be empty")
    if not destination:
        raise CLIError("destination can not be empty")
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(destination)
    if src_container and dst_container:
        raise CLIError("copying between containers is not supported")
    if src_container:
        return _copy_from(ctx, src_container, src_path, dst_path, opts)
    if dst_container:
        return _copy_to(ctx, dst_container, src_path, dst_path, opts)
    raise CLIError("must specify at least one container source")


CP = Command(
    run_cp,
    "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    "Copy files/folders between a container and the local filesystem\n\n"
    "Use '-' as the source to read a tar archive from stdin\n"
    "and extract it to a directory destination in a container.\n"
    "Use '-' as the destination to stream a tar archive of a\n"
    "container source to stdout.",
    [
        Flag("archive", "a", help="Archive mode (copy all uid/gid information)"),
        Flag("follow-link", "L", help="Always follow symbol link in SRC_PATH"),
        Flag(
            "quiet",
            "q",
            help="Suppress progress output during copy. Progress output is automatically "
            "suppressed if no terminal is attached",
        ),
    ],
    min_args=2,
    max_args=2,
)
