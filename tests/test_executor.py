import operator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.backtesting import backtest
from bayes_scaling.errors import InputError
from bayes_scaling.executor import map_fits


def tiny_runs() -> pd.DataFrame:
    """20 runs on four IsoFLOP budgets; the cutoffs below leave 10 + 10 and 15 + 5 runs."""
    return bs.load_runs(bs.simulate_runs(seed=4, budgets=(1e19, 1e20, 1e21, 3e21), sizes_per_budget=5))


def tiny_backtest(executor, workers=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = backtest(tiny_runs(), cutoffs=[5e20, 2e21], methods=["nuts"], seed=3, executor=executor,
                      workers=workers, fit_kwargs={"chains": 1, "warmup": 100, "draws": 100})
    return result.table.drop(columns="elapsed_s"), result.runs


def test_map_fits_keeps_task_order_whichever_executor():
    tasks = [(-3, 1), (2, 5), (-7, -1)]
    expected = [-3, 10, 7]
    assert map_fits(operator.mul, [], executor="sequential") == []
    with ThreadPoolExecutor(2) as pool:
        assert [abs(x) for x in map_fits(_product, tasks, executor=pool)] == [abs(e) for e in expected]
    assert map_fits(_product, tasks, executor="sequential") == expected


def _product(task):
    return task[0] * task[1]


def test_map_fits_rejects_bad_executors_and_unreachable_schedulers():
    with pytest.raises(InputError, match="executor must be"):
        map_fits(abs, [1], executor=42)
    with pytest.raises(InputError, match="tcp://HOST:PORT"):
        map_fits(abs, [1], executor="localhost")
    with pytest.raises(InputError, match="workers must be"):
        map_fits(abs, [1], workers=0)


def test_dask_cluster_and_local_processes_give_identical_backtests():
    from distributed import Client, LocalCluster

    local_table, local_runs = tiny_backtest(None, workers=2)  # two spawned processes
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask_table, dask_runs = tiny_backtest(cluster.scheduler_address)  # reached by its address
        with Client(cluster) as client:
            assert map_fits(_product, [(2, 3), (4, 5)], executor=client) == [6, 20]
    pd.testing.assert_frame_equal(local_table, dask_table)
    pd.testing.assert_frame_equal(local_runs, dask_runs)
    assert list(local_table["n_train"]) == [10, 15] and list(local_table["n_test"]) == [10, 5]
