"""Model cards: declarative TOML files naming a law, its priors and the likelihood.

A card is data, never code: it names a law registered in :mod:`bayes_scaling.laws`
and, for each parameter, a NumPyro distribution by name with keyword arguments.
Nothing in a card is evaluated. See ``models/chinchilla.toml`` for the format, and
``models/hierarchical.toml`` for the optional ``[pooling]`` table (per-group parameters
partially pooled across the run table's ``group`` column).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .discrepancy import DIRECTIONS
from .errors import CardError
from .laws import Law, available_laws, get_law

if TYPE_CHECKING:
    import numpyro.distributions as numpyro_dist

#: Distributions a card may name: NumPyro classes of these names (NumPyro is imported
#: when a prior is first built, so reading a card needs no JAX).
DISTRIBUTIONS: tuple[str, ...] = (
    "Normal", "LogNormal", "HalfNormal", "HalfCauchy", "TruncatedNormal", "Uniform", "Gamma", "Exponential",
    "Beta", "StudentT",
)
LIKELIHOODS = ("student_t", "normal")
#: Keyword arguments that must be positive in every distribution that takes them.
_POSITIVE_KWARGS = frozenset({"scale", "rate", "concentration", "concentration0", "concentration1", "df"})
_TOP_KEYS = {"card", "priors", "likelihood", "references", "pooling", "discrepancy", "calibration", "task"}
#: Parameters of a task card's link from the intermediate metric to accuracy (see :class:`Task`).
TASK_PARAMETERS = ("floor_offset", "headroom", "slope", "midpoint", "sigma_metric")
#: Kinds of task card: ``chain`` observes the intermediate metric, ``direct`` keeps it latent.
TASK_KINDS = ("chain", "direct")
#: Chance accuracy of multiple-choice benchmarks (1 / number of choices), by the start of a
#: metric's name: the centre of a task card's floor when neither card nor user gives one.
CHANCE_LEVELS = {"mmlu": 0.25, "hellaswag": 0.25, "arc_easy": 0.25, "arc_challenge": 0.25, "openbookqa": 0.25,
                 "csqa": 0.2, "socialiqa": 1 / 3, "piqa": 0.5, "winogrande": 0.5, "boolq": 0.5}
#: Run-table column whose labels define the groups of a pooled card.
GROUP_COLUMN = "group"


@dataclass(frozen=True)
class Prior:
    """A prior as plain data: a distribution name, its keyword arguments and why.

    Attributes
    ----------
    dist : str
        Key of :data:`DISTRIBUTIONS`, e.g. ``"LogNormal"``.
    kwargs : dict
        Keyword arguments of that NumPyro distribution, e.g. ``{"loc": 6.0, "scale": 2.0}``.
    rationale : str
        One line saying why this prior.
    """

    dist: str
    kwargs: dict[str, float]
    rationale: str = ""

    def to_numpyro(self, **options: Any) -> numpyro_dist.Distribution:
        """Build the NumPyro distribution (``options`` such as ``validate_args=True`` are passed on)."""
        import numpyro.distributions

        from . import _jax  # noqa: F401  (float64 before NumPyro builds anything)

        return getattr(numpyro.distributions, self.dist)(**self.kwargs, **options)

    def describe(self) -> str:
        """E.g. ``LogNormal(loc=6, scale=2)``."""
        args = ", ".join(f"{k}={v:g}" for k, v in self.kwargs.items())
        return f"{self.dist}({args})"


@dataclass(frozen=True)
class Pooling:
    """Partial pooling of some law parameters across the groups of a run table.

    Each pooled parameter p (whose card prior must be ``LogNormal(loc, scale)``) gets one
    value per group, ln p_g ~ Normal(mu_log_p, tau_log_p), with mu_log_p ~ Normal(loc, scale)
    (the card's prior on p, moved to the population median) and tau_log_p ~ ``scales[p]``
    (spread between groups, on ln p). The other law parameters are shared by all groups.

    Non-centred (the default) samples z_p[g] ~ Normal(0, 1) and sets ln p_g = mu + tau z:
    best when groups have few, weakly informative runs. Centred samples ``log_p[g]``
    directly: best when every group pins its own value down (measured on two groups of
    10 and 32 runs: 22 leapfrog steps per draw centred, 400 non-centred).

    Attributes
    ----------
    parameters : tuple of str
        Pooled law parameters, e.g. ``("E", "A", "B")``.
    scales : dict of str to Prior
        Prior of the between-group standard deviation of ln p, per pooled parameter.
    centred : bool, default False
        ``parametrisation = "centred"`` in the card; ``"non_centred"`` is the default.
    """

    parameters: tuple[str, ...]
    scales: dict[str, Prior]
    centred: bool = False

    def latent(self, name: str) -> str:
        """Name of the per-group sampled site of pooled parameter ``name``: ``log_<p>`` or ``z_<p>``."""
        return f"log_{name}" if self.centred else f"z_{name}"

    def hyperparameters(self) -> list[str]:
        """Names of the population-level sites: ``mu_log_<p>`` and ``tau_log_<p>`` per pooled p."""
        return [f"{kind}_log_{p}" for p in self.parameters for kind in ("mu", "tau")]


@dataclass(frozen=True)
class Discrepancy:
    """A card's ``[discrepancy]`` table: the model discrepancy that widens predictions beyond the data.

    See :mod:`bayes_scaling.discrepancy` for the term and :mod:`bayes_scaling.discrepancy_scale`
    for how its scale is learnt.

    Attributes
    ----------
    prior : Prior
        Prior of tau, the scale of the discrepancy slope (log loss per √e-fold of compute
        beyond the fitted region).
    calibrate : tuple of float, default ()
        Internal leave-future-out splits that learn tau from the runs themselves, each the
        distance (e-folds of compute) below the largest run at which the run table is cut;
        empty: no splits (key ``calibrate``).
    misfit_ratio : float or None, default None
        tau (drift one e-fold beyond the data) over the amplitude of the law's smooth
        misfit inside the data, so that the runs' own residuals inform tau; ``None``: the
        residuals are not used (key ``misfit_ratio``).
    directions : tuple of str, default ("compute",)
        Directions in which a prediction counts as beyond the fitted region (key
        ``directions``): any of ``compute``, ``params``, ``tokens`` (see
        :class:`bayes_scaling.discrepancy.FittedRegion`). Cards that leave the key out count
        compute only, as cards did before the key existed.
    misfit_window : float or None, default None
        Only the runs within this many e-folds of compute below the largest inform the
        misfit (key ``misfit_window``); ``None``: every run.
    split_correlation : float, default 1.0
        How the held-out residuals of the ``calibrate`` splits are read when learning tau
        (key ``split_correlation``, in [0, 1]): 1 as one shared slope (each split one
        realisation of the discrepancy: weak evidence), 0 as independent per run (each
        held-out run one realisation), between a mix (see
        :func:`bayes_scaling.discrepancy_evidence.moments_log_likelihood`). Predictions
        still carry one slope per draw.
    """

    prior: Prior
    calibrate: tuple[float, ...] = ()
    misfit_ratio: float | None = None
    directions: tuple[str, ...] = ("compute",)
    misfit_window: float | None = None
    split_correlation: float = 1.0

    @property
    def learnt(self) -> bool:
        """Whether tau is learnt from the runs (splits or misfit), not drawn from its prior alone."""
        return bool(self.calibrate) or self.misfit_ratio is not None


@dataclass(frozen=True)
class Task:
    """A card's ``[task]`` table: accuracy from an intermediate metric through a sigmoid.

    accuracy = floor + (ceiling - floor) · σ(slope · (midpoint - x)), x the intermediate
    metric (a task's bits per byte, or a held-out loss) with floor = chance + floor_offset
    and ceiling = floor + (1 - floor) · headroom, so that floor < ceiling <= 1 by
    construction. ``chain``: x is observed for every run and follows the card's law;
    ``direct``: x = L(N, D) is the law's latent value, only accuracy is observed.

    Attributes
    ----------
    kind : {"chain", "direct"}
    priors : dict of str to Prior
        One per :data:`TASK_PARAMETERS`; ``sigma_metric`` is one run's noise sd on accuracy.
    chance : float or None
        Chance accuracy (the floor's centre); ``None``: from :data:`CHANCE_LEVELS` or the user.
    metric, via : str or None
        Run-table columns of the accuracy and of the intermediate metric, when fixed by the card
        (a fit names them, and the stored card then holds them).
    """

    kind: str
    priors: dict[str, Prior]
    chance: float | None = None
    metric: str | None = None
    via: str | None = None

    def resolved(self, metric: str | None, via: str | None, chance: float | None) -> Task:
        """The task with the columns and chance level of one fit, each checked.

        Raises
        ------
        CardError
            If the metric or (for ``chain``) the intermediate is not named, or no chance
            level is known for the metric.
        """
        metric = metric or self.metric
        via = via or self.via
        if not metric:
            raise CardError("a task card needs the accuracy column: pass metric= (CLI: --metric hellaswag_acc)")
        if self.kind == "direct" and via:
            raise CardError(f"a task-direct card takes accuracy straight from (N, D): it reads no intermediate "
                            f"column, so drop via={via!r} (CLI: --via) or use a chain card (task-chain)")
        if self.kind == "chain" and not via:
            raise CardError("a task-chain card needs the intermediate metric column: pass via= "
                            "(CLI: --via hellaswag_bpb)")
        if chance is None:
            chance = self.chance
        if chance is None:
            known = [k for k in CHANCE_LEVELS if metric.startswith(k)]
            if not known:
                raise CardError(f"no chance level known for metric {metric!r}: pass chance= (CLI: --chance 0.25, "
                                "1 / number of choices)")
            chance = CHANCE_LEVELS[max(known, key=len)]
        if not 0.1 <= chance <= 0.9:
            raise CardError(f"chance must be an accuracy in [0.1, 0.9] but got {chance}")
        return dataclasses.replace(self, metric=metric, via=via if self.kind == "chain" else None,
                                   chance=float(chance))


@dataclass(frozen=True)
class ModelCard:
    """A validated model card.

    Attributes
    ----------
    name : str
        Card name (``chinchilla``).
    law : Law
        The registered law it names.
    priors : dict of str to Prior
        One prior per law parameter.
    likelihood : str
        ``"student_t"`` or ``"normal"``, on the log of the loss.
    sigma : Prior
        Prior of the observation noise scale on log loss.
    nu : Prior or float or None
        Student-t degrees of freedom: a prior, a fixed number, or ``None`` for normal.
    pooling : Pooling or None
        Per-group parameters partially pooled over the ``group`` column, or ``None``.
    discrepancy : Discrepancy or None
        The model discrepancy beyond the fitted region (its prior of tau, how tau is learnt),
        or ``None`` for the law alone.
    task : Task or None
        A task card's link from the law's metric to accuracy, or ``None`` for a loss card.
    references : dict
        Literature point values, ``{"hoffmann2022": {"label": ..., "E": 1.69, ...}}``.
    calibration : dict
        How the discrepancy was learnt across tables (``[calibration]``, written by
        :func:`bayes_scaling.calibrate`: tables, splits, scores before and after); empty otherwise.
    description : str
        One paragraph for reports.
    text : str
        The card's TOML text as read, stored with every fit for provenance.
    source : str
        Path the card was read from.
    """

    name: str
    law: Law
    priors: dict[str, Prior]
    likelihood: str
    sigma: Prior
    nu: Prior | float | None
    pooling: Pooling | None = None
    discrepancy: Discrepancy | None = None
    task: Task | None = None
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    text: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The card as the plain data of its TOML tables (what :func:`parse_card` reads back)."""
        def prior(p: Prior) -> dict[str, Any]:
            return {"dist": p.dist, "kwargs": dict(p.kwargs), **({"rationale": p.rationale} if p.rationale else {})}

        out: dict[str, Any] = {"card": {"name": self.name, "law": self.law.name,
                                        **({"description": self.description} if self.description else {})},
                               "priors": {k: prior(v) for k, v in self.priors.items()}}
        likelihood: dict[str, Any] = {"family": self.likelihood, "sigma": prior(self.sigma)}
        if isinstance(self.nu, Prior):
            likelihood["nu"] = prior(self.nu)
        elif self.nu is not None:
            likelihood["nu"] = {"value": float(self.nu)}
        out["likelihood"] = likelihood
        if self.pooling is not None:
            out["pooling"] = {"parameters": list(self.pooling.parameters),
                              "parametrisation": "centred" if self.pooling.centred else "non_centred",
                              "scale": {k: prior(v) for k, v in self.pooling.scales.items()}}
        if self.discrepancy is not None:
            d = self.discrepancy
            out["discrepancy"] = {**prior(d.prior), **({"calibrate": list(d.calibrate)} if d.calibrate else {}),
                                  **({"misfit_ratio": d.misfit_ratio} if d.misfit_ratio is not None else {}),
                                  **({"directions": list(d.directions)} if d.directions != ("compute",) else {}),
                                  **({"misfit_window": d.misfit_window} if d.misfit_window is not None else {}),
                                  **({"split_correlation": d.split_correlation} if d.split_correlation != 1.0
                                     else {})}
        if self.task is not None:
            t = self.task
            out["task"] = {"kind": t.kind, **{k: v for k, v in (("chance", t.chance), ("metric", t.metric),
                                                                ("via", t.via)) if v is not None},
                           "priors": {k: prior(v) for k, v in t.priors.items()}}
        if self.references:
            out["references"] = {k: dict(v) for k, v in self.references.items()}
        if self.calibration:
            out["calibration"] = dict(self.calibration)
        return out

    def to_toml(self) -> str:
        """The card as TOML text that :func:`parse_card` reads back into an equal card (comments are not kept)."""
        return _toml_tables(self.to_dict())

    def with_task(self, task: Task) -> ModelCard:
        """The same card with another ``[task]`` table (e.g. :meth:`Task.resolved`), its text regenerated."""
        card = dataclasses.replace(self, task=task)
        return dataclasses.replace(card, text=card.to_toml())

    def with_discrepancy(self, discrepancy: Discrepancy | None) -> ModelCard:
        """The same card with another ``[discrepancy]`` table (``None``: the law alone), its text regenerated."""
        card = dataclasses.replace(self, discrepancy=discrepancy)
        return dataclasses.replace(card, text=card.to_toml())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _toml_tables(data: dict[str, Any], prefix: str = "") -> str:
    """Plain data as TOML: a table's values first (``kwargs`` inline), then its sub-tables."""
    inline = {k: v for k, v in data.items() if not isinstance(v, dict) or k == "kwargs"}
    lines = ([f"[{prefix}]"] if prefix and inline else []) + [f"{_toml_key(k)} = {_toml_value(v)}"
                                                              for k, v in inline.items()]
    out = "".join(f"{line}\n" for line in lines)
    for k, v in data.items():
        if k not in inline:
            out += ("\n" if out else "") + _toml_tables(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k))
    return out


def cards_dir() -> Path:
    """Folder holding the bundled cards (inside the wheel, or ``models/`` in a checkout)."""
    packaged = resources.files("bayes_scaling") / "models"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "models"


def available_cards() -> list[str]:
    """Names of the bundled cards, sorted."""
    return sorted(p.stem for p in cards_dir().glob("*.toml"))


def load_card(card: str | Path) -> ModelCard:
    """Read and validate a model card by bundled name or by path.

    Parameters
    ----------
    card : str or Path
        ``"chinchilla"`` (a bundled card) or the path of a ``.toml`` file.

    Returns
    -------
    ModelCard

    Raises
    ------
    CardError
        Listing every problem found, each with the card and the key.
    """
    path = Path(card)
    if not (path.suffix == ".toml" or path.exists()):
        path = cards_dir() / f"{card}.toml"
        if not path.is_file():
            raise CardError(
                f"no model card named {str(card)!r}; bundled cards: {', '.join(available_cards())} "
                "(or give the path of a .toml card)"
            )
    if path.is_dir():
        raise CardError(f"{path}: is a folder, not a model card; give a .toml file or a bundled card name")
    if not path.is_file():
        raise CardError(f"{path}: no such model card file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(f"{path}: not a text (UTF-8) TOML model card (byte {exc.start} is not text); see "
                        "models/chinchilla.toml for the format") from None
    return parse_card(text, source=str(path))


def parse_card(text: str, *, source: str = "<card>", check_distributions: bool = True) -> ModelCard:
    """Validate the TOML text of a card; see :func:`load_card`.

    ``check_distributions=False`` skips only building each prior with NumPyro to check
    its arguments (which imports JAX), for the stored card of a saved fit: it was checked
    in full when the fit was made. Everything else is validated all the same.
    """
    check = check_distributions
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CardError(f"{source}: not valid TOML ({exc})") from None
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"unknown section [{key}] (known: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("card", "priors", "likelihood", "references"):
        if not isinstance(data.get(key, {}), dict):
            problems.append(f"[{key}]: must be a table ([{key}] ...), not {type(data[key]).__name__}")
    meta = data.get("card", {}) if isinstance(data.get("card", {}), dict) else {}
    law_name = meta.get("law")
    law = None
    if not isinstance(law_name, str):
        problems.append("[card] law: missing; name a law, one of " + ", ".join(available_laws()))
    else:
        try:
            law = get_law(law_name)
        except CardError as exc:
            problems.append(f"[card] law: {exc}")
    priors: dict[str, Prior] = {}
    raw_priors = data.get("priors", {}) if isinstance(data.get("priors", {}), dict) else {}
    if law is not None:
        for name in law.parameters:
            if name not in raw_priors:
                problems.append(f"[priors.{name}]: missing; law {law.name!r} needs a prior for {name}")
        for name in sorted(set(raw_priors) - set(law.parameters)):
            problems.append(f"[priors.{name}]: {law.name!r} has no parameter {name!r} "
                            f"(its parameters: {', '.join(law.parameters)})")
    for name, spec in raw_priors.items():
        prior = _prior(spec, f"[priors.{name}]", problems, check)
        if prior is not None:
            priors[name] = prior
    like = data.get("likelihood", {}) if isinstance(data.get("likelihood", {}), dict) else {}
    family = like.get("family", "student_t")
    if family not in LIKELIHOODS:
        problems.append(f"[likelihood] family: {family!r} is not one of {', '.join(LIKELIHOODS)}")
    sigma = _prior(like.get("sigma"), "[likelihood.sigma]", problems, check)
    nu: Prior | float | None = None
    if family == "student_t":
        spec = like.get("nu")
        if isinstance(spec, dict) and "value" in spec:
            value = spec["value"]
            nu = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
            if not (math.isfinite(nu) and nu > 0):
                problems.append(f"[likelihood.nu] value: {value!r} is not a positive, finite number of degrees "
                                "of freedom")
        else:
            nu = _prior(spec, "[likelihood.nu]", problems, check)
    pooling = _pooling(data["pooling"], law, priors, problems, check) if "pooling" in data else None
    discrepancy = _discrepancy(data["discrepancy"], problems, check) if "discrepancy" in data else None
    calibration = data.get("calibration", {})
    if not isinstance(calibration, dict):
        problems.append("[calibration]: must be a table (written by `bayes-scaling calibrate`)")
        calibration = {}
    task = _task(data["task"], problems, check) if "task" in data else None
    if task is not None and discrepancy is not None:
        problems.append("[task] and [discrepancy]: a task card has no model discrepancy yet; drop one of them")
    references = data.get("references", {}) if isinstance(data.get("references", {}), dict) else {}
    for ref, values in references.items():
        if not isinstance(values, dict):
            problems.append(f"[references.{ref}]: must be a table of parameter values")
    if problems:
        raise CardError(f"{source}: invalid model card:\n  - " + "\n  - ".join(problems))
    assert law is not None and sigma is not None
    return ModelCard(
        name=str(meta.get("name", Path(source).stem)),
        law=law,
        priors={n: priors[n] for n in law.parameters},
        likelihood=family,
        sigma=sigma,
        nu=nu,
        pooling=pooling,
        discrepancy=discrepancy,
        task=task,
        references=references,
        calibration=calibration,
        description=str(meta.get("description", "")),
        text=text,
        source=source,
    )


def _pooling(spec: Any, law: Law | None, priors: dict[str, Prior], problems: list[str],
             check: bool = True) -> Pooling | None:
    if not isinstance(spec, dict):
        problems.append("[pooling]: must be a table with parameters = [...] and [pooling.scale.<p>] priors")
        return None
    for key in sorted(set(spec) - {"parameters", "scale", "parametrisation", "rationale"}):
        problems.append(f"[pooling] {key}: unknown key (known: parameters, scale, parametrisation, rationale)")
    form = spec.get("parametrisation", "non_centred")
    if form not in ("centred", "non_centred"):
        problems.append(f"[pooling] parametrisation: {form!r} is not one of centred, non_centred")
    names = spec.get("parameters")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append('[pooling] parameters: give a non-empty list of law parameters, e.g. ["E", "A", "B"]')
        return None
    raw_scales = spec.get("scale", {})
    scales: dict[str, Prior] = {}
    for name in names:
        if law is not None and name not in law.parameters:
            problems.append(f"[pooling] parameters: {law.name!r} has no parameter {name!r}")
            continue
        if name in priors and priors[name].dist != "LogNormal":
            problems.append(f"[pooling] parameters: {name} is pooled on the log scale, so [priors.{name}] must be "
                            f"a LogNormal, not {priors[name].dist}")
        scale = _prior(raw_scales.get(name), f"[pooling.scale.{name}]", problems, check)
        lower = float(getattr(scale.to_numpyro().support, "lower_bound", -1.0)) if check and scale is not None else 0.0
        if scale is not None and not lower >= 0:
            problems.append(f"[pooling.scale.{name}]: {scale.describe()} allows negative values; a spread "
                            "needs a positive prior such as HalfNormal")
        elif scale is not None:
            scales[name] = scale
    for name in sorted(set(raw_scales) - set(names)):
        problems.append(f"[pooling.scale.{name}]: {name} is not in [pooling] parameters")
    return Pooling(tuple(names), scales, centred=form == "centred")


def _task(spec: Any, problems: list[str], check: bool) -> Task | None:
    if not isinstance(spec, dict):
        problems.append('[task]: must be a table with kind = "chain" or "direct" and [task.priors.<p>] priors')
        return None
    for key in sorted(set(spec) - {"kind", "chance", "metric", "via", "priors", "rationale"}):
        problems.append(f"[task] {key}: unknown key (known: kind, chance, metric, via, priors, rationale)")
    kind = spec.get("kind", "chain")
    if kind not in TASK_KINDS:
        problems.append(f"[task] kind: {kind!r} is not one of {', '.join(TASK_KINDS)}")
    chance = spec.get("chance")
    if chance is not None and (isinstance(chance, bool) or not isinstance(chance, (int, float))
                               or not 0.1 <= chance <= 0.9):
        problems.append(f"[task] chance: give the chance accuracy in [0.1, 0.9] (1 / choices) but got {chance!r}")
        chance = None
    for key in ("metric", "via"):
        if key in spec and not isinstance(spec[key], str):
            problems.append(f"[task] {key}: give a column name as text but got {spec[key]!r}")
    raw = spec.get("priors", {})
    priors = {}
    for name in TASK_PARAMETERS:
        prior = _prior(raw.get(name), f"[task.priors.{name}]", problems, check)
        if prior is not None:
            priors[name] = prior
    for name in sorted(set(raw) - set(TASK_PARAMETERS)):
        problems.append(f"[task.priors.{name}]: not a task parameter (they are {', '.join(TASK_PARAMETERS)})")
    if "headroom" in priors and priors["headroom"].dist not in ("Beta", "Uniform"):
        problems.append("[task.priors.headroom]: the ceiling's share of the room above the floor lies in (0, 1); "
                        "give a Beta (or Uniform) prior")
    if len(priors) < len(TASK_PARAMETERS) or kind not in TASK_KINDS:
        return None
    return Task(str(kind), priors, None if chance is None else float(chance),
                spec.get("metric") if isinstance(spec.get("metric"), str) else None,
                spec.get("via") if isinstance(spec.get("via"), str) else None)


def _discrepancy(spec: Any, problems: list[str], check: bool) -> Discrepancy | None:
    if not isinstance(spec, dict):
        problems.append("[discrepancy]: must be a table with dist, kwargs and optionally calibrate = [1.0, 2.0] "
                        "and misfit_ratio = 1.0")
        return None
    spec = dict(spec)
    splits = spec.pop("calibrate", [])
    ratio = spec.pop("misfit_ratio", None)
    directions = spec.pop("directions", ["compute"])
    window = spec.pop("misfit_window", None)
    correlation = spec.pop("split_correlation", 1.0)
    if isinstance(correlation, bool) or not isinstance(correlation, (int, float)) or not 0 <= correlation <= 1:
        problems.append(f"[discrepancy] split_correlation: give a number from 0 (the splits' held-out runs read as "
                        f"independent) to 1 (as one shared slope), e.g. 0.75, but got {correlation!r}")
        correlation = 1.0
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0):
        problems.append(f"[discrepancy] misfit_window: give a positive number of e-folds of compute below the "
                        f"largest run (e.g. 2.0) but got {window!r}")
        window = None
    for key in sorted(set(spec) - {"dist", "kwargs", "rationale"}):
        problems.append(f"[discrepancy] {key}: unknown key (known: dist, kwargs, rationale, calibrate, "
                        "misfit_ratio, directions, misfit_window, split_correlation)")
    if (not isinstance(directions, list) or not directions
            or not all(isinstance(v, str) and v in DIRECTIONS for v in directions)
            or len(set(directions)) != len(directions)):
        problems.append(f"[discrepancy] directions: give a list of distinct directions among {', '.join(DIRECTIONS)} "
                        f"(e.g. [\"compute\", \"params\", \"tokens\"]) but got {directions!r}")
        directions = ["compute"]
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0):
        problems.append(f"[discrepancy] misfit_ratio: give a positive number (tau per unit of the law's misfit "
                        f"amplitude inside the data, e.g. 1.0) but got {ratio!r}")
        ratio = None
    if not isinstance(splits, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in splits
    ):
        problems.append("[discrepancy] calibrate: give a list of positive distances in e-folds of compute "
                        "below the largest run, e.g. [1.0, 2.0] (or leave it out to keep the prior of tau)")
        splits = []
    prior = _prior(spec, "[discrepancy]", problems, check)
    if prior is None:
        return None
    return Discrepancy(prior, tuple(float(v) for v in splits), None if ratio is None else float(ratio),
                       tuple(d for d in DIRECTIONS if d in directions), None if window is None else float(window),
                       float(correlation))


