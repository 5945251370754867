"""Which law? PSIS-LOO comparison of fits, and how the counting of parameters moves N_opt(C).

LOO estimates each card's expected log predictive density of a held-out run (ELPD, in
nats, on the log of the loss) from one posterior, by Pareto-smoothed importance sampling
(arviz). Fits are comparable when they saw the same runs and the same observed log loss;
``param_count`` may differ (the observations do not depend on it).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from .allocation import allocation_draws
from .cards import ModelCard, load_card
from .errors import InputError
from .fitted import Fit
from .model import PARAM_COUNTS
from .tables import check_level

#: Pareto k̂ above this makes a run's LOO estimate unreliable (Vehtari et al. 2024).
KHAT_BAD = 0.7


def loo(fit: Fit, *, require_posterior: bool = True, caught: list[str] | None = None) -> az.ELPDData:
    """PSIS-LOO of one fit (pointwise), from its stored log-likelihood: the one place it is computed.

    Parameters
    ----------
    fit : Fit
    require_posterior : bool, default True
        Refuse a bootstrap (``method="huber"``) fit, whose draws are no posterior; the
        report's calibration section computes it for such a fit all the same, as a check.
    caught : list of str, optional
        When given, ArviZ's warnings (e.g. about Pareto k̂) are collected into it instead
        of the Pareto ones being silenced (the k̂ values are returned anyway).

    Raises
    ------
    InputError
        For a bootstrap fit when ``require_posterior``.
    """
    if require_posterior and fit.method != "nuts":
        raise InputError(f"LOO needs posterior draws, but card {fit.card.name!r} was fitted by {fit.method!r} "
                         "(bootstrap); refit it with method='nuts'")
    with warnings.catch_warnings(record=caught is not None) as record:
        if caught is None:
            # The k̂ diagnostics are returned as columns; arviz's own warning would repeat them.
            warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        else:
            warnings.simplefilter("always")
        result = az.loo(fit.tree, pointwise=True, var_name="log_loss")
    if caught is not None and record is not None:
        caught.extend(sorted({str(w.message) for w in record}))
    return result


def compare(fits: Mapping[str, Fit]) -> pd.DataFrame:
    """Rank fits of the same runs by PSIS-LOO.

    Parameters
    ----------
    fits : mapping of str to Fit
        Name (usually the card name) -> NUTS fit; at least two, all of the same runs.

    Returns
    -------
    DataFrame
        One row per fit, best first. Columns: ``rank``; ``elpd_loo`` and ``se`` (nats,
        summed over runs, on log loss); ``elpd_diff`` and ``se_diff`` (difference to the
        best fit and its standard error: a difference within ~2 ``se_diff`` is no clear
        preference); ``p_loo`` (effective number of parameters); ``weight`` (stacking);
        ``khat_max`` and ``khat_bad_share`` (share of runs with Pareto k̂ > 0.7, whose
        LOO estimate is unreliable); ``converged`` (the fit's diagnostics gate);
        ``warning`` (one sentence, or empty).

    Raises
    ------
    InputError
        Fewer than two fits, a bootstrap fit, or fits of different runs.

    Examples
    --------
    >>> compare({"chinchilla": fit_a, "kaplan": fit_b})  # doctest: +SKIP
    """
    if len(fits) < 2:
        raise InputError(f"compare needs at least two fits but got {len(fits)}")
    names = list(fits)
    reference = np.asarray(fits[names[0]].tree["observed_data"]["log_loss"])
    for name in names[1:]:
        observed = np.asarray(fits[name].tree["observed_data"]["log_loss"])
        if observed.shape != reference.shape or not np.allclose(observed, reference, rtol=0, atol=1e-12):
            raise InputError(f"fits {names[0]!r} and {name!r} saw different runs; LOO compares fits of the same "
                             "run table only")
    elpd = {name: loo(fit) for name, fit in fits.items()}
    table = az.compare(elpd, round_to="none")
    rows = []
    for name, row in table.iterrows():
        k = np.asarray(elpd[name].pareto_k).ravel()
        bad = float(np.mean(k > KHAT_BAD))
        diag = fits[name].diagnostics()
        problems = []
        if bad:
            problems.append(f"{bad:.0%} of runs have Pareto k > {KHAT_BAD}: LOO is unreliable for them")
        if diag.has_errors:
            problems.append("sampling diagnostics failed: " + "; ".join(diag.messages[:2]))
        rows.append({"card": name, "rank": int(row["rank"]), "elpd_loo": float(row["elpd"]), "se": float(row["se"]),
                     "elpd_diff": float(row["elpd_diff"]), "se_diff": float(row["dse"]), "p_loo": float(row["p"]),
                     "weight": float(row["weight"]), "khat_max": float(k.max()), "khat_bad_share": bad,
                     "converged": not diag.has_errors, "warning": "; ".join(problems)})
    return pd.DataFrame(rows).set_index("card")


def compare_cards(runs: pd.DataFrame, cards: Sequence[str | ModelCard], **fit_kwargs: Any) -> pd.DataFrame:
    """Fit several cards to one run table with NUTS and rank them by PSIS-LOO.

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    cards : sequence of str or ModelCard
        At least two distinct cards.
    **fit_kwargs
        Passed to :func:`bayes_scaling.fit` (``chains``, ``warmup``, ``draws``, ``seed``, ...).

    Returns
    -------
    DataFrame
        As :func:`compare`, indexed by card name.
    """
    from .inference import fit

    if len(cards) < 2:
        raise InputError(f"compare needs at least two cards but got {len(cards)}")
    if fit_kwargs.get("method", "nuts") != "nuts":
        raise InputError("compare_cards fits by NUTS only (LOO needs posterior draws)")
    # Every card is read and checked before the first fit: a bad last card fails in a second, not after a fit.
    loaded = [card if isinstance(card, ModelCard) else load_card(card) for card in cards]
    names = [card.name for card in loaded]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"card {twice[0]!r} given twice; compare distinct cards")
    return compare({card.name: fit(runs, card, **fit_kwargs) for card in loaded})


def allocation_exponents(fit: Fit, *, compute: float | None = None, level: float = 0.9,
                         group: str | None = None) -> pd.DataFrame:
    """Posterior of the exponents a, b of N_opt ∝ C^a and D_opt ∝ C^b (a + b = 1).

    Computed as the slope of ln N_opt over one decade of compute centred on ``compute``:
    exact for laws whose optimum is a power law (Chinchilla: a = beta / (alpha + beta);
    Kaplan: a = alpha_D / (alpha_N + alpha_D)), the local exponent otherwise.

    Parameters
    ----------
    fit : Fit
    compute : float, optional
        Where to take the slope, in FLOPs; default the median compute of the fit's runs.
    level : float, default 0.9
        Credible level of the interval.
    group : str, optional
        For a pooled fit, whose parameters.

    Returns
    -------
    DataFrame
        Index ``a`` and ``b``; columns ``median``, ``lo``, ``hi``.
    """
    level = check_level(level)
    c0 = float(np.median(fit.runs["flops"])) if compute is None else float(compute)
    if not c0 > 0:
        raise InputError(f"compute must be a positive number of FLOPs but got {compute}")
    law = fit.card.law
    opt = allocation_draws(law, fit.draws(list(law.parameters), group=group), np.array([c0 / 10**0.5, c0 * 10**0.5]))
    a = np.diff(np.log(opt["params_opt"]), axis=1)[:, 0] / np.log(10.0)
    rows = {}
    for name, values in (("a", a), ("b", 1.0 - a)):
        lo, med, hi = np.quantile(values, [(1 - level) / 2, 0.5, (1 + level) / 2])
        rows[name] = {"median": med, "lo": lo, "hi": hi}
    table = pd.DataFrame(rows).T
    table.attrs.update(level=level, compute=c0)
    return table


def compare_param_counts(runs: pd.DataFrame, card: str | ModelCard = "chinchilla", *, level: float = 0.9,
                         **fit_kwargs: Any) -> pd.DataFrame:
    """Fit on total and on non-embedding parameter counts; show how N_opt ∝ C^a moves.

    The counting difference Pearce & Song (2024) identify between Kaplan (non-embedding)
    and Chinchilla (total) shifts the fitted exponents, and with them a.

    Parameters
    ----------
    runs : DataFrame
        Run table with ``params`` (total) and ``embedding_params`` columns.
    card : str or ModelCard, default "chinchilla"
    level : float, default 0.9
    **fit_kwargs
        Passed to :func:`bayes_scaling.fit`.

    Returns
    -------
    DataFrame
        Index ``param_count`` (``total``, ``non_embedding``); columns ``a``, ``a_lo``,
        ``a_hi`` (exponent of N_opt(C)) and ``b``, ``b_lo``, ``b_hi`` (of D_opt(C)), taken
        at the median compute of the runs.
    """
    from .inference import fit

    rows = {}
    for count in PARAM_COUNTS:
        exps = allocation_exponents(fit(runs, card, param_count=count, **fit_kwargs), level=level)
        rows[count] = {f"{e}{suffix}": float(exps.loc[e, col]) for e in ("a", "b")
                       for suffix, col in (("", "median"), ("_lo", "lo"), ("_hi", "hi"))}
    table = pd.DataFrame(rows).T.rename_axis("param_count")
    table.attrs["level"] = level
    return table


__all__ = ["KHAT_BAD", "allocation_exponents", "compare", "compare_cards", "compare_param_counts", "loo"]
