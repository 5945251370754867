"""A saved fit as plain numpy, read with h5py alone: what answers from a fit need.

:meth:`bayes_scaling.Fit.save` writes NetCDF4 (HDF5) through xarray: one HDF5 group per
ArviZ group, one dataset per variable (dims in ``DIMENSION_LIST``, coordinates as
dimension scales) and the fit's provenance as attributes of the root. The CLI answers
(``allocate``, ``predict``, ``summary``, ``decide``) need only three parts of it:

- ``posterior``: every variable, shape (chain, draw[, group]), and the ``group`` labels;
- ``constant_data``: the run table's numeric columns (``flops`` above all), shape (run,);
- the root attributes: the card's TOML text, method, seed, the stored convergence
  statistics, ...

:func:`read_fit` reads exactly these, in a fraction of the time xarray, ArviZ and JAX
take to import, into a :class:`FitArrays`; ``Fit.arrays`` gives the same object from a
fit in memory, so every answer is computed by one function from either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .cards import ModelCard, parse_card
from .discrepancy import DISCREPANCY_SLOPE, FittedRegion, fitted_max_log_compute, fitted_region
from .errors import CardError, FitFileError, InputError
from .laws.sigmoid import TASK_VARIABLES
from .posterior import Posterior, noise_variables, posterior_from_draws

#: Version of the file layout written by ``Fit.save``; newer files are refused.
FORMAT_VERSION = 1
#: Root attributes every bayes-scaling fit file has.
REQUIRED_ATTRS = ("bayes_scaling_format", "card_text", "method")
#: Root attribute holding the convergence statistics (JSON), see :mod:`bayes_scaling.diagnostics`.
CONVERGENCE_ATTR = "convergence"
#: Posterior variable of the discrepancy scale (see :mod:`bayes_scaling.discrepancy`).
DISCREPANCY_TAU = "discrepancy_tau"
#: Values of the root attribute ``method``.
FIT_METHODS = ("nuts", "huber")


@dataclass(frozen=True)
class FitArrays:
    """The posterior, run table and provenance of a fit as numpy arrays, with its card.

    Attributes
    ----------
    card : ModelCard
    posterior : dict of str to array
        Every posterior variable, shape (chain, draw) or (chain, draw, group).
    constant_data : dict of str to array
        The run table's columns kept with the fit (``flops``, ``params``, ``tokens``, ...), shape (run,).
    groups : list of str
        Group labels of a pooled fit (dim ``group``); empty otherwise.
    attrs : dict
        Provenance: ``method``, ``seed``, ``card_text``, ``convergence``, ...
    """

    card: ModelCard
    posterior: dict[str, np.ndarray]
    constant_data: dict[str, np.ndarray]
    groups: list[str]
    attrs: dict[str, Any]

    @property
    def method(self) -> str:
        """``"nuts"`` or ``"huber"``."""
        return str(self.attrs["method"])

    @property
    def parameters(self) -> list[str]:
        """Law parameters, pooling hyperparameters (if any), then the noise parameters present."""
        hyper = self.card.pooling.hyperparameters() if self.card.pooling else []
        task = [v for v in TASK_VARIABLES if v in self.posterior] if self.card.task else []
        return [*self.card.law.parameters, *hyper, *[v for v in ("sigma", "nu") if v in self.posterior], *task]

    @property
    def max_log_compute(self) -> float:
        """ln C of the largest-compute run the fit saw (FLOPs)."""
        return fitted_max_log_compute(self.constant_data)

    @cached_property
    def convergence(self) -> dict[str, Any] | None:
        """Convergence statistics stored when the fit was saved; ``None`` for files saved before they were."""
        text = self.attrs.get(CONVERGENCE_ATTR)
        return None if text is None else json.loads(str(text))

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
        if group is not None and not self.groups:
            raise InputError(f"group={group!r} given, but this fit does not pool over groups (card "
                             f"{self.card.name!r}); leave out group= (CLI: --group)")
        out = {}
        for name in names or self.parameters:
            values = self.posterior[name]
            if values.ndim > 2:  # (chain, draw, group)
                values = values[..., self.groups.index(self.group_label(group))]
            out[name] = values.reshape(-1)
        return out

    def discrepancy_slope(self) -> np.ndarray | None:
        """Draws of the discrepancy slope, shape (chains*draws,), or ``None`` (no discrepancy)."""
        if DISCREPANCY_SLOPE not in self.posterior:
            return None
        return self.posterior[DISCREPANCY_SLOPE].reshape(-1)

    @property
    def region(self) -> FittedRegion:
        """Where the fitted runs end, in the directions the card's discrepancy counts (compute without one)."""
        directions = self.card.discrepancy.directions if self.card.discrepancy else ("compute",)
        return fitted_region(self.constant_data, directions, str(self.attrs.get("param_count", "total")))

    def discrepancy(self) -> tuple[np.ndarray | None, FittedRegion]:
        """The discrepancy slope draws (or ``None``) and where it starts (:attr:`region`; unbounded without)."""
        slope = self.discrepancy_slope()
        return slope, (FittedRegion() if slope is None else self.region)

    def posterior_draws(self, group: str | None = None) -> Posterior:
        """The draws answers integrate over (:class:`bayes_scaling.posterior.Posterior`), with the discrepancy."""
        wanted = (*self.card.law.parameters, "sigma", "nu")
        draws = self.draws([p for p in self.parameters if p in wanted], group=group)
        slope, region = self.discrepancy()
        return posterior_from_draws(draws, self.card, slope, region)

    def group_label(self, group: str | None) -> str:
        """The group to use: ``group`` itself, checked, or the only group of a one-group fit."""
        if group is None and len(self.groups) == 1:
            return self.groups[0]
        if group is None or str(group) not in self.groups:
            given = "no group given" if group is None else f"unknown group {group!r}"
            pooled = ", ".join(self.card.pooling.parameters) if self.card.pooling else "parameters"
            raise InputError(f"this fit pools {pooled} over groups {', '.join(self.groups)}: {given}; "
                             "pass group= (CLI: --group) one of them")
        return str(group)


