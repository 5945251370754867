"""Exception types raised by bayes-scaling.

Every error a user can cause is one of these; the CLI catches them once and prints
the message on one line without a traceback.
"""

from __future__ import annotations


class BayesScalingError(Exception):
    """Base class of every error bayes-scaling raises on purpose."""


class RunTableError(BayesScalingError, ValueError):
    """A run table (CSV, Parquet or DataFrame) is missing data or holds bad values."""


class CardError(BayesScalingError, ValueError):
    """A model card is unknown, malformed or incomplete."""


class FitFileError(BayesScalingError, OSError):
    """A saved fit cannot be read: missing, corrupt, or not written by bayes-scaling."""


class InputError(BayesScalingError, ValueError):
    """An argument (budget, level, quantity string, ...) is out of its allowed range."""


class OutputFileError(BayesScalingError, OSError):
    """An output path cannot be written safely: missing folder, a folder, an input, or someone else's file."""
class ConvergenceWarning(UserWarning):
    """A NUTS fit failed its diagnostics gate (R-hat, ESS, divergences) and was run longer, or still fails."""
