"""``sagemix list``: the methods, models, datasets and recipes this build offers.

The names are the registry names the CLI, the recipes and the Python API share (SAGE, Ma et al.,
BMVC 2022, https://arxiv.org/abs/2211.00113, and the methods it is compared with).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import add_command

KINDS = ("methods", "models", "datasets", "recipes")

DESCRIPTION = """\
List the mixing methods, models, datasets and training recipes available in this build (the names
`sagemix train` accepts).
"""

EXAMPLES = """\
examples:
  sagemix list                 # everything
  sagemix list methods         # mixing methods, and whether they need gradient saliency
  sagemix list recipes --json  # machine-readable
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``list``; returns its parser."""
    p = add_command(subparsers, "list", help="list methods, models, datasets and recipes",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("kind", nargs="?", choices=[*KINDS, "all"], default="all", help="what to list (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


# One-line summaries of the registry entries (what a user picks by); entries not listed here (a
# plug-in registered later) get the first sentence of their docstring.
SUMMARIES: dict[str, dict[str, str]] = {
    "methods": {
        "comixup": "Co-Mixup (Kim et al., ICLR 2021): several inputs mixed per output by a graph cut",
        "cutmix": "CutMix (Yun et al., ICCV 2019): a random box of the partner pasted in",
        "cutout": "Cutout (DeVries & Taylor, 2017): a random square erased, labels unchanged",
        "manifold_mixup": "Manifold Mixup (Verma et al., ICML 2019): Mixup of a random hidden layer",
        "mixup": "Mixup (Zhang et al., ICLR 2018): pixel-wise blend of two images and their labels",
        "puzzlemix": "Puzzle Mix (Kim et al., ICML 2020): saliency-guided graph-cut masks and transport",
        "sage": "SAGE (Ma et al., BMVC 2022): saliency-guided blend at the best-shifted position",
        "saliencymix": "SaliencyMix (Uddin et al., ICLR 2021): CutMix box around the most salient point",
        "vanilla": "no mixing: the baseline",
    },
    "models": {
        "preactresnet18": "PreActResNet18 (~11.2M parameters), the CIFAR protocol's network",
        "resnext29_4_24": "ResNeXt29, cardinality 4, base width 24 (~4.8M parameters)",
        "smallnet": "SmallNet (~0.1M parameters), a fast network for CPU runs and the demo",
        "wrn16_8": "Wide ResNet 16-8 (~11.0M parameters)",
    },
    "datasets": {
        "cifar10": "CIFAR-10: 32x32, 10 classes, 50k/10k images (--data-dir, --download)",
        "cifar100": "CIFAR-100: 32x32, 100 classes, 50k/10k images (--data-dir, --download)",
        "fashion_mnist": "Fashion-MNIST: 28x28 grayscale as 3 channels, 10 classes, 60k/10k (--data-dir or dataset-fashion-mnist)",
        "imagefolder": "your own images: --data-dir with one sub-folder per class (or train/ and test/)",
        "mini_imagenet": "mini-ImageNet: 84x84, 100 classes in train/val/test splits (--data-dir)",
        "mini_imagenet_test": "mini-ImageNet's 20 test classes (few-shot novel classes)",
        "mini_imagenet_val": "mini-ImageNet's 16 validation classes",
        "offline": "MNIST digits on scikit-image photographs, generated locally: no download",
    },
}


def _first_line(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring (or its module's), without reST markup."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if not doc and getattr(obj, "__module__", None) in sys.modules:  # fall back on the module's docstring
        doc = (sys.modules[obj.__module__].__doc__ or "").strip()
    para = " ".join(doc.split("\n\n")[0].split()) if doc else ""
    para = para.replace("``", "")
    end = para.find(". ")
    return para[:end + 1] if end >= 0 else para


def _summary(kind: str, name: str, obj: Any) -> str:
    return SUMMARIES.get(kind, {}).get(name) or _first_line(obj)


def _recipe_summary(name: str) -> str:
    """``<kind of recipe>: <dataset> / <model>, <epochs> epochs, batch <B>`` from a bundled recipe."""
    from ..train.config import load_recipe, recipe_description

    r = load_recipe(name)
    kind = recipe_description(name).split(":")[0]
    if kind.count("(") > kind.count(")") or len(kind) > 50:  # a colon inside a parenthesis, or a long aside:
        kind = kind.split("(")[0]                              # the words before it
    kind = kind.strip() or "recipe"
    return f"{kind}: {r.get('dataset', 'cifar10')} / {r.get('model', 'preactresnet18')}, " \
           f"{r.get('epochs', 300)} epochs, batch {r.get('batch_size', 100)}"


def collect(kind: str) -> list[dict[str, str]]:
    """Rows ``{"name", "description"}`` (methods also ``"saliency"``) of one kind."""
    if kind == "methods":
        from ..mixers import get_mixer_class, list_mixers

        rows = []
        for name in list_mixers():
            cls = get_mixer_class(name)
            needs = "gradient" if cls.needs_gradient_saliency else ("model stages" if cls.mixes_hidden else "-")
            rows.append({"name": name, "saliency": needs, "description": _summary("methods", name, cls)})
        return rows
    if kind == "models":
        from ..models import get_model_fn, list_models

        return [{"name": n, "description": _summary("models", n, get_model_fn(n))} for n in list_models()]
    if kind == "datasets":
        from ..data import get_dataset_fn, list_datasets

        return [{"name": n, "description": _summary("datasets", n, get_dataset_fn(n))} for n in list_datasets()]
    if kind == "recipes":
        from ..train.config import list_recipes

        return [{"name": n, "description": _recipe_summary(n)} for n in list_recipes()]
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
            print(f"  {r['name']:<{width}}  {extra}{desc}")
        print()
    return 0
