"""Where many trainings run: processes on this machine, or tasks on a Ray cluster.

``shadow tune`` and ``shadow train --symbols`` hand independent jobs (a trial, a symbol) to
a :class:`Backend` and get a :class:`concurrent.futures.Future` back per job; nothing
else in them knows which backend runs the job, so the same command and config run on
both. A job is a module-level function and picklable arguments; it returns a picklable
value. Large inputs shared by every job (the candles) go through :meth:`Backend.share`
once.

- :class:`LocalBackend` runs each job in its own process, forked from a server process
  that has already imported torch and SB3 (multiprocessing's ``forkserver``): starting a
  job costs milliseconds, and a job that crashes (segfault, out of memory, ``os._exit``)
  fails alone instead of breaking a shared pool.
- :class:`RayBackend` submits Ray tasks (``num_cpus = torch_threads`` each) to an existing
  cluster (``--ray-address``) or to a Ray instance already started in this process.
  ``ray`` is an optional extra: ``pip install 'shadow-trader[ray]'``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol, TypeVar

from config.errors import UserError
from config.settings import ComputeSettings

log = logging.getLogger(__name__)

R = TypeVar("R")
PRELOAD = ("torch", "torch._dynamo", "stable_baselines3", "pandas", "optuna", "trainer.jobs.backends",
           "trainer.tuning.trial", "trainer.evaluation.walk_forward", "trainer.training.fold_trainer",
           "trainer.training.multi_symbol", "trainer.training.shared_model", "strategies.ppo")
"""Imported once by the fork server, so a job's process starts with them loaded. torch's
optimisers import ``torch._dynamo`` lazily on first use: 0.8 s per job if not preloaded."""
RAY_PACKAGES = ("config", "env", "strategies", "trainer")
"""Shipped to a remote Ray cluster with the job (``runtime_env`` ``py_modules``)."""


class BackendError(UserError):
    """A backend that cannot be used (Ray missing or unreachable, bad worker count)."""


class WorkerDied(RuntimeError):
    """A job's process ended without returning a result (crash, kill, ``os._exit``)."""


class Backend(Protocol):
    """Runs jobs concurrently; at most :attr:`workers` are worth running at once."""

    name: str
    workers: int

    def share(self, value: Any) -> Any:
        """A handle to pass to every job instead of ``value`` (stored once where possible)."""

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Start ``fn(*args)``; the future holds its result or its exception."""

    def close(self) -> None:
        """Stop what still runs and release resources."""


def default_workers(torch_threads: int) -> int:
    """Cores available to this process divided by the torch threads each job uses."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // torch_threads)


def make_backend(compute: ComputeSettings, torch_threads: int) -> Backend:
    """The backend ``[compute]`` (``--backend``, ``--workers``, ``--ray-address``) asks for."""
    if compute.backend == "ray":
        return RayBackend(compute.ray_address, compute.workers, torch_threads)
    return LocalBackend(compute.workers or default_workers(torch_threads))


class LocalBackend:
    """One process per job, forked from a preloaded server (see the module docstring).

    Args:
        workers: jobs running at once (the core count by default); more jobs submitted
            wait for a free slot.
    """

    name = "local"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise BackendError(f"--workers {workers}: must be at least 1")
        self.workers = workers
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(PRELOAD))
        _start_fork_server(str(Path(__file__).resolve().parents[1]))
        self._running: set[multiprocessing.process.BaseProcess] = set()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(workers)
        self._closed = False

    def share(self, value: Any) -> Any:
        return value

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        future: Future[R] = Future()
        threading.Thread(target=self._run, args=(fn, args, os.getcwd(), future), daemon=True).start()
        return future

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], cwd: str, future: Future[Any]) -> None:
        """Wait for a free worker slot, start the job's process, collect its answer."""
        with self._slots:
            if self._closed:
                future.set_exception(WorkerDied("backend closed before the job started"))
                return
            future.set_running_or_notify_cancel()
            receiver, sender = self._context.Pipe(duplex=False)
            process = self._context.Process(target=_run_child, args=(sender, cwd, fn, args), daemon=True)
            process.start()
            sender.close()
            with self._lock:
                self._running.add(process)
            self._collect(process, receiver, future)

    def _collect(self, process: multiprocessing.process.BaseProcess, receiver: Connection,
                 future: Future[Any]) -> None:
        """Wait for the job's answer or its death, whichever comes first."""
        message = None
        try:
            wait([receiver, process.sentinel])
            if receiver.poll():
                message = receiver.recv()
        except (EOFError, OSError):
            message = None
        finally:
            receiver.close()
            process.join()
            with self._lock:
                self._running.discard(process)
        if message is None:
            future.set_exception(WorkerDied(f"worker process {process.pid} exited with code {process.exitcode} "
                                            "without a result (crashed or killed)"))
        elif message[0] == "ok":
            future.set_result(message[1])
        else:
            future.set_exception(RuntimeError(message[1]))

    def close(self) -> None:
        self._closed = True
        with self._lock:
            running = list(self._running)
        for process in running:
            process.terminate()


def _start_fork_server(package_root: str) -> None:
    """Start the fork server (once per process) able to import this code.

    Python 3.11's fork server ignores the parent's ``sys.path``: it resolves imports from
    its working directory and ``PYTHONPATH``. ``PYTHONPATH`` is set to the folder this code
    was loaded from while it starts, so jobs run this same code wherever the parent ran.
    """
    from multiprocessing import forkserver

    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, previous) if p)
    try:
        forkserver.ensure_running()
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def _run_child(sender: Connection, cwd: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Body of a job's process: run in the parent's working directory, send ``("ok",
    result)`` or ``("error", text)``."""
    try:
        os.chdir(cwd)
        result = fn(*args)
    except BaseException as exc:  # reported to the parent, which records the job as failed
        text = str(exc) if isinstance(exc, UserError) else traceback.format_exc(limit=8)
        sender.send(("error", text.strip()))
    else:
        sender.send(("ok", result))
    finally:
        sender.close()


class RayBackend:
    """Ray tasks, one CPU-slot per torch thread each.

    Args:
        address: a running cluster (``ray://host:10001`` through Ray Client, or
            ``host:6379`` from a cluster node); our packages are shipped with the jobs.
            None: use the Ray instance this process already started (``ray.init()``),
            or start a local one.
        workers: jobs to keep in flight (default: the cluster's CPUs / torch threads).
        torch_threads: CPUs reserved per task.
    """

    name = "ray"

    def __init__(self, address: str | None, workers: int | None, torch_threads: int) -> None:
        try:
            import ray
        except ImportError:
            raise BackendError("--backend ray needs the optional extra: pip install 'shadow-trader[ray]'") from None
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is not None:
                import importlib

                kwargs["runtime_env"] = {"py_modules": [importlib.import_module(p) for p in RAY_PACKAGES]}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BackendError(f"--ray-address {address}: cannot connect to Ray ({exc})") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus // torch_threads)
        self._torch_threads = torch_threads
        self._remote: dict[Callable[..., Any], Any] = {}
        self._pending: list[tuple[Any, Future[Any]]] = []

    def share(self, value: Any) -> Any:
        return self._ray.put(value)

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        if fn not in self._remote:  # one export of the function per run, not per job
            self._remote[fn] = self._ray.remote(num_cpus=self._torch_threads, max_retries=0)(fn)
        ref = self._remote[fn].remote(*args)
        future: Future[R] = ref.future()
        self._pending = [(r, f) for r, f in self._pending if not f.done()] + [(ref, future)]
        return future

    def close(self) -> None:
        for ref, future in self._pending:
            if not future.done():
                self._ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_here:
            self._ray.shutdown()
