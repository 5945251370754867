"""JAX set-up: float64 and the compilation cache. Every module that computes with JAX imports it.

``import bayes_scaling`` does not import JAX (answers from a saved fit need numpy only);
the first module that computes with JAX imports this one, which sets JAX up once:

- float64 everywhere: the three terms of a law differ by orders of magnitude and float32
  loses the small power-law terms (a documented pitfall of these fits);
- the persistent compilation cache (see :mod:`bayes_scaling.compilation_cache`).

The host-device flag that lets chains run in parallel must be in the environment before
JAX is first imported, by whoever imports it, so ``bayes_scaling/__init__.py`` sets it.
"""

from __future__ import annotations

import jax

from .compilation_cache import enable_compilation_cache

jax.config.update("jax_enable_x64", True)
# A second fit in a new process loads its compiled programs from disk (opt out:
# BAYES_SCALING_JAX_CACHE=off).
enable_compilation_cache()
