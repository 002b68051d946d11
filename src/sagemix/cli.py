"""The ``sagemix`` command line (also ``python -m sagemix``).

Each subcommand lives in ``sagemix/commands/<name>.py`` and defines ``add_parser(subparsers)`` (which
returns its parser) and ``run(args) -> int``. Modules are imported lazily, so ``sagemix --help`` stays
fast and a missing optional extra only matters to the command that needs it.
"""
from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        # Errors raised at our boundaries carry a message meant for the user.
        print(f"sagemix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sagemix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