def _prior(spec: Any, where: str, problems: list[str], check: bool = True) -> Prior | None:
    if not isinstance(spec, dict):
        problems.append(f"{where}: missing; give dist = \"...\" and kwargs = {{...}}")
        return None
    name = spec.get("dist")
    kwargs = spec.get("kwargs", {})
    if name not in DISTRIBUTIONS:
        problems.append(f"{where} dist: {name!r} is not one of {', '.join(DISTRIBUTIONS)}")
        return None
    if not isinstance(kwargs, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in kwargs.values()
    ):
        problems.append(f"{where} kwargs: must be a table of numbers, e.g. {{loc = 0.0, scale = 1.0}}")
        return None
    prior = Prior(str(name), {k: float(v) for k, v in kwargs.items()}, str(spec.get("rationale", "")))
    numbers_ok = True
    for key, value in prior.kwargs.items():
        if not math.isfinite(value):
            problems.append(f"{where} kwargs: {key} = {value} is not a finite number")
            numbers_ok = False
        elif key in _POSITIVE_KWARGS and not value > 0:
            problems.append(f"{where} kwargs: {key} = {value:g} must be positive")
            numbers_ok = False
    for low, high in (("low", "high"),):
        if low in prior.kwargs and high in prior.kwargs and not prior.kwargs[low] < prior.kwargs[high]:
            problems.append(f"{where} kwargs: low = {prior.kwargs[low]:g} must be below high = {prior.kwargs[high]:g}")
            numbers_ok = False
    if not numbers_ok:
        return None
    if not check:
        return prior
    try:
        prior.to_numpyro(validate_args=True)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where} kwargs: {prior.describe()} is not a valid {name} ({exc})")
        return None
    return prior