@runtime_checkable
class HasArrays(Protocol):
    """A fit in memory: it gives its :class:`FitArrays` (``Fit.arrays``)."""

    @property
    def arrays(self) -> FitArrays:
        """The fit as numpy arrays."""
        ...


def fit_arrays(source: FitArrays | HasArrays) -> FitArrays:
    """The :class:`FitArrays` of a ``Fit`` (its ``arrays``), or ``source`` itself if it is one."""
    return source if isinstance(source, FitArrays) else source.arrays


def check_fit_attrs(path: Path, attrs: Mapping[str, Any], has_posterior: bool, *,
                    check_distributions: bool = True) -> ModelCard:
    """Check the root attributes of a fit file; return its stored card.

    Raises
    ------
    FitFileError
        If the file is not a bayes-scaling fit, is of a newer format, its card is invalid,
        or an attribute (format, method, seed, ``extra`` or ``convergence`` JSON) is damaged.
    """
    if not set(REQUIRED_ATTRS) <= set(attrs) or not has_posterior:
        raise FitFileError(f"{path}: a NetCDF file, but not one written by bayes-scaling (no posterior/card)")
    version = _number(attrs["bayes_scaling_format"], int)
    if version is None:
        raise FitFileError(f"{path}: attribute 'bayes_scaling_format' is {attrs['bayes_scaling_format']!r}, not a "
                           "format number; the file was altered: fit again")
    if version > FORMAT_VERSION:
        raise FitFileError(f"{path}: written by a newer bayes-scaling "
                           f"(format {attrs['bayes_scaling_format']}); upgrade")
    if str(attrs["method"]) not in FIT_METHODS:
        raise FitFileError(f"{path}: attribute 'method' is {str(attrs['method'])!r}, not one of "
                           f"{', '.join(FIT_METHODS)}; the file was altered: fit again")
    for key, kind in (("seed", int), ("elapsed_s", float)):
        if key in attrs and _number(attrs[key], kind) is None:
            raise FitFileError(f"{path}: attribute {key!r} is {attrs[key]!r}, not a number; the file was altered: "
                               "fit again")
    for key in ("extra", CONVERGENCE_ATTR):
        if key in attrs:
            try:
                value = json.loads(str(attrs[key]))
            except ValueError as exc:
                raise FitFileError(f"{path}: attribute {key!r} is not valid JSON ({exc}); the file was altered "
                                   "or damaged: fit again") from None
            if not isinstance(value, dict):
                raise FitFileError(f"{path}: attribute {key!r} is not a JSON object; the file was altered: "
                                   "fit again")
    try:
        return parse_card(str(attrs["card_text"]), source=f"{path} (stored card)",
                          check_distributions=check_distributions)
    except CardError as exc:
        raise FitFileError(f"{path}: its stored model card is invalid: {exc}") from None


