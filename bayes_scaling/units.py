"""Human-readable quantities: parse ``70M``, ``1.4T``, ``5.76e23``; format them back.

Scaling-law tables mix parameters (~1e8-1e12), tokens (~1e9-1e13) and FLOPs
(~1e18-1e26). Suffixes are SI-like as used in the ML literature: K = 1e3, M = 1e6,
B (or G) = 1e9, T = 1e12, P = 1e15. (No E for 1e18: "1e" would be
ambiguous with scientific notation.)
"""

from __future__ import annotations

import math
import re

import numpy as np

from .errors import InputError

#: ln 6: training compute is counted as C = 6 N D FLOPs (N parameters, D tokens; Kaplan et al. 2020),
#: so ln C = LOG_6 + ln N + ln D.
LOG_6 = math.log(6.0)

#: Run-table covariates whose smallest valid value is more than "positive": a model has at least one expert
#: (1 = a dense model).
COLUMN_MINIMUM: dict[str, float] = {"experts": 1.0}

SUFFIXES: dict[str, float] = {
    "": 1.0,
    "K": 1e3,
    "M": 1e6,
    "B": 1e9,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
}

_THOUSANDS = re.compile(r"^\s*[+-]?\d{1,3}(,\d{3})+(\.\d*)?([eE][+-]?\d+)?\s*[A-Za-z]?\s*$")
_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]?)\s*$")


def parse_quantity(value: str | float | int, *, what: str = "value") -> float:
    """Parse a number that may carry a magnitude suffix.

    Parameters
    ----------
    value : str, float or int
        ``"70M"``, ``"1.4B"``, ``"1.4T"``, ``"5.76e23"``, ``"6e20"`` or a plain number.
        Suffixes are case-insensitive except that ``"m"`` is read as million too
        (nobody trains a model with milli-parameters).
    what : str, default "value"
        Name used in the error message (e.g. ``"--budget"``).

    Returns
    -------
    float
        The value as a plain float (parameters, tokens or FLOPs: whatever was given).

    Raises
    ------
    InputError
        If the text is not a number with an optional suffix.

    Examples
    --------
    >>> parse_quantity("1.4T")
    1400000000000.0
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    text = str(value).replace("_", "")
    if "," in text:
        # A comma only as a thousands separator (1,000,000); "1,5" (a decimal comma) is refused, not read as 15.
        if not _THOUSANDS.match(text):
            raise InputError(f"{what}: cannot read {value!r} as a number: a comma separates thousands only "
                             "(1,000,000); write decimals with a dot, e.g. 1.5 or 5.76e23")
        text = text.replace(",", "")
    match = _QUANTITY.match(text)
    if match is None or match.group(2).upper() not in SUFFIXES:
        raise InputError(
            f"{what}: cannot read {value!r} as a number; write e.g. 70M, 1.4B, 1.4T or 5.76e23"
        )
    return float(match.group(1)) * SUFFIXES[match.group(2).upper()]


def format_quantity(value: float, digits: int = 3) -> str:
    """Format a positive quantity with a magnitude suffix, e.g. ``6.7e10 -> "67B"``.

    Parameters
    ----------
    value : float
        A count of parameters, tokens or FLOPs.
    digits : int, default 3
        Significant digits.

    Returns
    -------
    str
        ``"67B"``, ``"1.4T"``; values ≥ 1e15 (e.g. FLOP budgets) use scientific notation
        (``"5.76e+23"``), the unit FLOPs are quoted in.
    """
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e15 or (0 < abs(value) < 1):
        return f"{value:.{digits - 1}e}"
    # Round first, so that 999999999.99 reads "1B", not "1e+03M".
    value = float(f"{value:.{digits}g}")
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"
