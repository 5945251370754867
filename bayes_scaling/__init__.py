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

# Chains run in parallel only with one JAX device per chain; on a CPU that needs this
# flag before JAX is first imported. At least 4 devices (the default chain count) even on
# fewer cores: 4 chains on 4 host devices sharing 2 cores ran 2x faster than 4 vectorised
# chains (benchmarks/bench_fit.py). Respect a user's own setting.
if "jax" not in _sys.modules and "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={max(_os.cpu_count() or 1, 4)}"
    ).strip()

import numpyro as _numpyro  # noqa: E402

# float64 everywhere: the three terms of the law differ by orders of magnitude and
# float32 loses the small power-law terms (a documented pitfall of these fits).
_numpyro.enable_x64()

from .compilation_cache import enable_compilation_cache as _enable_compilation_cache  # noqa: E402

# A second fit in a new process loads its compiled programs from disk (opt out:
# BAYES_SCALING_JAX_CACHE=off); see bayes_scaling/compilation_cache.py.
_enable_compilation_cache()

from .allocation import allocate, predict_loss  # noqa: E402
from .cards import ModelCard, Prior, available_cards, load_card  # noqa: E402
from .classic import HuberFit, fit_huber  # noqa: E402
from .data import RunTableWarning, load_runs  # noqa: E402
from .errors import BayesScalingError, CardError, FitFileError, InputError, RunTableError  # noqa: E402
from .fit import Fit  # noqa: E402
from .inference import fit  # noqa: E402
from .laws import Law, available_laws, get_law  # noqa: E402
from .simulate import EXAMPLE_TRUTH, simulate_runs  # noqa: E402

__version__ = "0.1.0"
load_fit = Fit.load

__all__ = [
    "EXAMPLE_TRUTH", "BayesScalingError", "CardError", "Fit", "FitFileError", "HuberFit", "InputError",
    "Law", "ModelCard", "Prior", "RunTableError", "RunTableWarning", "allocate", "available_cards",
    "available_laws", "fit", "fit_huber", "get_law", "load_card", "load_fit", "load_runs",
    "predict_loss", "simulate_runs",
]

# The rest of the public API loads on first use, so that `import bayes_scaling` (and every
# CLI command) does not pay for matplotlib, arviz's LOO or the decision machinery it does
# not need.
_LAZY = {
    "approach1": "approaches", "approach2": "approaches", "approach3": "approaches",
    "fit_exponents": "approaches", "budget_groups": "approaches",
    "backtest": "backtesting", "plot_calibration": "backtesting", "plot_predictions": "backtesting",
    "sensitivity": "fit_region", "plot_sensitivity": "fit_region",
    "compare": "comparison", "compare_cards": "comparison", "loo": "comparison", "plot_comparison": "comparison",
    "allocation_exponents": "comparison", "compare_param_counts": "comparison",
    "average": "averaging", "ModelAverage": "averaging",
    "decide": "decisions", "best_plan": "decisions", "target_probability": "decisions",
    "cheapest_compute": "decisions", "compare_plans": "decisions", "next_run_value": "decisions",
    "Constraints": "decisions",
    "write_report": "report", "render_report": "report",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):  # noqa: ANN202  (PEP 562 lazy attribute)
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")
