"""Where simulations run: in this process, in local worker processes, or on a Dask cluster.

One seam for every caller that has many independent runs to make (``simulate --runs``,
``compare``, the merge advisor, headroom searches): :func:`open_executor` hands back a
:class:`concurrent.futures.Executor`, whatever is behind it.

- ``jobs=1`` and no cluster: :class:`InlineExecutor`, which runs each job when it is submitted
  (no process, no pickling: the simplest thing, and what tests of the logic use).
- ``jobs=N``: a :class:`~concurrent.futures.ProcessPoolExecutor` of ``N`` spawned processes
  (the simulator is pure Python and CPU-bound; spawn, never fork, a process that has threads).
- ``cluster="tcp://HOST:PORT"``: a Dask distributed client connected to that scheduler, through
  its ``concurrent.futures`` face (``Client.get_executor``). Every worker must have keypolicy
  installed (the same version: a run is pickled as its policy, traffic and seed).

A run depends on its policy, traffic, seed and factors alone (every random draw comes from a
generator seeded from them), so where it runs never changes its result: tests hold a Dask run
to a local one, number for number.

Why Dask rather than Ray: the work is plain Python functions over picklable arguments, which
Dask's ``Client.submit`` takes as they are and hands back through the standard
``concurrent.futures`` interface this module already uses for local processes; Dask is a few
pure-Python wheels, pip-installable everywhere keypolicy runs, and its ``LocalCluster`` starts
in-process for tests on loopback. Ray brings a large binary wheel with its own object store and
daemon, platform wheels that lag new Pythons, and an actor model this work does not need.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

__all__ = ["ClusterError", "InlineExecutor", "open_executor"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ClusterError(Exception):
    """A cluster that cannot be used: Dask not installed, or its scheduler not reachable."""


class InlineExecutor(Executor):
    """Runs each job in this process, at once, when it is submitted: its future is done when
    ``submit`` returns (an exception the job raises is held in the future, as a pool would)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _ignore_sigint() -> None:
    """In a worker process: Ctrl-C is the parent's to handle (it cancels what is left)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def open_executor(jobs: int = 1, cluster: str | None = None) -> Iterator[Executor]:
    """An executor for independent simulation runs: a Dask cluster's (``cluster``, an address
    such as ``tcp://10.0.0.5:8786``), else ``jobs`` local processes, else this process.

    Leaving the block waits for what is running (on Ctrl-C: cancels what has not started and
    ends the local workers). Raises :class:`ClusterError` if the cluster cannot be used.
    """
    if cluster is not None:
        with _dask_executor(cluster) as executor:
            yield executor
        return
    if jobs <= 1:
        yield InlineExecutor()
        return
    pool = ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
    )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError, ValueError):
                process.terminate()  # a run has nothing to keep once its caller has gone
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _dask_executor(address: str) -> Iterator[Executor]:
    client = dask_client(address)
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()


def dask_client(address: str) -> Any:
    """A Dask distributed client of the scheduler at ``address`` (``ClusterError`` if Dask is
    not installed or the scheduler does not answer within 10 seconds)."""
    try:
        from distributed import Client  # noqa: PLC0415 - an optional extra, imported on use
    except ImportError:
        raise ClusterError(
            "--cluster needs Dask distributed: pip install 'keypolicy[cluster]'"
        ) from None
    try:
        return Client(address, timeout="10s", set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {exc} (start one with "
            "`dask scheduler`, and workers with `dask worker ADDRESS`)"
        ) from None
