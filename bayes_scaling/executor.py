"""One way to run many independent fits: in this process, in local processes, or on Dask.

Backtests and sensitivity analyses are lists of independent fits. :func:`map_fits` runs
a module-level function over a list of tasks and returns the results in task order.
Every task carries its own seed, so the results do not depend on who ran them.

Local processes are started with the ``spawn`` method: JAX is multithreaded and is not
safe to ``fork`` once imported.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from .errors import InputError


def default_workers(n_tasks: int) -> int:
    """Local worker processes for ``n_tasks`` tasks: one per task, at most one per CPU."""
    return max(1, min(n_tasks, os.cpu_count() or 1))


def map_fits[T, R](function: Callable[[T], R], tasks: Sequence[T], *, executor: Any = None,
             workers: int | None = None) -> list[R]:
    """Apply ``function`` to every task and return the results in task order.

    Parameters
    ----------
    function : callable
        A module-level (picklable) function of one task. It must be deterministic given
        the task: put the seed in the task.
    tasks : sequence
        Picklable task descriptions (e.g. dicts holding a run table and fit options).
    executor : None, str, concurrent.futures.Executor or dask.distributed.Client, default None
        ``None``: local processes (or this process when one worker suffices).
        ``"sequential"``: this process, one task after another.
        A Dask scheduler address such as ``"tcp://10.0.0.5:8786"``: that cluster
        (needs the ``dask`` extra: ``pip install 'bayes-scaling[dask]'``).
        An executor or a Dask client you made: used as is, not shut down.
    workers : int, optional
        Local processes when ``executor`` is None; default one per task, at most one
        per CPU. ``workers=1`` runs in this process.

    Returns
    -------
    list
        ``[function(task) for task in tasks]``, whichever executor ran them.

    Notes
    -----
    Local processes are spawned, so they import the calling script again: a script
    that calls this (or ``backtest``/``sensitivity``) must keep its work under
    ``if __name__ == "__main__":``, as with any spawned multiprocessing. The CLI,
    notebooks and pytest need nothing.

    Examples
    --------
    >>> map_fits(abs, [-1, 2, -3], executor="sequential")
    [1, 2, 3]
    """
    tasks = list(tasks)
    if workers is not None and int(workers) < 1:
        raise InputError(f"workers must be a positive integer but got {workers}")
    if not tasks:
        return []
    n_workers = min(int(workers or default_workers(len(tasks))), len(tasks))
    if executor == "sequential" or (executor is None and n_workers == 1):
        return [function(t) for t in tasks]
    if executor is None:
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(function, tasks))
    if isinstance(executor, str):
        return _map_dask_address(function, tasks, executor)
    if isinstance(executor, Executor):
        return list(executor.map(function, tasks))
    if hasattr(executor, "gather") and hasattr(executor, "map"):  # a dask.distributed.Client
        return _gather(executor, function, tasks)
    raise InputError(
        f"executor must be None, 'sequential', a Dask scheduler address, a concurrent.futures.Executor "
        f"or a dask.distributed.Client but got {executor!r}"
    )


def _map_dask_address[T, R](function: Callable[[T], R], tasks: list[T], address: str) -> list[R]:
    if "://" not in address:
        raise InputError(f"a Dask scheduler address looks like tcp://HOST:PORT but got {address!r}")
    try:
        from distributed import Client
    except ImportError:
        raise InputError("running on a Dask cluster needs the dask extra: pip install 'bayes-scaling[dask]'") from None
    try:
        client = Client(address, timeout="30s")
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    with client:
        return _gather(client, function, tasks)


def _gather[T, R](client: Any, function: Callable[[T], R], tasks: list[T]) -> list[R]:
    # pure=False: two equal tasks are still run twice (no result caching by Dask), and
    # the keys never collide with another call's.
    futures = client.map(function, tasks, pure=False)
    return list(client.gather(futures))
