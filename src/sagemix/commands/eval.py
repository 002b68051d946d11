"""``sagemix eval``: evaluate a trained run: clean accuracy, corruptions, adversarial, few-shot.

The evaluations of SAGE (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal Rearrangements",
BMVC 2022, https://arxiv.org/abs/2211.00113): clean top-1 accuracy (always), accuracy under the
CIFAR-C corruptions (the official release for CIFAR, or generated with the same operations for any
32x32 dataset), under FGSM at eps = 8/255 (PGD as an option), and few-shot transfer of the frozen
backbone to novel classes. Results go to ``<run>/eval/`` as JSON and CSV (atomic writes), and a
table is printed.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXAMPLES = """\
examples:
  sagemix eval runs/cifar10-preactresnet18-sage-s0 --corruptions ~/data/CIFAR-10-C --adversarial fgsm
  sagemix eval runs/off-sage --corruptions                   # offline: generates the -C set (cached)
  sagemix eval runs/off-sage --adversarial pgd --eps 8/255 --pgd-steps 20
  sagemix train offline --set dataset_kwargs.classes=[0,1,2,3,4] --out runs/off-base-sage --method sage
  sagemix eval runs/off-base-sage --fewshot --novel-classes 5-9 --shots 1 5 --classifier logreg proto
  sagemix eval runs/mini-sage --fewshot --data-dir ~/data/mini-imagenet     # novel = test.csv classes

