"""Container use cases: the lifecycle (create, start, stop, kill, restart, pause, wait,
remove, rename), attaching, exits and restart policies, and re-adoption after a daemon restart.

The state machine is docker's: created → running ⇄ paused, running → exited (→ restarting →
running when a restart policy says so), any stopped state → removed. A running container is
supervised by its shim (runtime/shim.py); the daemon learns of its exit through the shim's
`wait` connection (exits.py) or, after a restart of its own, from the exit file the shim left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound, NotModified
from dockyard.image.model import parse_rfc3339, rfc3339_nano
from dockyard.runtime import cgroups
from dockyard.runtime import spec as specs
from dockyard.runtime.options import RunOptions, parse_signal
from dockyard.snapshot.snapshotter import Snapshotter

from . import container_volumes
from .bundles import write_bundle, write_etc_files
from .container_config import host_config, log_config, log_limits, run_options, validate_name
from .container_store import ZERO_TIME, Container, ContainerStore, new_state
from .exits import ExitWatcher
from .images import ImageService
from .names import generate_name, new_id
from .runtimes import DEFAULT_RUNTIME, ShimHandle
from .shims import ShimError, ShimManager, read_frame
from .volumes import VolumeStore

log = logging.getLogger("dockyard.containers")
DEFAULT_STOP_TIMEOUT = 10
MANUALLY_STOPPED = "HasBeenManuallyStopped"  # kept in the document, not shown by inspect


def now() -> str:
    return rfc3339_nano(time.time_ns())


class ContainerService:
    def __init__(
        self,
        store: ContainerStore,
        images: ImageService,
        snapshots: Snapshotter,
        shims: ShimManager,
        data_root: str,
    ) -> None:
        self.store = store
        self.images = images
        self.snapshots = snapshots
        self.shims = shims
        self.root = os.path.join(data_root, "containers")
        os.makedirs(self.root, exist_ok=True)
        self.volumes = VolumeStore(data_root)
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._waiters: dict[str, list[tuple[str, Future[dict[str, Any]]]]] = {}
        self._attachers: dict[str, list[tuple[dict[str, Any], Future[Any]]]] = {}
        self._stopping: set[str] = set()
        # moby's HasBeenManuallyRestarted: a --rm container that `restart` stops is kept
        self._restarting: set[str] = set()
        self._shutting_down = False
        self.watcher = ExitWatcher(shims, self._on_exit)

    # -- helpers -------------------------------------------------------------------------------
    def lock(self, container_id: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(container_id, threading.RLock())

    def directory(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def rootfs(self, container_id: str) -> str:
        return os.path.join(self.directory(container_id), "rootfs")

    def find(self, ref: str) -> Container:
        return self.store.find(ref)

    # -- create --------------------------------------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        opts = run_options(body)
        if not opts.image:
            raise InvalidParameter("config cannot be empty in order to create a container")
        host = host_config(body)
        host["Runtime"] = self.shims.runtimes.resolve(host.get("Runtime"))
        log_limits(host["LogConfig"])  # refuse bad --log-opt values now, not at start
        image = self.images.resolve(opts.image)
        if name:
            name = validate_name(name)
            if self.store.name_taken(name):
                raise self.store.name_conflict(name)
        else:
            name = generate_name(self.store.name_taken)
        container_id = new_id()
        image_config = self.images.config(image.id).get("config") or {}
        config = specs.merge_config(image_config, opts, container_id=container_id)
        config["Image"] = opts.image
        if body.get("Volumes"):  # the docker CLI sends `-v /dst` here, not in Binds
            config["Volumes"] = {**(config.get("Volumes") or {}), **body["Volumes"]}
        config["AttachStdin"] = bool(body.get("AttachStdin"))
        config["AttachStdout"] = bool(body.get("AttachStdout"))
        config["AttachStderr"] = bool(body.get("AttachStderr"))
        config["StdinOnce"] = bool(body.get("StdinOnce"))
        if body.get("StopTimeout") is not None:
            config["StopTimeout"] = int(body["StopTimeout"])
        args = specs.command_line(config)
        points = container_volumes.plan(self.volumes, opts, config)
        directory = self.directory(container_id)
        os.makedirs(directory, mode=0o710)
        os.makedirs(self.rootfs(container_id))
        created = now()
        doc: dict[str, Any] = {
            "Id": container_id,
            "Created": created,
            "Path": args[0],
            "Args": args[1:],
            "State": new_state(),
            "Image": image.id,
            "ResolvConfPath": os.path.join(directory, "resolv.conf"),
            "HostnamePath": os.path.join(directory, "hostname"),
            "HostsPath": os.path.join(directory, "hosts"),
            "LogPath": os.path.join(directory, f"{container_id}-json.log"),
            "Name": "/" + name,
            "RestartCount": 0,
            "Driver": self.snapshots.driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": host,
            "Mounts": [],
            "MountPoints": points,
            "Config": config,
        }
        container = Container(container_id, name, image.id, created, doc)
        try:
            self.snapshots.prepare(container.snapshot_key, image.top_layer)
            self.store.add(container)
        except BaseException:
            with contextlib.suppress(Exception):
                self.snapshots.remove(container.snapshot_key)
            shutil.rmtree(directory, ignore_errors=True)
            container_volumes.remove_anonymous(self.volumes, points)
            raise
        return {"Id": container_id, "Warnings": []}

    # -- start ---------------------------------------------------------------------------------
    def start(self, ref: str) -> None:
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if container.running:
                raise NotModified("container already started")
            if container.state.get("Status") == "removing":
                raise Conflict("container is marked for removal and cannot be started")
            try:
                self._start(container)
            except Exception:  # any failure: a --rm client waits for the removal
                if container.host_config.get("AutoRemove"):  # as moby: --rm even when start fails
                    threading.Thread(
                        target=self._auto_remove, args=(container.id,), daemon=True
                    ).start()
                raise

    def _start(self, container: Container) -> None:
        cid = container.id
        if self.runtime_name(container) == DEFAULT_RUNTIME:
            cgroups.prime_migration()  # its RCU wait passes while we mount and spawn
        rootfs = self.rootfs(cid)
        self._stopping.discard(cid)
        container.doc.pop(MANUALLY_STOPPED, None)
        # A --rm container's writable layer goes with it: nothing to sync on unmount.
        volatile = bool(container.host_config.get("AutoRemove"))
        self.snapshots.mount(container.snapshot_key, rootfs, volatile=volatile)
        try:
            points = container.doc.get("MountPoints") or []
            if container_volumes.populate(self.volumes, points, rootfs):
                self.store.save(container)
            opts = self._options(container)
            etc = write_etc_files(
                self.directory(cid),
                container.config.get("Hostname") or cid[:12],
                container.config.get("Domainname") or "",
            )
            write_bundle(
                self.directory(cid),
                rootfs=rootfs,
                container_id=cid,
                config=container.config,
                opts=opts,
                etc_files=etc,
                cgroups_path=f"/dockyard/{cid}",
                volume_sources=container_volumes.sources(self.volumes, points),
            )
            max_size, max_file = log_limits(log_config(container.host_config))
            spawned = self.shims.spawn(
                {
                    "id": cid,
                    "bundle": self.directory(cid),
                    "tty": bool(container.config.get("Tty")),
                    "stdin": bool(container.config.get("OpenStdin")),
                    "stdin_once": bool(container.config.get("StdinOnce")),
                    "log": {
                        "path": container.doc["LogPath"],
                        "max_size": max_size,
                        "max_file": max_file,
                    },
                },
                runtime=self.runtime_name(container),
            )
            try:
                self._connect_attachers(cid)
                spawned.start()
            except BaseException:
                spawned.abandon()
                raise
        except ShimError as exc:
            self._failed_start(container, exc)
            raise
        except BaseException:
            Snapshotter.unmount(rootfs)
            raise
        state = container.state
        state.update(
            Status="running",
            Running=True,
            Paused=False,
            Restarting=False,
            OOMKilled=False,
            Dead=False,
            Pid=spawned.pid,
            ExitCode=0,
            Error="",
            StartedAt=now(),
            FinishedAt=ZERO_TIME,
        )
        self.store.save(container)
        try:
            self.watcher.watch(cid)
        except OSError:  # it exited, and its shim left, before it could be watched
            self._on_exit(cid, self.shims.exit_result(cid))

    def _options(self, container: Container) -> RunOptions:
        body = dict(container.config)
        body["HostConfig"] = container.host_config
        return run_options(body)

    def _failed_start(self, container: Container, exc: ShimError) -> None:
        """docker's record of a start that failed: exit code 127/126/128 and the error."""
        Snapshotter.unmount(self.rootfs(container.id))
        self.shims.forget(container.id)
        container.state.update(
            Status="created" if container.state.get("StartedAt") == ZERO_TIME else "exited",
            Running=False,
            Pid=0,
            ExitCode=exc.exit_code if exc.exit_code in (126, 127) else 128,
            Error=exc.message,
        )
        self.store.save(container)
        exc.message = f"failed to create task for container: {exc.message}: unknown"
        self._resolve_attachers(container.id, exc)

    # -- attach --------------------------------------------------------------------------------
    def attach(
        self, ref: str, stdin: bool, stdout: bool, stderr: bool
    ) -> tuple[Container, Future[Any]]:
        """A connection to the container's stdio: now when it runs, else at its next start."""
        container = self.find(ref)
        header = {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}
        future: Future[Any] = Future()
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if container.state.get("Paused"):
                raise Conflict(
                    f"container {container.id} is paused, unpause the container before attach"
                )
            if container.running:
                future.set_result(self.shims.connect(container.id, header))
            else:
                self._attachers.setdefault(container.id, []).append((header, future))
        return container, future

    def _connect_attachers(self, container_id: str) -> None:
        for header, future in self._attachers.pop(container_id, []):
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.shims.connect(container_id, header))
                except OSError as exc:
                    future.set_exception(exc)

    def _resolve_attachers(self, container_id: str, exc: BaseException) -> None:
        for _, future in self._attachers.pop(container_id, []):
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)

    def resize(self, ref: str, height: int, width: int) -> None:
        container = self.find(ref)
        if not container.running:
            raise Conflict(f"container {container.id} is not running")
        with self.shims.connect(
            container.id, {"op": "resize", "height": height, "width": width}
        ) as sock:
            read_frame(sock)

    # -- stop, kill, restart, pause ------------------------------------------------------------
    def kill(self, ref: str, sig: str = "KILL") -> None:
        number = parse_signal(sig or "KILL")  # moby checks the signal before the container
        if not (0 < number < 32 or 34 <= number <= 64):  # its signal.SignalMap on Linux
            raise InvalidParameter(f"the linux daemon does not support signal {number}")
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if not container.running and not container.state.get("Restarting"):
                raise Conflict(f"container {container.id} is not running")
            stop_signal = container.config.get("StopSignal")
            if number == signal.SIGKILL or not stop_signal or parse_signal(stop_signal) == number:
                self._stopping.add(container.id)  # moby's ExitOnNext: no restart after this exit
            self._manually_stopped(container)
            if self._cancel_restart(container):
                return
            self._signal(container, number)

    def _signal(self, container: Container, number: int) -> None:
        pid = container.state.get("Pid") or 0
        if pid <= 0:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)
        if container.state.get("Paused") and number == signal.SIGKILL:
            self._thaw(container)

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if self._cancel_restart(container, manually=True):
                return
            if not container.running:
                raise NotModified("container already stopped")
            self._stopping.add(container.id)
            self._manually_stopped(container)
            waiter = self._register(container.id, "not-running")
            stop_signal = parse_signal(sig or container.config.get("StopSignal") or "SIGTERM")
            if timeout is None:
                timeout = container.config.get("StopTimeout")
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT
            if container.state.get("Paused"):
                self._thaw(container)
            self._signal(container, stop_signal)
        try:
            waiter.result(timeout=None if timeout < 0 else timeout)
            return
        except TimeoutError:
            pass
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if container.running:
                self._signal(container, signal.SIGKILL)
        waiter.result(timeout=30)

    def _manually_stopped(self, container: Container) -> None:
        """moby's HasBeenManuallyStopped (kept until the next start): an `unless-stopped`
        container stopped by a user is not started again when the daemon starts."""
        if not self._shutting_down:
            container.doc[MANUALLY_STOPPED] = True
            self.store.save(container)

    def _cancel_restart(self, container: Container, manually: bool = False) -> bool:
        """A stop or kill of a container waiting to be restarted by its policy ends the
        restart loop: it stays exited (docker: Restarting counts as running for stop and
        kill, and its restart manager is cancelled)."""
        if container.running or not container.state.get("Restarting"):
            return False
        self._stopping.discard(container.id)
        if manually:
            self._manually_stopped(container)
        container.state.update(Restarting=False, Status="exited")
        self.store.save(container)
        if container.host_config.get("AutoRemove"):
            threading.Thread(target=self._auto_remove, args=(container.id,), daemon=True).start()
        return True

    def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        container = self.find(ref)
        self._restarting.add(container.id)
        try:
            with contextlib.suppress(NotModified):
                self.stop(ref, timeout, sig)
            with self.lock(container.id):  # the exit was handled under it: no auto-removal
                container = self.store.get(container.id) or container
                if not container.running:
                    self._start(container)
        finally:
            self._restarting.discard(container.id)

    @staticmethod
    def runtime_name(container: Container) -> str:
        return str(container.host_config.get("Runtime") or DEFAULT_RUNTIME)

    def runtime(self, container: Container) -> Any:
        """The running container's runtime: pause/resume, pids, stats, cgroup."""
        if self.runtime_name(container) != DEFAULT_RUNTIME:
            return ShimHandle(self.shims, container.id, f"/dockyard/{container.id}")
        from dockyard.runtime import linux

        return linux.load(container.id, self.shims.runtime_root)

    def pause(self, ref: str) -> None:
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if not container.running:
                raise Conflict(f"container {container.id} is not running")
            if container.state.get("Paused"):
                raise Conflict(f"Container {container.id} is already paused")
            self.runtime(container).pause()
            container.state.update(Paused=True, Status="paused")
            self.store.save(container)

    def unpause(self, ref: str) -> None:
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if not container.state.get("Paused"):
                raise Conflict(f"Container {container.id} is not paused")
            self._thaw(container)

    def _thaw(self, container: Container) -> None:
        with contextlib.suppress(Exception):
            self.runtime(container).resume()
        container.state.update(
            Paused=False, Status="running" if container.running else container.state["Status"]
        )
        self.store.save(container)

    # -- wait ----------------------------------------------------------------------------------
    def wait(self, ref: str, condition: str = "not-running") -> Future[dict[str, Any]]:
        """A future of {"StatusCode": n} for docker's wait conditions."""
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if condition == "not-running" and not container.running:
                future: Future[dict[str, Any]] = Future()
                future.set_result(self._wait_result(container))
                return future
            return self._register(container.id, condition)

    def _register(self, container_id: str, condition: str) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        self._waiters.setdefault(container_id, []).append((condition, future))
        return future

    @staticmethod
    def _wait_result(container: Container) -> dict[str, Any]:
        error = container.state.get("Error") or ""
        return {
            "StatusCode": container.state.get("ExitCode", 0),
            "Error": {"Message": error} if error else None,
        }

    def _notify(self, container: Container, conditions: tuple[str, ...]) -> None:
        waiters = self._waiters.get(container.id, [])
        keep = []
        for condition, future in waiters:
            if condition in conditions and not future.done():
                future.set_result(self._wait_result(container))
            elif not future.done():
                keep.append((condition, future))
        self._waiters[container.id] = keep

    # -- exits ---------------------------------------------------------------------------------
    def _on_exit(self, container_id: str, result: dict[str, Any] | None) -> None:
        with self.lock(container_id):
            container = self.store.get(container_id)
            if container is None or not container.running:
                return
            if result is None:
                result = self.shims.exit_result(container_id)
            if result is None:  # the shim died without a word: the container is lost too
                result = {"exit_code": 255, "oom_killed": False, "finished_at": now()}
                container.state["Error"] = "the container's shim exited unexpectedly"
                self.shims.runtimes.force_delete(self.runtime_name(container), container_id)
            self._record_exit(container, result)
            self._after_exit(container, result)

    def _record_exit(self, container: Container, result: dict[str, Any]) -> None:
        Snapshotter.unmount(self.rootfs(container.id))
        self.shims.forget(container.id)
        container.state.update(
            Status="exited",
            Running=False,
            Paused=False,
            Restarting=False,
            Pid=0,
            ExitCode=int(result.get("exit_code", 0)),
            OOMKilled=bool(result.get("oom_killed")),
            FinishedAt=result.get("finished_at") or now(),
        )
        self.store.save(container)
        self._notify(container, ("not-running", "next-exit"))

    def _after_exit(self, container: Container, result: dict[str, Any]) -> None:
        stopped_by_user = container.id in self._stopping
        self._stopping.discard(container.id)
        host = container.host_config
        restarting = container.id in self._restarting
        if (
            host.get("AutoRemove")
            and not restarting
            and not self._should_restart(container, stopped_by_user)
        ):
            threading.Thread(target=self._auto_remove, args=(container.id,), daemon=True).start()
            return
        if self._should_restart(container, stopped_by_user):
            delay = self._restart_delay(container)
            container.state.update(Restarting=True, Status="restarting")
            container.doc["RestartCount"] = int(container.doc.get("RestartCount", 0)) + 1
            self.store.save(container)
            timer = threading.Timer(delay, self._restart_after_exit, args=(container.id,))
            timer.daemon = True
            timer.start()

    def _should_restart(self, container: Container, stopped_by_user: bool) -> bool:
        if stopped_by_user:
            return False
        policy = container.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and container.state.get("ExitCode", 0) != 0:
            limit = int(policy.get("MaximumRetryCount") or 0)
            return limit == 0 or int(container.doc.get("RestartCount", 0)) < limit
        return False

    @staticmethod
    def _restart_delay(container: Container) -> float:
        """docker's back-off: 100 ms doubling per restart, reset after ten seconds of running."""
        started = container.state.get("StartedAt") or ZERO_TIME
        finished = container.state.get("FinishedAt") or ZERO_TIME
        ran = parse_rfc3339(finished) - parse_rfc3339(started) if started != ZERO_TIME else 0
        if ran >= 10:
            return 0.1
        return min(0.1 * (2 ** min(int(container.doc.get("RestartCount", 0)), 10)), 60.0)

    def _restart_after_exit(self, container_id: str) -> None:
        with self.lock(container_id):
            container = self.store.get(container_id)
            if container is None or container.running or not container.state.get("Restarting"):
                return
            if self._shutting_down:
                return
            try:
                self._start(container)
            except DockyardError as exc:
                log.warning("restarting %s failed: %s", container_id[:12], exc.message)
                container = self.store.get(container_id) or container
                container.state.update(Restarting=False, Status="exited")
                self.store.save(container)

    def _auto_remove(self, container_id: str) -> None:
        with contextlib.suppress(NotFound, Conflict):
            self.remove(container_id, force=True, volumes=True)  # as docker: its anonymous ones

    # -- remove, rename ------------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        container = self.find(ref)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            if container.state.get("Status") == "removing":
                raise Conflict(f"removal of container {container.id} is already in progress")
            restarting = not container.running and container.state.get("Restarting")
            if (container.running or restarting) and not force:  # moby's words, and its `ref`
                if container.state.get("Paused"):
                    why = "container is paused and must be unpaused first"
                else:
                    why = (
                        f"container is {'restarting' if restarting else 'running'}: "
                        "stop the container before removing or force remove"
                    )
                raise Conflict(f'cannot remove container "{ref}": {why}')
            if container.running:
                self._stopping.add(container.id)
                waiter = self._register(container.id, "not-running")
                self._signal(container, signal.SIGKILL)
        if container.running:
            with contextlib.suppress(TimeoutError):
                waiter.result(timeout=30)
        with self.lock(container.id):
            container = self.store.get(container.id) or container
            container.state.update(Status="removing")
            self.store.save(container)
            Snapshotter.unmount(self.rootfs(container.id))
            with contextlib.suppress(NotFound):
                self.snapshots.remove(container.snapshot_key)
            self.shims.forget(container.id)
            shutil.rmtree(self.directory(container.id), ignore_errors=True)
            self.store.delete(container.id)
            if volumes:
                container_volumes.remove_anonymous(
                    self.volumes, container.doc.get("MountPoints") or []
                )
            self._resolve_attachers(container.id, NotFound(f"No such container: {container.id}"))
            self._notify(container, ("not-running", "next-exit", "removed"))
            self._waiters.pop(container.id, None)
        with self._locks_guard:
            self._locks.pop(container.id, None)

    def rename(self, ref: str, new_name: str) -> None:
        container = self.find(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        if new_name.removeprefix("/") == container.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        try:  # moby's reserveName errors, wrapped as its rename wraps them
            name = validate_name("/" + new_name.removeprefix("/"))
            with self.lock(container.id):
                container = self.store.get(container.id) or container
                self.store.rename(container, name)
        except (InvalidParameter, Conflict) as exc:
            exc.message = f"Error when allocating new name: {exc.message}"
            exc.args = (exc.message,)
            raise

    # -- daemon start and stop -----------------------------------------------------------------
    def reconcile(self) -> None:
        """Re-adopt what runs and record what exited while the daemon was away."""
        for container in self.store.all():
            if not container.running:
                if container.state.get("Status") in ("removing", "restarting"):
                    container.state.update(Status="exited", Restarting=False)
                    self.store.save(container)
                continue
            result = self.shims.exit_result(container.id)
            if result is None and self.shims.alive(container.id):
                try:
                    self.watcher.watch(container.id)
                    continue
                except OSError:
                    result = self.shims.exit_result(container.id)
            self._on_exit(container.id, result)
        for container in self.store.all():
            if self._start_on_boot(container):
                threading.Thread(target=self._boot_start, args=(container.id,), daemon=True).start()

    @staticmethod
    def _start_on_boot(container: Container) -> bool:
        """moby's restore: a stopped container that has run is started again when its
        policy says so (`always` even after a manual stop; `unless-stopped` unless stopped
        by a user; `on-failure` after a failure, within its retry count)."""
        state = container.state
        if container.running or state.get("Restarting") or state.get("StartedAt") == ZERO_TIME:
            return False
        policy = container.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "always":
            return True
        if name == "unless-stopped":
            return not container.doc.get(MANUALLY_STOPPED)
        if name == "on-failure" and state.get("ExitCode", 0) != 0:
            limit = int(policy.get("MaximumRetryCount") or 0)
            return limit == 0 or int(container.doc.get("RestartCount", 0)) < limit
        return False

    def _boot_start(self, container_id: str) -> None:
        with self.lock(container_id):
            container = self.store.get(container_id)
            if container is None or self._shutting_down or not self._start_on_boot(container):
                return
            try:
                self._start(container)
            except DockyardError as exc:
                log.warning(
                    "starting %s on daemon start failed: %s", container_id[:12], exc.message
                )

    def shutdown(self) -> None:
        """A graceful daemon stop ends its containers (docker without live-restore)."""
        self._shutting_down = True
        for container in self.store.all():  # no restart timer may start one after this
            with self.lock(container.id):
                self._cancel_restart(self.store.get(container.id) or container)
        running = [c for c in self.store.all() if c.running]
        threads = [threading.Thread(target=self._stop_quietly, args=(c.id,)) for c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.watcher.close()
        # Nobody will be told any more: let the requests that wait end.
        for waiters in self._waiters.values():
            for _, future in waiters:
                future.cancel()
        for container_id in list(self._attachers):
            self._resolve_attachers(container_id, DockyardError("the daemon is shutting down"))

    def _stop_quietly(self, container_id: str) -> None:
        with contextlib.suppress(DockyardError, TimeoutError):
            self.stop(container_id)


def created_unix(container: Container) -> int:
    return int(parse_rfc3339(container.created))


def utc_now() -> datetime:
    return datetime.now(UTC)
