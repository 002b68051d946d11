"""What the commands share: the ``--threads`` and progress options, early checks of output folders and names.

- :func:`add_threads_argument` / :func:`apply_threads`: ``--threads auto|N``. ``auto`` (the default)
  uses one torch thread when the machine is busy (the 1-minute load average plus this process
  exceeds the CPUs this process may use), else torch's default. On a shared 2-core machine one
  thread per process was several times faster than torch's default (which oversubscribes the cores).
- :func:`add_progress_arguments` / :func:`progress_enabled`: progress bars on by default when
  standard error is a terminal, off otherwise (CI, pipes), ``--progress``/``--no-progress`` to choose.
- :func:`check_out_dir`: an output folder is created and checked writable before any work.
- :func:`check_methods`: method names checked against the registry before any work.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable

from ..checks import is_int

__all__ = ["add_command", "usable_cpus", "add_threads_argument", "parse_threads", "auto_threads", "apply_threads",
           "add_progress_arguments", "progress_enabled", "check_out_dir", "check_methods", "check_mixer_options",
           "report_missing_extras", "parse_seed"]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_threads(load: float | None = None, cpus: int | None = None) -> int:
    """The torch thread count ``--threads auto`` picks: 1 on a busy machine, else 0 (torch's default).

    Args:
        load: the 1-minute load average (default: ``os.getloadavg()``; 0 where the OS has none).
        cpus: the usable CPUs (default: :func:`usable_cpus`).

    Returns:
        1 when ``load + 1 > cpus`` (other processes already occupy the cores, so more threads would
        only wait on each other), else 0 meaning torch's default.
    """
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    cpus = usable_cpus() if cpus is None else cpus
    return 1 if cpus <= 1 or load + 1.0 > cpus else 0


def parse_threads(text: str) -> int | str:
    """argparse type of ``--threads``: ``"auto"`` or an int >= 0 (0: torch's default)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of threads >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of threads >= 0, got {text!r}")
    return value


def parse_seed(text: str) -> int:
    """argparse type of ``--seed``: an int from 0 to 2**64 - 1 (the seeds torch's generators take)."""
    from ..train.config import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**64 - 1 (torch's seed range), got {text!r}")
    return value


def add_command(subparsers: Any, name: str, *, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """Register subcommand ``name``: its one-line ``help``, its ``description`` (re-wrapped at 100 columns)
    and its ``examples`` (printed as written, after the options)."""
    return subparsers.add_parser(name, help=help, description=textwrap.fill(" ".join(description.split()), 100),
                                 epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--threads auto|N`` (default auto) to ``p``."""
    p.add_argument("--threads", type=parse_threads, default="auto", metavar="auto|N",
                   help="torch CPU threads: auto (default: 1 when the machine is busy, else torch's default), "
                        "N, or 0 for torch's default. On a shared machine 1 thread per process is fastest")


def apply_threads(threads: int | str) -> int:
    """Set torch's CPU threads for ``--threads`` and return the count in use (auto resolved)."""
    import torch

    n = auto_threads() if threads == "auto" else threads
    if not is_int(n) or n < 0:
        raise ValueError(f"--threads must be 'auto' or an int >= 0, got {threads!r}")
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--progress`` / ``--no-progress`` (default: on when standard error is a terminal)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show progress bars (default: when standard error is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def progress_enabled(flag: bool | None) -> bool:
    """``flag`` when given, else whether standard error is an interactive terminal."""
    if flag is not None:
        return bool(flag)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``path`` and check that a file can be written there, before any work.

    Raises:
        ValueError: it is a file, or it cannot be created or written (naming the option and the path).
    """
    from ..utils import folder_write_error

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {str(out)!r} is a file; expected a folder")
    e = folder_write_error(out)
    if e is not None:
        raise ValueError(f"{option} {str(out)!r} is not a writable folder ({e.strerror or e}); "
                         "choose another folder")
    return out


def check_methods(methods: Iterable[str] | None, option: str = "--methods") -> list[str] | None:
    """Registry names of ``methods`` (``-`` read as ``_``, lower case), refusing unknown ones.

    Raises:
        ValueError: an unknown method, naming the option and listing the registered ones.
    """
    if methods is None:
        return None
    from ..mixers.registry import method_names

    return method_names(methods, option)


def report_missing_extras(methods: Iterable[str], command: str) -> dict[str, str]:
    """The methods whose optional extra is missing, each announced on standard error as skipped."""
    from ..extras import missing_extras

    missing = missing_extras(list(methods))
    for m, why in missing.items():
        print(f"sagemix {command}: skipping {m}: {why}", file=sys.stderr)
    return missing


def check_mixer_options(method: str, options: dict[str, Any], option: str, *, num_classes: int = 10) -> None:
    """:func:`sagemix.train.setup.check_mixer_options`, its errors naming the command-line ``option``.

    Raises:
        ValueError: an unknown option or a bad value, naming ``option``, the method and the valid options.
    """
    from ..train.setup import check_mixer_options as check

    try:
        check(method, options, num_classes=num_classes)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None
