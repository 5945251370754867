"""``Fit``: the posterior as ArviZ data, with its model card and provenance; save/load."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from .cards import ModelCard, parse_card
from .diagnostics import Diagnostics, diagnose
from .errors import CardError, FitFileError, InputError
from .model import log_likelihood, posterior_predictive_log_loss

FORMAT_VERSION = 1
_VERSIONED = ("bayes-scaling", "numpyro", "jax", "jaxlib", "arviz", "arviz-base", "arviz-stats",
              "xarray", "pandas", "numpy", "scipy")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a fit depends on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_level(level: float) -> float:
    """Validate a credible level; return it as float."""
    if not 0 < level < 1:
        raise InputError(f"level must be in the interval (0, 1) but got {level}")
    return float(level)


def build_datatree(card: ModelCard, runs: pd.DataFrame, x: Mapping[str, np.ndarray],
                   log_loss: np.ndarray, posterior: Mapping[str, np.ndarray],
                   sample_stats: Mapping[str, np.ndarray] | None, *, seed: int) -> xr.DataTree:
    """Assemble the ArviZ DataTree of a fit (named dims ``chain``, ``draw``, ``run``)."""
    groups: dict[str, dict[str, Any]] = {
        "posterior": dict(posterior),
        "log_likelihood": {"log_loss": log_likelihood(card, posterior, x, log_loss)},
        "posterior_predictive": {"log_loss": posterior_predictive_log_loss(card, posterior, x, seed)},
        "observed_data": {"log_loss": log_loss},
        "constant_data": {c: runs[c].to_numpy(float) for c in runs.columns
                          if pd.api.types.is_numeric_dtype(runs[c]) and c != "loss"},
    }
    if sample_stats is not None:
        groups["sample_stats"] = dict(sample_stats)
    dims = {"log_loss": ["run"], **{c: ["run"] for c in groups["constant_data"]}}
    names = runs["name"].astype(str).tolist() if "name" in runs else [f"run{i}" for i in range(len(runs))]
    if len(set(names)) != len(names):
        names = [f"{n} #{i}" for i, n in enumerate(names)]
    tree = az.from_dict(groups, dims=dims, coords={"run": names})
    if "group" in runs:
        tree["constant_data"] = tree["constant_data"].to_dataset().assign(
            group=("run", runs["group"].astype(str).to_numpy()))
    return tree


class Fit:
    """A fitted scaling law: posterior draws as an ArviZ DataTree plus card and provenance.

    Do not build one directly: use :func:`bayes_scaling.fit` or :meth:`Fit.load`.

    Attributes
    ----------
    tree : xarray.DataTree
        Groups ``posterior``, ``sample_stats`` (NUTS only), ``log_likelihood``,
        ``posterior_predictive``, ``observed_data`` (log loss) and ``constant_data``
        (the run table), with dims ``chain``, ``draw`` and ``run``.
    card : ModelCard
        The card the fit used (rebuilt from the text stored in the file on load).
    method : str
        ``"nuts"`` or ``"huber"``.
    """

    def __init__(self, tree: xr.DataTree, *, card: ModelCard, method: str, seed: int,
                 elapsed_s: float, extra: Mapping[str, Any] | None = None,
                 attrs: Mapping[str, Any] | None = None) -> None:
        self.tree = tree
        self.card = card
        self.method = method
        self.seed = seed
        self.elapsed_s = elapsed_s
        self.extra = dict(extra or {})
        self.attrs = dict(attrs) if attrs is not None else {
            "bayes_scaling_format": FORMAT_VERSION,
            "method": method,
            "seed": seed,
            "elapsed_s": elapsed_s,
            "card_name": card.name,
            "card_source": card.source,
            "card_text": card.text,
            "runs_source": "",
            "runs_sha256": "",
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": json.dumps(package_versions()),
            "extra": json.dumps(self.extra),
        }

    # -- data access -------------------------------------------------------------------
    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws, dims (chain, draw)."""
        return self.tree["posterior"].to_dataset()

    @property
    def parameters(self) -> list[str]:
        """Law parameters followed by the noise parameters present."""
        return [*self.card.law.parameters, *[v for v in ("sigma", "nu") if v in self.posterior]]

    def draws(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Posterior draws flattened over chains: ``{name: array of shape (chains*draws,)}``."""
        post = self.posterior
        return {n: np.asarray(post[n]).reshape(-1) for n in (names or self.parameters)}

    @property
    def runs(self) -> pd.DataFrame:
        """The run table the fit saw (canonical columns)."""
        const = self.tree["constant_data"].to_dataset()
        table = const.to_dataframe().reset_index()
        table["loss"] = np.exp(self.tree["observed_data"]["log_loss"].to_numpy())
        return table.rename(columns={"run": "name"})

    # -- summaries ---------------------------------------------------------------------
    def diagnostics(self) -> Diagnostics:
        """The diagnostics gate (R-hat, ESS, divergences, tree depth)."""
        stats = self.tree["sample_stats"].to_dataset() if "sample_stats" in self.tree.children else None
        return diagnose(self.posterior, stats, [v for v in self.parameters if v != "nu" or v in self.card.priors])

    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """Posterior summary: one row per parameter.

        Parameters
        ----------
        level : float, default 0.9
            Credible level of the equal-tailed interval.

        Returns
        -------
        DataFrame
            Index: parameter. Columns ``median``, ``lo``, ``hi`` (interval bounds),
            ``mean``, ``sd``, ``r_hat`` (NaN for a single chain), ``ess_bulk``, ``ess_tail``.
        """
        level = check_level(level)
        post = self.posterior[self.parameters]
        draws = self.draws()
        rhat = az.rhat(post) if post.sizes["chain"] > 1 else None
        ess_b, ess_t = az.ess(post, method="bulk"), az.ess(post, method="tail")
        rows = []
        for name in self.parameters:
            d = draws[name]
            lo, med, hi = np.quantile(d, [(1 - level) / 2, 0.5, (1 + level) / 2])
            rows.append({"parameter": name, "median": med, "lo": lo, "hi": hi, "mean": d.mean(),
                         "sd": d.std(ddof=1), "r_hat": float(rhat[name]) if rhat is not None else np.nan,
                         "ess_bulk": float(ess_b[name]), "ess_tail": float(ess_t[name])})
        table = pd.DataFrame(rows).set_index("parameter")
        table.attrs["level"] = level
        return table

    # -- derived quantities (see allocation.py) -----------------------------------------
    def allocate(self, budgets: Sequence[float] | np.ndarray | float, level: float = 0.9) -> pd.DataFrame:
        """Compute-optimal allocation for budgets in FLOPs; see :func:`bayes_scaling.allocate`."""
        from .allocation import allocate

        return allocate(self, budgets, level=level)

    def predict(self, params: Sequence[float] | float, tokens: Sequence[float] | float,
                level: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """Predicted loss at (N, D); see :func:`bayes_scaling.predict_loss`."""
        from .allocation import predict_loss

        return predict_loss(self, params, tokens, level=level, seed=seed)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fit to NetCDF (HDF5), atomically: a temporary file, then a rename.

        An interrupted save leaves any earlier file at ``path`` untouched.
        """
        path = Path(path)
        if not path.parent.exists():
            raise FitFileError(f"{path}: folder {path.parent} does not exist")
        tree = self.tree.copy()
        tree.attrs = {k: v for k, v in self.attrs.items()}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tree.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        """Read a fit written by :meth:`save`.

        Raises
        ------
        FitFileError
            If the file is missing, not NetCDF/HDF5, or not a bayes-scaling fit.
        """
        path = Path(path)
        if not path.is_file():
            raise FitFileError(f"{path}: no such fit file; create one with `bayes-scaling fit RUNS --out {path.name}`")
        try:
            with xr.open_datatree(path, engine="h5netcdf") as opened:
                tree = opened.load()
        except Exception as exc:  # h5py/xarray raise many types for a corrupt file
            raise FitFileError(f"{path}: not a readable NetCDF fit file ({type(exc).__name__}: {exc})") from None
        attrs = dict(tree.attrs)
        needed = {"bayes_scaling_format", "card_text", "method"}
        if not needed <= set(attrs) or "posterior" not in tree.children:
            raise FitFileError(f"{path}: a NetCDF file, but not one written by bayes-scaling (no posterior/card)")
        if int(attrs["bayes_scaling_format"]) > FORMAT_VERSION:
            raise FitFileError(f"{path}: written by a newer bayes-scaling (format {attrs['bayes_scaling_format']}); upgrade")
        try:
            card = parse_card(str(attrs["card_text"]), source=f"{path} (stored card)")
        except CardError as exc:
            raise FitFileError(f"{path}: its stored model card is invalid: {exc}") from None
        return cls(tree, card=card, method=str(attrs["method"]), seed=int(attrs.get("seed", 0)),
                   elapsed_s=float(attrs.get("elapsed_s", np.nan)),
                   extra=json.loads(str(attrs.get("extra", "{}"))), attrs=attrs)

    def __repr__(self) -> str:
        post = self.posterior
        return (f"Fit(card={self.card.name!r}, method={self.method!r}, runs={self.tree['observed_data'].sizes['run']}, "
                f"chains={post.sizes['chain']}, draws={post.sizes['draw']})")
