"""Safe file writing: outputs checked before any work, saves atomic, nobody else's file overwritten.

Every file bayes-scaling writes (a fit, a report, a simulated run table) goes through
here: :func:`check_output` refuses, before anything is computed, an output whose folder
is missing or read-only, that is a folder, that is one of the command's inputs, or that
exists and was not written by bayes-scaling; :func:`write_atomically` writes to a hidden
temporary file beside the target (``.NAME.PID.tmp``) and renames it, so an interrupted
save leaves the earlier file whole, and removes the temporaries that killed saves of the
same target left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .errors import OutputFileError

#: A temporary left by a save older than this is removed even if its process id is in use again.
STALE_AFTER_S = 24 * 3600.0


def temporary_path(path: Path) -> Path:
    """The hidden temporary file a save of ``path`` writes first: ``.NAME.PID.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def stale_temporaries(path: Path) -> list[Path]:
    """Temporaries of ``path`` left by saves whose process is gone (or that are older than a day)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    parent = path.parent if str(path.parent) else Path(".")
    found = []
    with contextlib.suppress(OSError):
        for item in parent.iterdir():
            match = pattern.match(item.name)
            if match is None or int(match.group(1)) == os.getpid() or not item.is_file():
                continue
            try:
                old = time.time() - item.stat().st_mtime > STALE_AFTER_S
            except OSError:
                continue
            if old or not _alive(int(match.group(1))):
                found.append(item)
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def write_atomically(writers: Mapping[Path, Callable[[Path], object]]) -> None:
    """Write one or more files atomically: each to its temporary name first, then all renamed.

    Parameters
    ----------
    writers : mapping of Path to callable
        Target path -> function writing the file's content to the path it is given.

    An error while writing leaves every earlier version of the targets untouched and no
    temporary behind; temporaries of the same targets left by killed saves are removed first.
    """
    temps: dict[Path, Path] = {}
    try:
        for path, write in writers.items():
            for stale in stale_temporaries(path):
                with contextlib.suppress(OSError):
                    stale.unlink()
            tmp = temporary_path(path)
            temps[path] = tmp
            write(tmp)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if tmp.exists():
                tmp.unlink()


def check_output(path: str | Path, *, option: str, what: str, example: str, suffixes: Sequence[str] = (),
                 inputs: Iterable[str | Path] = (), is_ours: Callable[[Path], bool] | None = None) -> Path:
    """Refuse an output path that cannot be written safely, before any work is done.

    Parameters
    ----------
    path : str or Path
        Where the command will write.
    option : str
        The option that named it (``--out``), for messages.
    what : str
        What is written there, e.g. ``"fit"``, for messages.
    example : str
        A file name to suggest, e.g. ``"fit.nc"``.
    suffixes : sequence of str, default ()
        Accepted file extensions (lower case, with the dot); the first is the suggested one.
    inputs : iterable of str or Path, default ()
        The command's input files: the output may be none of them.
    is_ours : callable, optional
        Whether an existing file at ``path`` was written by bayes-scaling (then it may be
        replaced); without it any existing file may be replaced.

    Returns
    -------
    Path

    Raises
    ------
    OutputFileError
        Naming the path, the option, what is wrong and what to do instead.
    """
    path = Path(path)
    where = f"{path} ({option})"
    if path.is_dir():
        raise OutputFileError(f"{where}: is a folder; give a file name inside it, e.g. {path / example}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputFileError(f"{where}: a {what} is written as {' or '.join(suffixes)}; give a path such as "
                              f"{path.with_suffix(suffixes[0]).name if path.stem else example}")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputFileError(f"{where}: {parent} is a file, not a folder; write elsewhere")
    if not parent.is_dir():
        raise OutputFileError(f"{where}: folder {parent} does not exist; create it first (mkdir -p {parent}) "
                              "or write elsewhere")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputFileError(f"{where}: folder {parent} is not writable; write elsewhere")
    if path.exists():
        for source in inputs:
            if _same_file(path, Path(source)):
                raise OutputFileError(f"{where}: is the input {source}; writing the {what} there would "
                                      f"destroy it; choose another path, e.g. {example}")
        if not path.is_file():
            raise OutputFileError(f"{where}: exists and is not a regular file; choose another path")
        if is_ours is not None and not is_ours(path):
            raise OutputFileError(f"{where}: exists and is not a {what} written by bayes-scaling; refusing to "
                                  "overwrite it: delete it yourself or choose another path")
    return path


__all__ = ["check_output", "stale_temporaries", "temporary_path", "write_atomically"]
