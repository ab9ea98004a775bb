"""A small pool of threads that creates a layer's new entries while the tar is still being read.

Creating an inode can be the slow part of applying a layer, and it runs without the GIL: on
ext4 without a journal, just after many deletions, each creation costs ~600 µs of kernel time
(the inode allocator skips every recently deleted inode), and threads creating side by side
finish much sooner. On a healthy filesystem a creation takes ~50 µs, less than what handing it
to a thread costs (the GIL and a lock, both ways): there the tasks run best in the caller's
thread. So the pool runs tasks in `submit` itself until they average more than `slow` seconds,
and only then starts its threads (for good). The applier (`layer.py`) decides what may run
here; this class only runs it, in a bounded way:

- each task is keyed by the path it creates; at most `max_tasks` tasks and `max_bytes` of their
  `cost` (the file bytes they hold) are pending at once, and `submit` blocks until there is room;
- a task submitted `after=` a pending key (its parent directory) starts once that one is done;
- a worker takes a run of queued tasks with the same `after` (files of one directory) at once:
  creations in one directory serialize on its lock in the kernel anyway, and threads spinning
  on that lock, or handing each other every task, only cost CPU;
- `wait(key)` blocks until the task for `key` is done, `drain()` until every task is;
- failures are deterministic: the failure of the earliest task, in submission order, is kept
  (tasks submitted after it are skipped) and `submit`, `wait` and `drain` raise it in the
  caller's thread, as `describe(error, name)` has it (`name`: what the task was submitted as);
  `close()` finishes or skips what is queued, stops the threads and returns it. (A task run in
  `submit` simply raises there.)

With `workers=0` every task runs in `submit`, in the caller's thread (the sequential reference);
with `slow=0` threads run them from the first one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class _Task:
    seq: int
    key: str
    after: str | None
    cost: int
    run: Callable[[], None]
    name: str


class WritePool:
    """Runs the tasks that create new entries, in the caller's thread or in `workers` threads."""

    def __init__(
        self,
        workers: int,
        *,
        max_bytes: int,
        max_tasks: int,
        slow: float,
        describe: Callable[[BaseException, str], BaseException] = lambda e, name: e,
        batch: int = 16,
    ) -> None:
        self._workers = workers
        self._describe = describe
        self._slow = slow
        self._inline_time = 0.0  # a moving average of the tasks run in `submit`, in seconds
        self._batch = batch
        self._max_bytes = max_bytes
        self._max_tasks = max_tasks
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # for workers: a task is queued, or closing
        self._done = threading.Condition(self._lock)  # for the caller: a task is done
        self._queue: deque[_Task] = deque()
        self._blocked: dict[str, list[_Task]] = {}  # pending key -> tasks waiting for it
        self._pending: set[str] = set()  # keys queued, blocked or running
        self._bytes = 0
        self._seq = 0
        self._error: tuple[int, BaseException] | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- the caller's side (one thread) -----------------------------------------------------
    def submit(
        self,
        key: str,
        run: Callable[[], None],
        *,
        cost: int,
        after: str | None = None,
        name: str = "",
    ) -> None:
        """Queue `run()`, which creates `key`; it starts once the task for `after` is done."""
        if not self._threads:
            if not self._workers or self._inline_time < self._slow:
                start = time.perf_counter()
                run()
                # one slow outlier (a metadata block read from disk) must not decide it alone
                took = min(time.perf_counter() - start, 4 * self._slow)
                self._inline_time += (took - self._inline_time) / 16
                return
            self._threads = [
                threading.Thread(target=self._worker, name=f"layer-writer-{i}", daemon=True)
                for i in range(self._workers)
            ]
            for thread in self._threads:
                thread.start()
        with self._lock:
            self._raise_failure()
            while self._pending and (
                len(self._pending) >= self._max_tasks or self._bytes + cost > self._max_bytes
            ):
                self._done.wait()
                self._raise_failure()
            if key in self._pending:
                raise RuntimeError(f"a task for {key!r} is already pending")
            self._seq += 1
            task = _Task(self._seq, key, after, cost, run, name or key)
            self._pending.add(key)
            self._bytes += cost
            if after is not None and after in self._pending:
                self._blocked.setdefault(after, []).append(task)
            else:
                self._queue.append(task)
                self._work.notify()

    def wait(self, key: str) -> None:
        """Block until no task for `key` is pending."""
        with self._lock:
            while key in self._pending:
                self._done.wait()
            self._raise_failure()

    def drain(self) -> None:
        """Block until every task is done."""
        with self._lock:
            while self._pending:
                self._done.wait()
            self._raise_failure()

    def close(self) -> BaseException | None:
        """Finish (or skip, after a failure) what is queued, stop the threads; the failure."""
        with self._lock:
            while self._pending:
                self._done.wait()
            self._closed = True
            self._work.notify_all()
        for thread in self._threads:
            thread.join()
        return self._error[1] if self._error is not None else None

    def _raise_failure(self) -> None:
        if self._error is not None and not self._closed:
            raise self._error[1]

    # -- the workers' side ------------------------------------------------------------------
    def _worker(self) -> None:
        batch: list[_Task] = []
        while True:
            with self._lock:
                for task in batch:
                    self._finished(task)
                self._done.notify()
                while not self._queue:
                    if self._closed:
                        return
                    self._work.wait()
                batch = [self._queue.popleft()]
                while (
                    self._queue
                    and len(batch) < self._batch
                    and self._queue[0].after == batch[0].after
                ):
                    batch.append(self._queue.popleft())
            for task in batch:
                failed = self._error  # (read unlocked: a stale None only runs a task for nothing)
                if failed is not None and task.seq > failed[0]:
                    continue  # skipped: an earlier task failed
                try:
                    task.run()
                except BaseException as e:  # handed to the caller's thread
                    error = self._describe(e, task.name)
                    with self._lock:
                        if self._error is None or task.seq < self._error[0]:
                            self._error = (task.seq, error)

    def _finished(self, task: _Task) -> None:
        self._pending.discard(task.key)
        self._bytes -= task.cost
        released = self._blocked.pop(task.key, None)
        if released:
            self._queue.extend(released)
            self._work.notify(len(released))