Writes <run>/eval/clean.json, corruptions.json|csv, adversarial.json|csv, fewshot.json|csv and
summary.json|csv (the printed table). Few-shot episodes are kept as JSON files (--episodes-dir) so
every method is judged on the same tasks.
"""

_OFFICIAL_C = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval``; returns its parser."""
    p = subparsers.add_parser(
        "eval", help="evaluate a run: clean, corruptions, adversarial (FGSM/PGD), few-shot",
        description="Evaluate a trained run (or checkpoint): clean test accuracy always; optionally accuracy "
                    "under CIFAR-C corruptions, under FGSM/PGD, and few-shot transfer to novel classes. "
                    "Results are written to <run>/eval/ and printed as a table.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="CHECKPOINT_OR_RUN_DIR", help="a run folder (with checkpoint.pt) or a checkpoint file")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the run's)")
    p.add_argument("--data-dir", dest="data_dir", help="dataset folder (default: the run's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=500, help="images per forward (default 500)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate a fixed random subset of this many test images (quick checks)")
    p.add_argument("--out", default=None, help="output folder (default <run>/eval)")
    g = p.add_argument_group("corruptions")
    g.add_argument("--corruptions", nargs="?", const="", default=None, metavar="DIR",
                   help="evaluate on corrupted test images: the official CIFAR-10-C/100-C folder for cifar10/100 "
                        "(default: <data-dir>/CIFAR-10-C), else a folder where the corrupted set is generated and "
                        "cached (default <run>/eval/corrupted-<dataset>-seed<S>)")
    g.add_argument("--generate-corruptions", dest="generate_corruptions", action="store_true",
                   help="generate the corrupted test set (also for CIFAR) instead of reading an official release")
    g.add_argument("--extra-corruptions", dest="extra_corruptions", action="store_true",
                   help="also the 4 extra corruptions (speckle_noise gaussian_blur spatter saturate)")
    g.add_argument("--corruption-names", dest="corruption_names", nargs="+", default=None, metavar="NAME",
                   help="only these corruptions (default: the 15 benchmark ones)")
    g.add_argument("--corruption-seed", dest="corruption_seed", type=int, default=0,
                   help="seed of the generated corruptions (default 0)")
    g = p.add_argument_group("adversarial")
    g.add_argument("--adversarial", nargs="+", choices=["fgsm", "pgd"], default=None, metavar="ATTACK",
                   help="fgsm (the paper's) and/or pgd")
    g.add_argument("--eps", default="8/255", help="L-inf radius in 0-1 pixel space, a number or fraction (8/255)")
    g.add_argument("--pgd-steps", dest="pgd_steps", type=int, default=10, help="PGD steps (default 10)")
    g.add_argument("--pgd-step-size", dest="pgd_step_size", default=None,
                   help="PGD step size (default 2.5*eps/steps), number or fraction")
    g.add_argument("--no-random-start", dest="random_start", action="store_false",
                   help="PGD starts from the clean image")
    g.add_argument("--attack-seed", dest="attack_seed", type=int, default=0, help="PGD random-start seed")
    g = p.add_argument_group("few-shot")
    g.add_argument("--fewshot", action="store_true", help="few-shot transfer of the frozen backbone")
    g.add_argument("--ways", type=int, default=5, help="classes per episode (default 5)")
    g.add_argument("--shots", type=int, nargs="+", default=[1, 5], help="support images per class (default 1 5)")
    g.add_argument("--queries", type=int, default=15, help="query images per class (default 15)")
    g.add_argument("--episodes", type=int, default=600, help="episodes per setting (default 600)")
    g.add_argument("--novel-classes", dest="novel_classes", default=None, metavar="SPEC",
                   help="novel class labels, e.g. 5-9 (default: the classes the backbone was not trained on; "
                        "for mini_imagenet every class of --novel-split)")
    g.add_argument("--novel-split", dest="novel_split", default="test", choices=["test", "val"],
                   help="mini_imagenet split of the novel classes (default test)")
    g.add_argument("--classifier", nargs="+", default=["logreg"], choices=["logreg", "proto", "cosine"],
                   help="classifier(s) on the features (default logreg)")
    g.add_argument("--fewshot-seed", dest="fewshot_seed", type=int, default=0, help="episode seed (default 0)")
    g.add_argument("--episodes-dir", dest="episodes_dir", default=None,
                   help="where episode files are kept and reused (default $SAGEMIX_CACHE/episodes or "
                        "~/.cache/sagemix/episodes)")
    return p


# ---------------------------------------------------------------------------------------------- helpers
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..utils import atomic_write_text

    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def _cache_dir() -> Path:
    return Path(os.environ.get("SAGEMIX_CACHE", Path.home() / ".cache" / "sagemix"))


def _check_positive(name: str, value: Any) -> None:
    if value is not None and value < 1:
        raise ValueError(f"--{name} must be a positive int, got {value}")


def _resolve_run(path: str) -> tuple[Path, Path]:
    p = Path(path).expanduser()
    if p.is_dir():
        ckpt = p / "checkpoint.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"run folder {str(p)!r} has no checkpoint.pt")
        return p, ckpt
    if p.is_file():
        return p.parent, p
    raise FileNotFoundError(f"no run folder or checkpoint at {str(p)!r}")


def _subset(data: Any, limit: int | None, seed: int = 0) -> Any:
    import dataclasses

    import torch

    n = len(data.labels)
    if limit is None or limit >= n:
        return data
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return dataclasses.replace(data, images=data.images[idx], labels=data.labels[idx])


# ---------------------------------------------------------------------------------------------- parts
def _corruptions(args: argparse.Namespace, model: Any, test: Any, dataset: str, data_dir: str | None,
                 out_dir: Path, mean: Any, std: Any, device: Any) -> dict[str, Any]:
    try:
        from ..evaluate.robustness import evaluate_corruptions, results_to_rows
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("sagemix"):
            raise ImportError("sagemix.evaluate.robustness is not available in this build") from e
        raise
    if args.corruption_names is not None:
        from ..evaluate.corruptions import ALL_CORRUPTIONS

        bad = [c for c in args.corruption_names if c not in ALL_CORRUPTIONS]
        if bad:
            raise ValueError(f"--corruption-names: unknown {bad}; expected names among {list(ALL_CORRUPTIONS)}")
    official = dataset in _OFFICIAL_C and not args.generate_corruptions
    if official:
        if args.corruptions:
            c_dir = Path(args.corruptions).expanduser()
        else:
            roots = [Path(data_dir).expanduser()] if data_dir else []
            roots.append(Path(os.environ.get("SAGEMIX_DATA", "data")))
            cands = [r / _OFFICIAL_C[dataset] for r in roots] + [r.parent / _OFFICIAL_C[dataset] for r in roots]
            found = [c for c in cands if c.is_dir()]
            if not found:
                raise FileNotFoundError(
                    f"--corruptions: no {_OFFICIAL_C[dataset]} folder found (looked in {[str(c) for c in cands]}); "
                    f"download {_OFFICIAL_C[dataset]} (Hendrycks & Dietterich, https://zenodo.org/records/2535967 "
                    f"and 3555552), pass its folder (--corruptions DIR), or add --generate-corruptions")
            c_dir = found[0]
        info = {"source": "official", "dir": str(c_dir)}
    else:
        from ..evaluate.corruptions import generate_corrupted

        h, w = test.images.shape[-2:]
        if (h, w) != (32, 32):
            raise ValueError(f"--corruptions: the CIFAR-C operations are defined for 32x32 images, but {dataset} "
                             f"test images are {h}x{w}")
        c_dir = (Path(args.corruptions).expanduser() if args.corruptions
                 else out_dir / (f"corrupted-{dataset}-seed{args.corruption_seed}"
                                 + (f"-n{len(test.labels)}" if args.limit else "")))
        print(f"generating the corrupted test set in {c_dir} (cached; seed {args.corruption_seed}) ...",
              file=sys.stderr)
        generate_corrupted(test.images.permute(0, 2, 3, 1).contiguous().numpy(), test.labels.numpy(), c_dir,
                           corruptions=args.corruption_names, include_extra=args.extra_corruptions,
                           seed=args.corruption_seed, progress=sys.stderr.isatty())
        info = {"source": "generated", "dir": str(c_dir), "seed": args.corruption_seed}
    res = evaluate_corruptions(model, c_dir, mean=mean, std=std, device=device, batch_size=args.batch_size,
                               corruptions=args.corruption_names, include_extra=args.extra_corruptions)
    rows = results_to_rows(res)
    from ..utils import atomic_write_json

    atomic_write_json(out_dir / "corruptions.json", {"corrupted_set": info, **res})
    _write_csv(out_dir / "corruptions.csv", rows)
    return res


def _adversarial(args: argparse.Namespace, model: Any, test: Any, out_dir: Path, mean: Any, std: Any,
                 device: Any) -> dict[str, Any]:
    from ..evaluate.adversarial import adversarial_accuracy, parse_eps
    from ..utils import atomic_write_json

    eps = parse_eps(args.eps)
    step = parse_eps(args.pgd_step_size) if args.pgd_step_size is not None else None
    out: dict[str, Any] = {}
    for attack in dict.fromkeys(args.adversarial):
        out[attack] = adversarial_accuracy(model, test.images, test.labels, attack=attack, eps=eps, mean=mean,
                                           std=std, device=device, batch_size=args.batch_size,
                                           steps=args.pgd_steps, step_size=step, random_start=args.random_start,
                                           seed=args.attack_seed)
        out[attack]["eps_str"] = str(args.eps)
    # Top level: the primary attack (FGSM, the paper's, when requested); every attack under "attacks".
    primary = "fgsm" if "fgsm" in out else next(iter(out))
    doc = {"attack": primary, "eps": eps, "eps_str": str(args.eps), "accuracy": out[primary]["adv_acc"],
           "clean_accuracy": out[primary]["clean_acc"], "n": out[primary]["n"],
           "threat_model": "L-inf ball in 0-1 pixel space, clamped to [0, 1], then normalised; model in eval mode",
           "attacks": out}
    atomic_write_json(out_dir / "adversarial.json", doc)
    _write_csv(out_dir / "adversarial.csv", list(out.values()))
    return out


def _fewshot(args: argparse.Namespace, model: Any, config: dict[str, Any], dataset: str, data_dir: str | None,
             out_dir: Path, mean: Any, std: Any, device: Any) -> dict[str, Any]:
    from ..data import load_dataset
    from ..evaluate.fewshot import evaluate_fewshot, parse_classes
    from ..utils import atomic_write_json

    same = dataset == config.get("dataset")
    kwargs = dict(config.get("dataset_kwargs") or {}) if same else {}
    kwargs.pop("classes", None)
    base_names = [str(c) for c in config.get("classes") or []]
    if dataset.startswith("mini_imagenet"):
        for k in ("split", "base_holdout"):
            kwargs.pop(k, None)
        if dataset == "mini_imagenet":
            kwargs["split"] = args.novel_split
        split_name = args.novel_split if dataset == "mini_imagenet" else dataset.rsplit("_", 1)[-1]
        novel = load_dataset(dataset, root=data_dir, train=False, image_size=config.get("image_size"), **kwargs)
    else:
        split_name = "test"
        novel = load_dataset(dataset, root=data_dir, train=False, image_size=config.get("image_size"),
                             download=False, seed=int(config.get("data_seed", 0)) if same else 0, **kwargs)
    names = list(novel.classes)
    base_idx = [i for i, n in enumerate(names) if n in set(base_names)]
    classes = parse_classes(args.novel_classes)
    if classes is None:
        classes = [i for i in range(len(names)) if i not in set(base_idx)]
        if not classes:
            raise ValueError(f"--fewshot: the backbone was trained on every class of {dataset} ({len(names)}), so "
                             "there are no novel classes; train on base classes (e.g. --set "
                             "dataset_kwargs.classes=[0,1,2,3,4]) or pass --novel-classes")
    if classes[-1] >= len(names):
        raise ValueError(f"--novel-classes {args.novel_classes}: {dataset} has classes 0-{len(names) - 1}")
    if len(classes) < args.ways:
        raise ValueError(f"--ways {args.ways} needs at least {args.ways} novel classes, got {len(classes)}: {classes}")
    episodes_dir = Path(args.episodes_dir).expanduser() if args.episodes_dir else _cache_dir() / "episodes"
    rows = evaluate_fewshot(model, novel.images, novel.labels, mean=mean, std=std, device=device,
                            batch_size=args.batch_size, ways=args.ways, shots=tuple(args.shots),
                            queries=args.queries, episodes=args.episodes, classes=classes,
                            base_classes=base_idx, classifiers=tuple(args.classifier), seed=args.fewshot_seed,
                            episodes_dir=episodes_dir, tag=f"{dataset}-{split_name}")
    res = {"dataset": dataset, "split": split_name, "classifier": args.classifier[0], "novel_classes": classes,
           "novel_class_names": [names[i] for i in classes], "base_class_names": base_names,
           "features": "penultimate (input of the final linear layer), L2-normalised",
           "ci": "1.96 * std(ddof=0) / sqrt(episodes)", "results": rows}
    atomic_write_json(out_dir / "fewshot.json", res)
    _write_csv(out_dir / "fewshot.csv", [{k: v for k, v in r.items() if k != "classes"} for r in rows])
    return res


# ---------------------------------------------------------------------------------------------- run
def _fmt_table(rows: list[dict[str, Any]]) -> str:
    head = ["evaluation", "setting", "accuracy (%)"]
    body = [[r["evaluation"], r["setting"],
             f"{r['acc']:.2f}" + (f" ± {r['ci95']:.2f}" if r.get("ci95") is not None else "")] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the requested evaluations (see the module docstring); returns the exit status."""
    for name in ("batch_size", "limit", "ways", "queries", "episodes", "pgd_steps"):
        _check_positive(name.replace("_", "-"), getattr(args, name))
    for s in args.shots:
        _check_positive("shots", s)
    from ..data import load_dataset
    from ..evaluate.accuracy import accuracy, resolve_device
    from ..train.checkpoint import load_model
    from ..utils import atomic_write_json

    run_dir, ckpt = _resolve_run(args.run)
    device = resolve_device(args.device)
    model, config = load_model(ckpt, map_location=device)
    dataset = args.dataset or config.get("dataset")
    if not dataset:
        raise ValueError("the run's config names no dataset; pass --dataset")
    same = dataset == config.get("dataset")
    data_dir = args.data_dir if args.data_dir is not None else (config.get("data_dir") if same else None)
    mean = tuple(config["mean"]) if config.get("mean") else None
    std = tuple(config["std"]) if config.get("std") else None
    out_dir = Path(args.out).expanduser() if args.out else run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary: list[dict[str, Any]] = []

    kwargs = dict(config.get("dataset_kwargs") or {}) if same else {}
    test = load_dataset(dataset, root=data_dir, train=False, image_size=config.get("image_size"),
                        seed=int(config.get("data_seed", 0)) if same else 0, **kwargs)
    test = _subset(test, args.limit)
    if mean is None:
        mean, std = test.mean, test.std
    if config.get("num_classes") not in (None, test.num_classes):
        raise ValueError(f"the run's model has {config['num_classes']} classes but the {dataset} test split has "
                         f"{test.num_classes}; clean accuracy needs the training label space (use --fewshot for "
                         "novel classes)")
    clean = accuracy(model, test.images, test.labels, mean=mean, std=std, device=device, batch_size=args.batch_size)
    meta = {"checkpoint": str(ckpt), "method": config.get("method"), "model": config.get("model"),
            "train_dataset": config.get("dataset"), "epoch": config.get("epoch"), "seed": config.get("seed")}
    atomic_write_json(out_dir / "clean.json", {**meta, "dataset": dataset, "split": "test", "n": len(test.labels),
                                               "acc": clean, "limit": args.limit})
    summary.append({"evaluation": "clean", "setting": f"{dataset} test ({len(test.labels)} images)", "acc": clean})

    if args.corruptions is not None or args.generate_corruptions:
        res = _corruptions(args, model, test, dataset, data_dir, out_dir, mean, std, device)
        mean_acc = res.get("mean_acc")
        if isinstance(mean_acc, (int, float)) and mean_acc == mean_acc:
            n_c = len(res.get("mean_over") or args.corruption_names or range(15))
            summary.append({"evaluation": "corruptions", "setting": f"mean over {n_c} corruptions x 5 severities",
                            "acc": float(mean_acc)})
        extra = res.get("extra_mean_acc")
        if isinstance(extra, (int, float)) and extra == extra:
            summary.append({"evaluation": "corruptions", "setting": "mean over the extra corruptions",
                            "acc": float(extra)})
    if args.adversarial:
        for attack, r in _adversarial(args, model, test, out_dir, mean, std, device).items():
            setting = f"eps={args.eps}" + (f", {r['steps']} steps" if attack == "pgd" else "")
            summary.append({"evaluation": attack, "setting": setting, "acc": r["adv_acc"]})
    if args.fewshot:
        res = _fewshot(args, model, config, dataset, data_dir, out_dir, mean, std, device)
        for r in res["results"]:
            summary.append({"evaluation": "fewshot",
                            "setting": f"{r['ways']}-way {r['shots']}-shot {r['classifier']} ({r['episodes']} ep.)",
                            "acc": r["acc"], "ci95": r["ci95"]})

    atomic_write_json(out_dir / "summary.json", {**meta, "device": str(device),
                                                 "eval_time_s": time.perf_counter() - t0, "rows": summary})
    _write_csv(out_dir / "summary.csv", summary)
    print(_fmt_table(summary))
    print(f"results in {out_dir}")
    return 0
