"""bayes-scaling: Bayesian neural scaling laws with NumPyro.

Fit a law such as Chinchilla's L(N, D) = E + A/N^alpha + B/D^beta to a table of
training runs, sample its posterior with NUTS, and carry the uncertainty through to
compute-optimal allocations and predicted losses.

>>> import bayes_scaling as bs
>>> runs = bs.simulate_runs(seed=0)                       # doctest: +SKIP
>>> fit = bs.fit(runs)                                    # doctest: +SKIP
>>> fit.allocate([1e22, 5.76e23])                         # doctest: +SKIP
"""

from __future__ import annotations

import os as _os
import sys as _sys
import typing as _typing

# Chains run in parallel only with one JAX device per chain; on a CPU that needs this
# flag before JAX is first imported, by us or by the user, so it is set here although
# this package imports JAX only when it first computes with it (bayes_scaling/_jax.py).
# At least 4 devices (the default chain count) even on fewer cores: 4 chains on 4 host
# devices sharing 2 cores ran 2x faster than 4 vectorised chains (benchmarks/bench_fit.py).
# Respect a user's own setting.
if "jax" not in _sys.modules and "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={max(_os.cpu_count() or 1, 4)}"
    ).strip()
# float64 in JAX, also for arrays a user makes before bayes-scaling first computes (which
# then enforces it, see _jax.py): the terms of a law differ by orders of magnitude.
_os.environ.setdefault("JAX_ENABLE_X64", "1")

from .allocation import allocate, predict_loss  # noqa: E402
from .cards import ModelCard, Prior, available_cards, load_card  # noqa: E402
from .errors import BayesScalingError, CardError, FitFileError, InputError, RunTableError  # noqa: E402
from .laws import Law, available_laws, get_law  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BayesScalingError", "CardError", "FitFileError", "InputError", "Law", "ModelCard", "Prior",
    "RunTableError", "allocate", "available_cards", "available_laws", "get_law", "load_card", "predict_loss",
]

# The rest of the public API loads on first use, so that `import bayes_scaling` (and the
# CLI's answers from a saved fit) imports neither JAX, NumPyro, ArviZ, xarray nor pandas.
_LAZY = {
    "Fit": "fitted", "load_fit": "fitted", "fit": "inference", "HuberFit": "huber", "fit_huber": "huber",
    "RunTableWarning": "data", "load_runs": "data", "EXAMPLE_TRUTH": "simulate", "simulate_runs": "simulate",
    "approach1": "approaches", "approach2": "approaches", "approach3": "approaches",
    "fit_exponents": "approaches", "budget_groups": "approaches",
    "backtest": "backtesting", "Split": "backtesting", "plot_calibration": "report.analysis_figures",
    "calibrate": "calibration", "leave_one_table_out": "calibration", "split_evidence": "calibration_evidence",
    "plot_predictions": "report.analysis_figures", "sensitivity": "sensitivity_analysis",
    "plot_sensitivity": "report.analysis_figures", "compare": "comparison", "compare_cards": "comparison",
    "loo": "comparison", "plot_comparison": "report.analysis_figures",
    "allocation_exponents": "comparison", "compare_param_counts": "comparison",
    "average": "averaging", "ModelAverage": "averaging",
    "compare_arms": "arms", "ArmsComparison": "arms", "plot_arm_frontiers": "report.analysis_figures",
    "fit_replicates": "replicates", "ReplicateFit": "replicates",
    "decide": "decisions", "best_plan": "decisions", "target_probability": "decisions",
    "cheapest_compute": "decisions", "compare_plans": "decisions", "next_run_value": "decisions",
    "Constraints": "decisions", "plan_study": "decisions.design", "score_design": "decisions.design",
    "DesignLimits": "decisions.design",
    "write_report": "report", "render_report": "report",
    "read_logs": "training_logs", "task_prediction": "task_prediction", "task_allocation": "task_prediction",
    "backtest_task": "task_backtest", "rerun_check": "task_backtest", "fit_two_step": "task_baseline",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> _typing.Any:  # PEP 562 lazy attribute
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = module.Fit.load if name == "load_fit" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")
