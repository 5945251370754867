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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .cards import ModelCard, parse_card
from .discrepancy import DISCREPANCY_SLOPE, fitted_max_log_compute
from .errors import CardError, FitFileError, InputError
from .laws.sigmoid import TASK_VARIABLES
from .posterior import Posterior, posterior_from_draws

#: Version of the file layout written by ``Fit.save``; newer files are refused.
FORMAT_VERSION = 1
#: Root attributes every bayes-scaling fit file has.
REQUIRED_ATTRS = ("bayes_scaling_format", "card_text", "method")
#: Root attribute holding the convergence statistics (JSON), see :mod:`bayes_scaling.diagnostics`.
CONVERGENCE_ATTR = "convergence"


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

    def discrepancy(self) -> tuple[np.ndarray | None, float]:
        """The discrepancy slope draws (or ``None``) and where it starts: ln C of the largest run (inf without)."""
        slope = self.discrepancy_slope()
        return slope, (math.inf if slope is None else self.max_log_compute)

    def posterior_draws(self, group: str | None = None) -> Posterior:
        """The draws answers integrate over (:class:`bayes_scaling.posterior.Posterior`), with the discrepancy."""
        wanted = (*self.card.law.parameters, "sigma", "nu")
        draws = self.draws([p for p in self.parameters if p in wanted], group=group)
        slope, max_log_compute = self.discrepancy()
        return posterior_from_draws(draws, self.card, slope, max_log_compute)

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
        If the file is not a bayes-scaling fit, is of a newer format, or its card is invalid.
    """
    if not set(REQUIRED_ATTRS) <= set(attrs) or not has_posterior:
        raise FitFileError(f"{path}: a NetCDF file, but not one written by bayes-scaling (no posterior/card)")
    if int(attrs["bayes_scaling_format"]) > FORMAT_VERSION:
        raise FitFileError(f"{path}: written by a newer bayes-scaling "
                           f"(format {attrs['bayes_scaling_format']}); upgrade")
    try:
        return parse_card(str(attrs["card_text"]), source=f"{path} (stored card)",
                          check_distributions=check_distributions)
    except CardError as exc:
        raise FitFileError(f"{path}: its stored model card is invalid: {exc}") from None


def check_fit_path(path: Path) -> None:
    """Raise :class:`FitFileError` if ``path`` is not a file, saying how to make one."""
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
    try:
        with h5py.File(path, "r") as file:
            attrs = {k: _attr(v) for k, v in file.attrs.items() if not k.startswith("_NC")}
            has_posterior = isinstance(file.get("posterior"), h5py.Group)
            if has_posterior:
                posterior, coords = _variables(file["posterior"])
                constant = _variables(file["constant_data"])[0] if "constant_data" in file else {}
    except OSError as exc:  # h5py raises OSError for a file that is not HDF5, or is truncated
        raise FitFileError(f"{path}: not a readable NetCDF fit file ({type(exc).__name__}: {exc})") from None
    card = check_fit_attrs(path, attrs, has_posterior, check_distributions=False)
    groups = [str(g) for g in coords["group"]] if "group" in coords else []
    return FitArrays(card, posterior, constant, groups, attrs)


def _variables(group: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Data variables and coordinates (dimension scales) of one NetCDF group."""
    import h5py

    data, coords = {}, {}
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
