"""JAX's persistent compilation cache, on by default, in a per-user cache folder.

A NUTS fit spends seconds tracing and compiling XLA programs (the sampler, the
log-likelihood, the posterior predictive) before it draws anything. JAX can keep the
compiled programs on disk, so that a second fit of a table of the same shape in a new
process loads them instead of compiling again (see ``benchmarks/bench_compile_cache.py``).

Where: ``$BAYES_SCALING_JAX_CACHE`` when it names a folder, else
``$XDG_CACHE_HOME/bayes-scaling/jax`` (``~/.cache/bayes-scaling/jax``). Set
``BAYES_SCALING_JAX_CACHE=off`` to turn it off. A cache folder already chosen through
JAX's own ``JAX_COMPILATION_CACHE_DIR`` is left alone. The folder is safe to delete.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BAYES_SCALING_JAX_CACHE"
_OFF = ("0", "off", "false", "no", "none")
#: Programs that compile faster than this are not worth a disk round trip.
MIN_COMPILE_TIME_S = 0.1


def cache_dir(environ: os._Environ | dict[str, str] | None = None) -> Path | None:
    """The folder the compilation cache uses, or ``None`` when it is turned off.

    Parameters
    ----------
    environ : mapping, optional
        Environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    setting = env.get(ENV_VAR, "").strip()
    if setting.lower() in _OFF:
        return None
    if setting:
        return Path(setting).expanduser()
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "bayes-scaling" / "jax"


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir`; return the folder used.

    Returns ``None`` (and changes nothing) when the cache is turned off, when the user
    set JAX's own cache folder, or when the folder cannot be created.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    folder = cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return folder
