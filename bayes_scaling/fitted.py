"""``Fit``: the posterior as ArviZ data, with its model card and provenance; save/load.

Saving also stores the convergence statistics (ESS, R-hat, divergences) as the root
attribute ``convergence``, so that a summary of a saved fit needs no ArviZ; the answers
from a saved fit read it with h5py alone (:mod:`bayes_scaling.fitfile`).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cards import ModelCard, cards_dir
from .diagnostics import Diagnostics, convergence_stats, judge, summary_table
from .errors import FitFileError
from .files import check_output, write_atomically
from .fitfile import (
    CONVERGENCE_ATTR,
    FORMAT_VERSION,
    FitArrays,
    check_fit_arrays,
    check_fit_attrs,
    check_fit_path,
    is_fit_file,
)
from .posterior import Posterior
from .provenance import package_versions, source_label, text_sha256

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: File extensions of a saved fit.
FIT_SUFFIXES = (".nc",)
#: Most values (chains × draws × runs) kept in each pointwise group; see build_datatree.
POINTWISE_MAX_VALUES = 20_000_000


def fit_attrs(card: ModelCard, *, method: str, seed: int, elapsed_s: float, extra: Mapping[str, Any] | None = None,
              runs_source: str = "", runs_sha256: str = "", param_count: str = "total") -> dict[str, Any]:
    """The provenance of a fit, built once before the :class:`Fit` is: what its file's root attributes hold.

    Inputs are labelled without machine paths: a bundled card as ``bundled:NAME``, a card
    or run table read from a file by the file's name (with the SHA-256 of its contents).
    """
    return {
        "bayes_scaling_format": FORMAT_VERSION,
        "method": method,
        "seed": int(seed),
        "elapsed_s": float(elapsed_s),
        "card_name": card.name,
        "card_source": source_label(card.source, cards_dir()),
        "card_sha256": text_sha256(card.text),
        "card_text": card.text,
        "runs_source": source_label(runs_source),
        "runs_sha256": runs_sha256,
        "param_count": param_count,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": json.dumps(package_versions()),
        "extra": json.dumps(dict(extra or {})),
    }


def build_datatree(card: ModelCard, runs: pd.DataFrame, x: Mapping[str, np.ndarray],
                   log_loss: np.ndarray, posterior: Mapping[str, np.ndarray],
                   sample_stats: Mapping[str, np.ndarray] | None, *, seed: int) -> xr.DataTree:
    """Assemble the ArviZ DataTree of a fit (named dims ``chain``, ``draw``, ``run``).

    The pointwise groups (``log_likelihood``, ``posterior_predictive``) hold one value per
    draw and run; above :data:`POINTWISE_MAX_VALUES` they keep every k-th draw only (their
    attr ``thinned_every`` says k): 250,000 rows × 4,000 draws would take 8 GB per group.
    """
    import arviz as az
    import pandas as pd

    from .model import group_levels, log_likelihood, posterior_dims, posterior_predictive_log_loss

    chains, draws = np.shape(next(iter(posterior.values())))[:2]
    step = max(1, -(-chains * draws * len(log_loss) // POINTWISE_MAX_VALUES))
    thinned = {k: np.asarray(v)[:, ::step] for k, v in posterior.items()}
    groups: dict[str, dict[str, Any]] = {
        "posterior": dict(posterior),
        "log_likelihood": {"log_loss": log_likelihood(card, thinned, x, log_loss)},
        "posterior_predictive": {"log_loss": posterior_predictive_log_loss(card, thinned, x, seed)},
        "observed_data": {"log_loss": log_loss},
        "constant_data": {c: runs[c].to_numpy(float) for c in runs.columns
                          if pd.api.types.is_numeric_dtype(runs[c]) and c != "loss"},
    }
    if sample_stats is not None:
        groups["sample_stats"] = dict(sample_stats)
    dims = {"log_loss": ["run"], **{c: ["run"] for c in groups["constant_data"]}, **posterior_dims(card)}
    names = runs["name"].astype(str).tolist() if "name" in runs else [f"run{i}" for i in range(len(runs))]
    if len(set(names)) != len(names):
        names = [f"{n} #{i}" for i, n in enumerate(names)]
    coords = {"run": names, **({"group": group_levels(runs, card)} if card.pooling else {})}
    tree = az.from_dict(groups, dims=dims, coords=coords)
    if "group" in runs:
        tree["constant_data"] = tree["constant_data"].to_dataset().assign(
            group=("run", runs["group"].astype(str).to_numpy()))
    for name in ("log_likelihood", "posterior_predictive"):
        tree[name].attrs["thinned_every"] = step
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

    #: Compute-optimal allocation for budgets in FLOPs (:func:`bayes_scaling.allocate`);
    #: attached by :mod:`bayes_scaling.allocation`, a layer above this one.
    allocate: Callable[..., pd.DataFrame]
    #: Predicted loss at (N, D) (:func:`bayes_scaling.predict_loss`); attached by :mod:`bayes_scaling.allocation`.
    predict: Callable[..., pd.DataFrame]

    def __init__(self, tree: xr.DataTree, *, card: ModelCard, method: str = "nuts", seed: int = 0,
                 elapsed_s: float = float("nan"), extra: Mapping[str, Any] | None = None,
                 attrs: Mapping[str, Any] | None = None) -> None:
        """``attrs`` (a fit's provenance, :func:`fit_attrs`) is the one source of ``method``, ``seed``,
        ``elapsed_s`` and ``extra``; without it they are built from the keyword arguments."""
        self.tree = tree
        self.card = card
        self.attrs = dict(attrs) if attrs is not None else fit_attrs(card, method=method, seed=seed,
                                                                     elapsed_s=elapsed_s, extra=extra)
        # Convergence statistics stored with a saved fit describe its draws: kept apart from
        # the attrs, so that a Fit made from another's attrs (and other draws) computes its own.
        self._convergence: str | None = self.attrs.pop(CONVERGENCE_ATTR, None)

    # -- provenance (one source: attrs) -------------------------------------------------
    @property
    def method(self) -> str:
        """``"nuts"`` or ``"huber"``."""
        return str(self.attrs["method"])

    @property
    def seed(self) -> int:
        """Seed of the sampler (or of the bootstrap)."""
        return int(self.attrs.get("seed", 0))

    @property
    def elapsed_s(self) -> float:
        """Seconds the fit took."""
        return float(self.attrs.get("elapsed_s", np.nan))

    @cached_property
    def extra(self) -> dict[str, Any]:
        """Method-specific records: the discrepancy's (``discrepancy``), the bootstrap's convergence, ..."""
        return dict(json.loads(str(self.attrs.get("extra", "{}"))))

    # -- data access -------------------------------------------------------------------
    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws, dims (chain, draw)."""
        return self.tree["posterior"].to_dataset()

    @cached_property
    def arrays(self) -> FitArrays:
        """The posterior, run table and attrs as numpy: what every answer from a fit is computed from.

        The same as :func:`bayes_scaling.fitfile.read_fit` gives for the saved fit.
        """
        post = self.posterior
        const = self.tree["constant_data"].to_dataset()
        groups = [str(g) for g in post["group"].values] if "group" in post.coords else []
        stored = {CONVERGENCE_ATTR: self._convergence} if self._convergence is not None else {}
        # NetCDF names variables with strings; str() only tells the type checker (xarray keys are Hashable).
        return FitArrays(self.card, {str(k): np.asarray(v) for k, v in post.data_vars.items()},
                         {str(k): np.asarray(v) for k, v in const.data_vars.items()}, groups, {**self.attrs, **stored})

    @property
    def parameters(self) -> list[str]:
        """Law parameters, pooling hyperparameters (if any), then the noise parameters present."""
        return self.arrays.parameters

    @property
    def groups(self) -> list[str]:
        """Group labels of a pooled fit (dim ``group``); empty otherwise."""
        return self.arrays.groups

    def draws(self, names: Sequence[str] | None = None, group: str | None = None) -> dict[str, np.ndarray]:
        """Posterior draws flattened over chains: ``{name: array of shape (chains*draws,)}``.

        Parameters
        ----------
        names : sequence of str, optional
            Variables to return; default :attr:`parameters`.
        group : str, optional
            For a pooled fit, the group whose values of per-group parameters to return;
            may be left out when the fit has a single group.

        Raises
        ------
        InputError
            If a per-group parameter is asked for and ``group`` is missing or unknown.
        """
        return self.arrays.draws(names, group=group)

    @property
    def runs(self) -> pd.DataFrame:
        """The run table the fit saw (canonical columns)."""
        const = self.tree["constant_data"].to_dataset()
        table = const.to_dataframe().reset_index()
        if "log_loss" in self.tree["observed_data"]:  # a direct task fit observes no loss
            table["loss"] = np.exp(self.tree["observed_data"]["log_loss"].to_numpy())
        return table.rename(columns={"run": "name"})

    # -- summaries ---------------------------------------------------------------------
    def convergence(self) -> dict[str, Any]:
        """ESS, R-hat, divergences and tree-depth hits of :attr:`parameters` (see
        :func:`bayes_scaling.diagnostics.convergence_stats`); stored with a saved fit, else computed once."""
        if self._convergence is None:
            stats = self.tree["sample_stats"].to_dataset() if "sample_stats" in self.tree.children else None
            self._convergence = json.dumps(convergence_stats(self.posterior, stats, self.parameters))
        return json.loads(str(self._convergence))

    def diagnostics(self) -> Diagnostics:
        """The diagnostics by the method's criteria: R-hat, ESS, divergences, tree depth for NUTS;
        the share of converged refits for the bootstrap (see :func:`bayes_scaling.diagnostics.judge`)."""
        return judge(self.arrays, self.convergence())

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
            A per-group parameter of a pooled fit gets one row per group: ``E[group]``.
        """
        return summary_table(self.arrays, self.convergence(), level).to_frame()

    def posterior_draws(self, group: str | None = None) -> Posterior:
        """The numpy draws every answer integrates over (:class:`bayes_scaling.posterior.Posterior`)."""
        return self.arrays.posterior_draws(group)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fit to NetCDF (HDF5), atomically: a temporary file, then a rename.

        An interrupted save leaves any earlier file at ``path`` untouched, and the next save
        removes the temporary it left. The convergence statistics go with it
        (:meth:`convergence`), so its summary needs no ArviZ.

        Raises
        ------
        OutputFileError
            Before writing anything, if ``path`` is not a ``.nc`` file in an existing,
            writable folder, or is an existing file that is not a bayes-scaling fit.
        """
        path = check_output(path, option="save path", what="fit", example="fit.nc", suffixes=FIT_SUFFIXES,
                            is_ours=is_fit_file)
        tree = self.tree.copy()
        tree.attrs = {**self.attrs, CONVERGENCE_ATTR: json.dumps(self.convergence())}
        write_atomically({path: lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf")})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        """Read a fit written by :meth:`save`.

        Raises
        ------
        FitFileError
            If the file is missing, not NetCDF/HDF5, or not a bayes-scaling fit.
        """
        import xarray as xr

        path = Path(path)
        check_fit_path(path)
        try:
            with xr.open_datatree(path, engine="h5netcdf") as opened:
                tree = opened.load()
        except Exception as exc:  # h5py/xarray raise many types for a corrupt file
            raise FitFileError(f"{path}: not a readable NetCDF fit file ({type(exc).__name__}: {exc})") from None
        attrs = {str(k): v for k, v in tree.attrs.items()}  # NetCDF attribute names are strings
        card = check_fit_attrs(path, attrs, "posterior" in tree.children)
        _check_groups(path, tree, observed_variable(card))
        result = cls(tree, card=card, attrs=attrs)
        check_fit_arrays(path, result.arrays)
        return result

    def __repr__(self) -> str:
        post = self.posterior
        return (f"Fit(card={self.card.name!r}, method={self.method!r}, runs={self.tree['constant_data'].sizes['run']}, "
                f"chains={post.sizes['chain']}, draws={post.sizes['draw']})")


def observed_variable(card: ModelCard) -> str:
    """The run-level variable every fit of ``card`` observes: ``log_loss``, or ``metric`` (accuracy) for a
    direct task card, which observes no loss nor intermediate."""
    return "metric" if card.task is not None and card.task.kind == "direct" else "log_loss"


def _check_groups(path: Path, tree: xr.DataTree, variable: str = "log_loss") -> None:
    """Refuse a fit file whose run-level groups (observed loss, pointwise draws) are missing or misshapen."""
    bad = f"the file was altered or damaged: fit again (bayes-scaling fit RUNS --out {path.name})"
    for group in ("posterior", "constant_data", "observed_data", "log_likelihood", "posterior_predictive"):
        if group not in tree.children:
            raise FitFileError(f"{path}: group {group!r} missing; {bad}")
    runs = tree["constant_data"].sizes.get("run")
    for group in ("observed_data", "log_likelihood", "posterior_predictive"):
        data = tree[group].to_dataset()
        if variable not in data:
            raise FitFileError(f"{path}: variable {variable!r} of group {group!r} missing; {bad}")
        values = data[variable]
        if values.sizes.get("run") != runs or values.dtype.kind != "f" or not np.isfinite(values.to_numpy()).all():
            raise FitFileError(f"{path}: {group}/{variable} must hold finite numbers for each of the {runs} runs; "
                               f"{bad}")
