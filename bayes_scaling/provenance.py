"""Provenance of a result: the versions it was computed with, and labels of its inputs that carry no machine path."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

#: Packages whose versions are stored with every fit.
VERSIONED = ("bayes-scaling", "numpyro", "jax", "jaxlib", "arviz", "arviz-base", "arviz-stats",
             "xarray", "pandas", "numpy", "scipy")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a fit depends on."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_label(source: str | Path, bundled_dir: Path | None = None) -> str:
    """A label of an input file that names it without the machine's folders.

    ``bundled:NAME`` for a file of ``bundled_dir`` (a card shipped with the package),
    else the file's name alone (``runs.csv``); labels such as ``<DataFrame>`` pass through.

    Examples
    --------
    >>> source_label("/home/alice/study/runs.csv")
    'runs.csv'
    """
    text = str(source)
    if not text or text.startswith("<"):
        return text
    path = Path(text)
    if bundled_dir is not None and path.parent.resolve() == bundled_dir.resolve():
        return f"bundled:{path.stem}"
    return path.name


def text_sha256(text: str) -> str:
    """SHA-256 of a text (UTF-8), hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
