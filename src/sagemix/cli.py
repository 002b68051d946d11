"""The ``sagemix`` command line (also ``python -m sagemix``).

Each subcommand lives in ``sagemix/commands/<name>.py`` and defines ``add_parser(subparsers)`` (which
returns its parser) and ``run(args) -> int``. Modules are imported lazily, so ``sagemix --help`` stays
fast and a missing optional extra only matters to the command that needs it.

Before anything imports torch, :func:`main` sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it:
OpenMP threads then sleep instead of spinning while they wait, which on a shared machine halved the
CPU time under load and left the results bit-identical. Errors raised by the library name its
arguments (``download=True``, ``root=...``); :func:`cli_message` rewrites them in the CLI's options.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

COMMANDS = ["train", "eval", "demo", "list", "bench", "show", "compare", "report"]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sagemix",
        description="Saliency-guided mixing data augmentation: train, evaluate, benchmark and compare "
                    "SAGE, Mixup, Manifold Mixup, CutMix, SaliencyMix, Puzzle Mix and Co-Mixup.")
    parser.add_argument("--version", action="version", version=f"sagemix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"sagemix.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"sagemix.commands.{name}":
                continue  # not implemented in this build
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


# Library argument names in error messages -> the CLI's options (applied in order).
_API_TO_CLI = (
    (r"pass resume=True \(--resume\)", "pass --resume"),
    (r"overwrite=True \(--overwrite\)", "--overwrite"),
    (r"choose another folder \(--out\)", "choose another folder with --out"),
    (r"pass resume=True", "pass --resume"),
    (r"overwrite=True", "--overwrite"),
    (r"pass download=True", "pass --download"),
    (r"\broot=(['\"])", r"--data-dir \1"),
    (r"\broot is required", "--data-dir is required"),
)


def cli_message(message: str) -> str:
    """``message`` with the library's argument names (``download=True``, ``root='...'``) as CLI options."""
    for pattern, repl in _API_TO_CLI:
        message = re.sub(pattern, repl, message)
    return message


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand; returns the exit status (2: bad input, 130: Ctrl-C)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch initialises OpenMP
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        # Errors raised at our boundaries carry a message meant for the user.
        print(f"sagemix {args.command}: error: {cli_message(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sagemix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
