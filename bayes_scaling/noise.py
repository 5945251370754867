"""One training run's observation noise on log loss, drawn with numpy from a seed.

A single run's realised loss is the law's loss times exp(noise), the noise following
the card's likelihood on log loss: Normal(0, sigma) or StudentT(nu, 0, sigma). Both the
Python API and the CLI draw it here, with ``numpy.random.default_rng(seed)``, so a seed
gives the same draws everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .cards import ModelCard


def observation_noise(card: ModelCard, sigma: np.ndarray, nu: np.ndarray | float | None,
                      shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Draws of a run's noise on ln L, of the given shape.

    Parameters
    ----------
    card : ModelCard
        Its ``likelihood`` (``"normal"`` or ``"student_t"``) picks the distribution.
    sigma : array
        Noise scale on log loss, broadcastable to ``shape`` (e.g. one per draw, (S, 1)).
    nu : array, float or None
        Student-t degrees of freedom, broadcastable to ``shape``; unused for normal noise.
    shape : tuple of int
        Shape of the draws, e.g. (S,) or (S, points).
    seed : int
        Seed of ``numpy.random.default_rng``.
    """
    rng = np.random.default_rng(seed)
    if card.likelihood == "normal":
        standard = rng.standard_normal(shape)
    else:
        standard = rng.standard_t(np.broadcast_to(np.asarray(nu, dtype=float), shape))
    return np.asarray(sigma, dtype=float) * standard
