"""``sagemix list``: the methods, models, datasets and recipes this build offers.

The names are the registry names the CLI, the recipes and the Python API share (SAGE, Ma et al.,
BMVC 2022, https://arxiv.org/abs/2211.00113, and the methods it is compared with).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

KINDS = ("methods", "models", "datasets", "recipes")

EXAMPLES = """\
examples:
  sagemix list                 # everything
  sagemix list methods         # mixing methods, and whether they need gradient saliency
  sagemix list recipes --json  # machine-readable
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``list``; returns its parser."""
    p = subparsers.add_parser("list", help="list methods, models, datasets and recipes",
                              description="List the mixing methods, models, datasets and training recipes "
                                          "available in this build (the names `sagemix train` accepts).",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", nargs="?", choices=[*KINDS, "all"], default="all", help="what to list (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _first_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if not doc and getattr(obj, "__module__", None) in sys.modules:  # fall back on the module's docstring
        doc = (sys.modules[obj.__module__].__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def collect(kind: str) -> list[dict[str, str]]:
    """Rows ``{"name", "description"}`` (methods also ``"saliency"``) of one kind."""
    if kind == "methods":
        from ..mixers import get_mixer_class, list_mixers

        rows = []
        for name in list_mixers():
            cls = get_mixer_class(name)
            needs = "gradient" if cls.needs_gradient_saliency else ("model stages" if cls.mixes_hidden else "-")
            rows.append({"name": name, "saliency": needs, "description": _first_line(cls)})
        return rows
    if kind == "models":
        from ..models import get_model_fn, list_models

        return [{"name": n, "description": _first_line(get_model_fn(n))} for n in list_models()]
    if kind == "datasets":
        from ..data import get_dataset_fn, list_datasets

        return [{"name": n, "description": _first_line(get_dataset_fn(n))} for n in list_datasets()]
    if kind == "recipes":
        from ..train.config import list_recipes, recipe_description

        return [{"name": n, "description": recipe_description(n)} for n in list_recipes()]
    raise ValueError(f"kind must be one of {KINDS} or 'all', got {kind!r}")


def run(args: argparse.Namespace) -> int:
    """Print the lists; returns 0."""
    kinds = KINDS if args.kind == "all" else (args.kind,)
    result = {k: collect(k) for k in kinds}
    if args.json:
        print(json.dumps(result if args.kind == "all" else result[args.kind], indent=2))
        return 0
    for kind in kinds:
        rows = result[kind]
        print(f"{kind} ({len(rows)}):")
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            extra = ({"gradient": "[needs gradient saliency] ", "model stages": "[needs the model's stages] "}
                     .get(r.get("saliency", "-"), ""))
            desc = r["description"]
            if len(desc) > 100:
                desc = desc[:97] + "..."
            print(f"  {r['name']:<{width}}  {extra}{desc}")
        print()
    return 0