def _number(value: Any, kind: type) -> float | int | None:
    """``value`` as an int or float if it is one (numpy scalars included), else ``None``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if kind is int and not float(value).is_integer():
        return None
    return kind(value)


def required_variables(card: ModelCard, posterior: Mapping[str, Any]) -> list[str]:
    """Posterior variables every answer from a fit of ``card`` reads.

    The discrepancy slope is optional (a fit made from draws may have none), but a fit that
    stores the discrepancy scale tau without its slope lost it: the intervals beyond the
    data would silently narrow.
    """
    hyper = card.pooling.hyperparameters() if card.pooling else []
    slope = [DISCREPANCY_SLOPE] if DISCREPANCY_TAU in posterior else []
    return [*card.law.parameters, *hyper, *noise_variables(card), *slope]


def check_fit_arrays(path: str | Path, arrays: FitArrays) -> FitArrays:
    """Check the draws, run table and stored statistics of a fit; return ``arrays`` unchanged.

    Every command reading a fit (``read_fit`` and ``Fit.load``) runs this once, so no
    answer is computed from a file that was altered or damaged: each variable the card
    needs is present, numeric, of shape (chain, draw[, group]) with at least one draw,
    and finite; the run table has a positive, finite ``flops`` column; the stored
    convergence statistics cover every parameter the summary shows.

    Raises
    ------
    FitFileError
        Naming the file, the variable and what is wrong with it.
    """
    post, card = arrays.posterior, arrays.card
    bad = f"the file was altered or damaged: fit again (bayes-scaling fit RUNS --out {Path(path).name})"
    missing = [v for v in required_variables(card, post) if v not in post]
    if missing:
        raise FitFileError(f"{path}: posterior variable(s) {', '.join(missing)} missing (card {card.name!r} needs "
                           f"them); {bad}")
    pooled = set(card.pooling.parameters) if card.pooling else set()
    if pooled and not arrays.groups:
        raise FitFileError(f"{path}: card {card.name!r} pools parameters over groups but the posterior has no "
                           f"group labels; {bad}")
    shape = None
    for name, values in post.items():
        where = f"{path}: posterior variable {name!r}"
        if values.dtype.kind not in "fiu":
            raise FitFileError(f"{where} has dtype {values.dtype}, not numbers; {bad}")
        per_group = name in pooled or (card.pooling is not None and name in
                                       {card.pooling.latent(p) for p in card.pooling.parameters})
        want = 3 if per_group else 2
        if values.ndim != want or (per_group and values.shape[2] != len(arrays.groups)):
            dims = "(chain, draw, group)" if per_group else "(chain, draw)"
            raise FitFileError(f"{where} has shape {values.shape}, not {dims}; {bad}")
        if shape is None:
            shape = values.shape[:2]
        if values.shape[:2] != shape:
            raise FitFileError(f"{where} has {values.shape[0]} chain(s) x {values.shape[1]} draw(s), others "
                               f"{shape[0]} x {shape[1]}; {bad}")
        if values.size == 0:
            raise FitFileError(f"{where} holds no draws; {bad}")
        if not np.isfinite(values).all():
            raise FitFileError(f"{where} holds non-finite values (NaN or inf); {bad}")
    flops = arrays.constant_data.get("flops")
    if flops is None:
        raise FitFileError(f"{path}: the run table kept with the fit (constant_data) has no 'flops'; {bad}")
    for name, values in arrays.constant_data.items():
        if values.dtype.kind not in "fiu":
            continue
        if values.ndim != 1 or values.shape != flops.shape or values.size == 0:
            raise FitFileError(f"{path}: run-table column {name!r} (constant_data) has shape {values.shape}, "
                               f"not (run,) like flops {flops.shape}; {bad}")
        if not np.isfinite(values).all():
            raise FitFileError(f"{path}: run-table column {name!r} (constant_data) holds non-finite values; {bad}")
    if flops.dtype.kind not in "fiu" or not (flops > 0).all():
        raise FitFileError(f"{path}: run-table column 'flops' (constant_data) must hold positive numbers; {bad}")
    _check_convergence(path, arrays, shape, bad)
    return arrays


def _check_convergence(path: str | Path, arrays: FitArrays, shape: tuple[int, ...] | None, bad: str) -> None:
    stats = arrays.convergence
    if stats is None:
        return
    where = f"{path}: stored convergence statistics"
    try:
        chains = _number(stats["chains"], int)
        counts = [_number(stats[k], int) for k in ("divergences", "tree_depth_hits", "max_tree_depth")]
        variables = stats["variables"]
    except (KeyError, TypeError):
        raise FitFileError(f"{where} lack chains, divergences, tree-depth hits or variables; {bad}") from None
    if chains is None or any(c is None for c in counts) or not isinstance(variables, dict):
        raise FitFileError(f"{where}: chains, divergences and tree-depth hits must be integers; {bad}")
    if shape is not None and chains != shape[0]:
        raise FitFileError(f"{where} are of {chains} chain(s) but the posterior has {shape[0]}; {bad}")
    for name in arrays.parameters:
        stat = variables.get(name)
        groups = arrays.posterior[name].shape[2] if arrays.posterior[name].ndim > 2 else None
        ok = isinstance(stat, dict) and all(k in stat for k in ("r_hat", "ess_bulk", "ess_tail"))
        if ok and isinstance(stat, dict):
            for key in ("r_hat", "ess_bulk", "ess_tail"):
                value: np.ndarray = np.array(stat[key], dtype=object)
                ok = ok and value.ndim in ((0,) if groups is None else (0, 1)) and (
                    value.ndim == 0 or value.shape[0] == groups) and all(
                    _number(v, float) is not None for v in value.reshape(-1))
        if not ok:
            raise FitFileError(f"{where} of {name!r} are missing or not numbers (r_hat, ess_bulk, ess_tail); {bad}")


def check_fit_path(path: Path) -> None:
    """Raise :class:`FitFileError` if ``path`` is not a file, saying how to make one."""
    if path.is_dir():
        raise FitFileError(f"{path}: is a folder, not a fit file; give the .nc file `bayes-scaling fit` wrote")
    if not path.is_file():
        raise FitFileError(f"{path}: no such fit file; create one with `bayes-scaling fit RUNS --out {path.name}`")


def read_fit(path: str | Path) -> FitArrays:
    """Read the posterior, run table and attributes of a fit written by ``Fit.save``, with h5py only.

    Parameters
    ----------
    path : str or Path
        A NetCDF file written by :meth:`bayes_scaling.Fit.save` (``bayes-scaling fit --out``).

    Returns
    -------
    FitArrays
        The same arrays and attributes as ``Fit.load(path).arrays``.

    Raises
    ------
    FitFileError
        If the file is missing, not HDF5/NetCDF, or not a bayes-scaling fit.
    """
    import h5py

    path = Path(path)
    check_fit_path(path)
    posterior: dict[str, np.ndarray] = {}  # read below when the file has a posterior; else check_fit_attrs raises
    coords: dict[str, np.ndarray] = {}
    constant: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as file:
            attrs = {k: _attr(v) for k, v in file.attrs.items() if not k.startswith("_NC")}
            has_posterior = isinstance(file.get("posterior"), h5py.Group)
            if has_posterior:
                posterior, coords = _variables(file["posterior"])
                constant = _variables(file["constant_data"])[0] if "constant_data" in file else {}
    except (OSError, ValueError, KeyError, TypeError) as exc:  # not HDF5, truncated, or a damaged layout
        raise FitFileError(f"{path}: not a readable NetCDF fit file ({type(exc).__name__}: {exc})") from None
    card = check_fit_attrs(path, attrs, has_posterior, check_distributions=False)
    groups = [str(g) for g in coords["group"]] if "group" in coords else []
    return check_fit_arrays(path, FitArrays(card, posterior, constant, groups, attrs))


def is_fit_file(path: str | Path) -> bool:
    """Whether ``path`` is a file written by :meth:`bayes_scaling.Fit.save` (its root attributes say so).

    Only the attributes are read: a damaged fit is still ours to replace.
    """
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return set(REQUIRED_ATTRS) <= set(file.attrs)
    except (OSError, ValueError):
        return False


def _variables(group: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Data variables and coordinates (dimension scales) of one NetCDF group."""
    import h5py

    data: dict[str, np.ndarray] = {}
    coords: dict[str, np.ndarray] = {}
    for name, item in group.items():
        if not isinstance(item, h5py.Dataset):
            continue
        values = item.asstr()[()] if h5py.check_string_dtype(item.dtype) else item[()]
        is_coord = item.attrs.get("CLASS") == b"DIMENSION_SCALE"
        (coords if is_coord else data)[name] = np.asarray(values)
    return data, coords


def _attr(value: Any) -> Any:
    """A root attribute as xarray presents it: one-element arrays as numpy scalars, bytes as text."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == (1,):
        return value[0]
    return value
