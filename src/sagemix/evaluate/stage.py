"""The evaluation stage: evaluate a run folder and write ``<run>/eval/*``.

The evaluations of SAGE (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal Rearrangements",
BMVC 2022, https://arxiv.org/abs/2211.00113): clean top-1 accuracy (always), accuracy under the
CIFAR-C corruptions (the official release for CIFAR, or generated with the same operations for any
32x32 dataset), under FGSM at eps = 8/255 (PGD as an option), and few-shot transfer of the frozen
backbone to novel classes. :func:`evaluate_run` runs those that :class:`EvalOptions` asks for and
writes the results as JSON and CSV (atomic writes) into the run's ``eval/`` folder (file names:
:mod:`sagemix.run_folder`). ``sagemix eval`` parses its arguments into :class:`EvalOptions` and calls
it; ``sagemix compare`` calls it in process.

Example:
    >>> from sagemix.evaluate import EvalOptions, evaluate_run
    >>> opts = EvalOptions(device="cpu", limit=500, adversarial=("fgsm",))
    >>> opts.expected_files()
    ['clean.json', 'adversarial.json']
    >>> result = evaluate_run("runs/off-sage", opts)        # doctest: +SKIP
    >>> result["rows"][0]["evaluation"]                      # doctest: +SKIP
    'clean'
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import run_folder as rf
from ..checks import is_int

__all__ = ["EvalOptions", "evaluate_run", "check_eval_extras", "ATTACKS", "CLASSIFIERS", "NOVEL_SPLITS"]

#: The attacks, few-shot classifiers and mini-ImageNet novel splits :class:`EvalOptions` accepts.
ATTACKS = ("fgsm", "pgd")
CLASSIFIERS = ("logreg", "proto", "cosine")
NOVEL_SPLITS = ("test", "val")
_OFFICIAL_C = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}


def _names(value: Any, name: str, choices: Sequence[str] | None = None, *, allow_empty: bool = True) -> tuple:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of names, got {value!r}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must not be empty")
    if choices is not None:
        bad = [v for v in value if v not in choices]
        if bad:
            raise ValueError(f"{name}: unknown {bad}; expected some of {list(choices)}")
    return tuple(value)


@dataclass(frozen=True)
class EvalOptions:
    """What :func:`evaluate_run` evaluates, and how (the flags of ``sagemix eval``).

    Attributes:
        dataset: dataset to evaluate on (None: the run's).
        data_dir: dataset folder (None: the run's when the dataset is the run's).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: images per forward.
        limit: evaluate a fixed random subset of this many test images (None: all).
        out: output folder (None: ``<run>/eval``).
        corruptions: False (no corruption evaluation), True (the default corrupted set: the official
            release next to the data for CIFAR, else generated into ``<out>/corrupted-...``), or a folder.
        generate_corruptions: generate the corrupted set (also for CIFAR) instead of reading a release;
            implies a corruption evaluation.
        extra_corruptions: also the 4 extra corruptions.
        corruption_names: only these corruptions (None: the 15 benchmark ones).
        corruption_seed: seed of the generated corruptions.
        adversarial: attacks among :data:`ATTACKS` (empty: none).
        eps: L-inf radius in 0-1 pixel space, a number or a fraction string (``"8/255"``): the primary one.
        extra_eps: more radii to attack at (e.g. ``("2/255",)``: a radius that does not floor every model),
            reported beside the primary one (``adversarial.json``'s ``by_eps``).
        pgd_steps, pgd_step_size, random_start, attack_seed: PGD's settings (step size None:
            2.5 * eps / steps).
        train_fit: also the eval-mode accuracy on the run's own training images (its ``train_limit`` subset,
            clean: no flip or crop), ``train_fit.json``: whether the network fits its training set.
        fewshot: few-shot transfer of the frozen backbone.
        ways, shots, queries, episodes: the episodes' shape and count.
        novel_classes: novel class labels, e.g. ``"5-9"`` (None: those the backbone was not trained on).
        novel_split: mini_imagenet split of the novel classes (:data:`NOVEL_SPLITS`).
        classifier: classifier(s) on the features, among :data:`CLASSIFIERS` (the first is primary).
        fewshot_seed: episode seed.
        episodes_dir: where episode files are kept (None: ``$SAGEMIX_CACHE/episodes``).
        threads: torch CPU threads while evaluating (None: unchanged).
    """

    dataset: str | None = None
    data_dir: str | None = None
    device: str = "auto"
    batch_size: int = 500
    limit: int | None = None
    out: str | None = None
    corruptions: bool | str = False
    generate_corruptions: bool = False
    extra_corruptions: bool = False
    corruption_names: tuple[str, ...] | None = None
    corruption_seed: int = 0
    adversarial: tuple[str, ...] = ()
    eps: str | float = "8/255"
    extra_eps: tuple[str | float, ...] = ()
    pgd_steps: int = 10
    pgd_step_size: str | float | None = None
    random_start: bool = True
    attack_seed: int = 0
    train_fit: bool = False
    fewshot: bool = False
    ways: int = 5
    shots: tuple[int, ...] = (1, 5)
    queries: int = 15
    episodes: int = 600
    novel_classes: str | None = None
    novel_split: str = "test"
    classifier: tuple[str, ...] = ("logreg",)
    fewshot_seed: int = 0
    episodes_dir: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "limit", "ways", "queries", "episodes", "pgd_steps", "threads"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a positive int, got {v!r}")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("shots", _names(self.shots, "shots"))
        for s in self.shots:
            if not is_int(s) or s < 1:
                raise ValueError(f"shots (--shots) must be positive ints, got {list(self.shots)}")
        set_("adversarial", _names(self.adversarial, "adversarial", ATTACKS))
        if isinstance(self.extra_eps, (str, int, float)):
            set_("extra_eps", (self.extra_eps,))
        set_("extra_eps", tuple(self.extra_eps))
        from .adversarial import parse_eps

        for e in (self.eps, *self.extra_eps):
            parse_eps(e)  # a bad radius is refused here, before any work
        set_("classifier", _names(self.classifier, "classifier", CLASSIFIERS, allow_empty=False))
        if self.corruption_names is not None:
            from .corruptions.constants import ALL_CORRUPTIONS

            set_("corruption_names", _names(self.corruption_names, "corruption_names (--corruption-names)",
                                            ALL_CORRUPTIONS))
        if self.novel_split not in NOVEL_SPLITS:
            raise ValueError(f"novel_split must be one of {NOVEL_SPLITS}, got {self.novel_split!r}")
        if not isinstance(self.corruptions, (bool, str)):
            raise TypeError(f"corruptions must be True, False or a folder path, got {self.corruptions!r}")
        for name in ("dataset", "data_dir", "out", "episodes_dir", "novel_classes"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise TypeError(f"{name} must be a str or None, got {v!r}")

    @property
    def evaluates_corruptions(self) -> bool:
        """A corruption evaluation is asked for."""
        return self.corruptions is not False or self.generate_corruptions

    def expected_files(self) -> list[str]:
        """The result files of the evaluations asked for (in the eval folder), clean first."""
        files = [rf.EVAL_CLEAN]
        if self.evaluates_corruptions:
            files.append(rf.EVAL_CORRUPTIONS)
        if self.adversarial:
            files.append(rf.EVAL_ADVERSARIAL)
        if self.train_fit:
            files.append(rf.EVAL_TRAIN_FIT)
        if self.fewshot:
            files.append(rf.EVAL_FEWSHOT)
        return files

    def out_dir(self, run_dir: str | os.PathLike) -> Path:
        """Where the results of the run ``run_dir`` go: :attr:`out`, else ``<run>/eval``."""
        return Path(self.out).expanduser() if self.out else rf.RunFolder(run_dir).eval_dir

    def done(self, run_dir: str | os.PathLike) -> bool:
        """Every file of :meth:`expected_files` exists for the run ``run_dir`` (with every radius asked for)."""
        out = self.out_dir(run_dir)
        if not all((out / f).is_file() for f in self.expected_files()):
            return False
        if self.adversarial and self.extra_eps:
            try:
                have = json.loads((out / rf.EVAL_ADVERSARIAL).read_text(encoding="utf-8")).get("by_eps", {})
            except (OSError, ValueError):
                return False
            return all(str(e) in have for e in self.extra_eps)
        return True


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


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def check_eval_extras(options: EvalOptions, dataset: str) -> None:
    """Refuse, before any work, evaluations of ``dataset`` whose optional extra is missing.

    Generating a corrupted test set (every dataset but CIFAR's official release) needs the
    corruptions extra (OpenCV, SciPy).

    Raises:
        ImportError: naming the extra to install.
    """
    if options.evaluates_corruptions and (dataset not in _OFFICIAL_C or options.generate_corruptions):
        from .corruptions.common import require_extras

        require_extras()


# ---------------------------------------------------------------------------------------------- parts
def _corruptions(o: EvalOptions, model: Any, test: Any, dataset: str, data_dir: str | None, out_dir: Path,
                 mean: Any, std: Any, device: Any, log: Callable[[str], None]) -> dict[str, Any]:
    try:
        from .robustness import evaluate_corruptions, results_to_rows
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("sagemix"):
            raise ImportError("sagemix.evaluate.robustness is not available in this build") from e
        raise
    names = list(o.corruption_names) if o.corruption_names is not None else None
    folder = o.corruptions if isinstance(o.corruptions, str) and o.corruptions else None
    if dataset in _OFFICIAL_C and not o.generate_corruptions:
        if folder:
            c_dir = Path(folder).expanduser()
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
        info: dict[str, Any] = {"source": "official", "dir": str(c_dir)}
    else:
        from .corruptions import generate_corrupted

        h, w = test.images.shape[-2:]
        if (h, w) != (32, 32):
            raise ValueError(f"--corruptions: the CIFAR-C operations are defined for 32x32 images, but {dataset} "
                             f"test images are {h}x{w}")
        c_dir = (Path(folder).expanduser() if folder
                 else out_dir / (f"corrupted-{dataset}-seed{o.corruption_seed}"
                                 + (f"-n{len(test.labels)}" if o.limit else "")))
        log(f"generating the corrupted test set in {c_dir} (cached; seed {o.corruption_seed}) ...")
        generate_corrupted(test.images.permute(0, 2, 3, 1).contiguous().numpy(), test.labels.numpy(), c_dir,
                           corruptions=names, include_extra=o.extra_corruptions,
                           seed=o.corruption_seed, progress=sys.stderr.isatty())
        info = {"source": "generated", "dir": str(c_dir), "seed": o.corruption_seed}
    res = evaluate_corruptions(model, c_dir, mean=mean, std=std, device=device, batch_size=o.batch_size,
                               corruptions=names, include_extra=o.extra_corruptions)
    from ..utils import atomic_write_json

    atomic_write_json(out_dir / rf.EVAL_CORRUPTIONS, {"corrupted_set": info, **res})
    _write_csv(out_dir / rf.EVAL_CORRUPTIONS_CSV, results_to_rows(res))
    return res


def _adversarial(o: EvalOptions, model: Any, test: Any, out_dir: Path, mean: Any, std: Any,
                 device: Any) -> dict[str, Any]:
    from ..utils import atomic_write_json
    from .adversarial import adversarial_accuracy, parse_eps

    step = parse_eps(o.pgd_step_size) if o.pgd_step_size is not None else None
    by_eps: dict[str, dict[str, Any]] = {}
    for eps_str in dict.fromkeys(str(e) for e in (o.eps, *o.extra_eps)):
        eps = parse_eps(eps_str)
        attacks: dict[str, Any] = {}
        for attack in dict.fromkeys(o.adversarial):
            attacks[attack] = adversarial_accuracy(model, test.images, test.labels, attack=attack, eps=eps, mean=mean,
                                                   std=std, device=device, batch_size=o.batch_size,
                                                   steps=o.pgd_steps, step_size=step, random_start=o.random_start,
                                                   seed=o.attack_seed)
            attacks[attack]["eps_str"] = eps_str
        by_eps[eps_str] = {"eps": eps, "attacks": attacks}
    out = by_eps[str(o.eps)]["attacks"]
    eps = by_eps[str(o.eps)]["eps"]
    # Top level: the primary attack (FGSM, the paper's, when requested) at the primary radius; every attack
    # under "attacks"; every radius under "by_eps".
    primary = "fgsm" if "fgsm" in out else next(iter(out))
    doc = {"attack": primary, "eps": eps, "eps_str": str(o.eps), "accuracy": out[primary]["adv_acc"],
           "clean_accuracy": out[primary]["clean_acc"], "n": out[primary]["n"],
           "threat_model": "L-inf ball in 0-1 pixel space, clamped to [0, 1], then normalised; model in eval mode",
           "attacks": out, "by_eps": by_eps}
    atomic_write_json(out_dir / rf.EVAL_ADVERSARIAL, doc)
    _write_csv(out_dir / rf.EVAL_ADVERSARIAL_CSV, [r for b in by_eps.values() for r in b["attacks"].values()])
    return out


def _train_fit(o: EvalOptions, model: Any, config: dict[str, Any], dataset: str, data_dir: str | None,
               kwargs: dict[str, Any], mean: Any, std: Any, device: Any) -> tuple[float, int]:
    """Eval-mode accuracy on the run's training images: the same ``train_limit`` subset the run trained on."""
    from ..data import load_dataset, random_subset
    from ..utils import derive_seed
    from .accuracy import accuracy

    data_seed = int(config.get("data_seed", 0))
    train = load_dataset(dataset, root=data_dir, train=True, image_size=config.get("image_size"), seed=data_seed,
                         **kwargs)
    train = random_subset(train, config.get("train_limit"), derive_seed(data_seed, "train_limit"))
    acc = accuracy(model, train.images, train.labels, mean=mean, std=std, device=device, batch_size=o.batch_size)
    return acc, len(train.labels)


def _fewshot(o: EvalOptions, model: Any, config: dict[str, Any], dataset: str, data_dir: str | None,
             out_dir: Path, mean: Any, std: Any, device: Any) -> dict[str, Any]:
    from ..data import load_dataset
    from ..utils import atomic_write_json
    from .fewshot import evaluate_fewshot, parse_classes

    same = dataset == config.get("dataset")
    kwargs = dict(config.get("dataset_kwargs") or {}) if same else {}
    kwargs.pop("classes", None)
    base_names = [str(c) for c in config.get("classes") or []]
    if dataset.startswith("mini_imagenet"):
        for k in ("split", "base_holdout"):
            kwargs.pop(k, None)
        if dataset == "mini_imagenet":
            kwargs["split"] = o.novel_split
        split_name = o.novel_split if dataset == "mini_imagenet" else dataset.rsplit("_", 1)[-1]
        novel = load_dataset(dataset, root=data_dir, train=False, image_size=config.get("image_size"), **kwargs)
    else:
        split_name = "test"
        novel = load_dataset(dataset, root=data_dir, train=False, image_size=config.get("image_size"),
                             download=False, seed=int(config.get("data_seed", 0)) if same else 0, **kwargs)
    names = list(novel.classes)
    base_idx = [i for i, n in enumerate(names) if n in set(base_names)]
    classes = parse_classes(o.novel_classes)
    if classes is None:
        classes = [i for i in range(len(names)) if i not in set(base_idx)]
        if not classes:
            raise ValueError(f"--fewshot: the backbone was trained on every class of {dataset} ({len(names)}), so "
                             "there are no novel classes; train on base classes (e.g. --set "
                             "dataset_kwargs.classes=[0,1,2,3,4]) or pass --novel-classes")
    if classes[-1] >= len(names):
        raise ValueError(f"--novel-classes {o.novel_classes}: {dataset} has classes 0-{len(names) - 1}")
    if len(classes) < o.ways:
        raise ValueError(f"--ways {o.ways} needs at least {o.ways} novel classes, got {len(classes)}: {classes}")
    episodes_dir: Path | None = Path(o.episodes_dir).expanduser() if o.episodes_dir else None
    if episodes_dir is None:  # the cache's episodes folder: when it cannot be written, draw them in memory
        from ..data.offline import cache_dir, unusable_cache_warning
        from ..utils import folder_write_error

        episodes_dir = cache_dir() / "episodes"
        err = folder_write_error(episodes_dir)
        if err is not None:
            import warnings

            warnings.warn(unusable_cache_warning(episodes_dir, err, "the few-shot episodes are drawn in memory "
                                                 "from their seed (the same episodes) and not kept"), stacklevel=2)
            episodes_dir = None
    rows = evaluate_fewshot(model, novel.images, novel.labels, mean=mean, std=std, device=device,
                            batch_size=o.batch_size, ways=o.ways, shots=tuple(o.shots),
                            queries=o.queries, episodes=o.episodes, classes=classes,
                            base_classes=base_idx, classifiers=tuple(o.classifier), seed=o.fewshot_seed,
                            episodes_dir=episodes_dir, tag=f"{dataset}-{split_name}")
    res = {"dataset": dataset, "split": split_name, "classifier": o.classifier[0], "novel_classes": classes,
           "novel_class_names": [names[i] for i in classes], "base_class_names": base_names,
           "features": "penultimate (input of the final linear layer), L2-normalised",
           "ci": "1.96 * std(ddof=0) / sqrt(episodes)", "results": rows}
    atomic_write_json(out_dir / rf.EVAL_FEWSHOT, res)
    _write_csv(out_dir / rf.EVAL_FEWSHOT_CSV, [{k: v for k, v in r.items() if k != "classes"} for r in rows])
    return res


# ---------------------------------------------------------------------------------------------- the stage
def evaluate_run(run_dir: str | os.PathLike, options: EvalOptions | None = None, *,
                 log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Evaluate a run (or a checkpoint file) and write the results into its eval folder.

    Args:
        run_dir: a run folder holding ``checkpoint.pt``, or a checkpoint file (its folder is the run).
        options: what to evaluate (default: clean accuracy only, device ``"auto"``).
        log: where progress lines go (default: standard error).

    Returns:
        ``{"out_dir": Path, "checkpoint": Path, "device": str, "rows": [summary rows], "files": [names
        written in out_dir], "clean": accuracy, "corruptions": dict | None, "adversarial": dict | None,
        "fewshot": dict | None}``; each summary row is ``{"evaluation", "setting", "acc"[, "ci95"]}``
        (the table ``sagemix eval`` prints, also written to ``summary.json|csv``).

    Raises:
        FileNotFoundError: no run folder or checkpoint at ``run_dir``.
        ValueError: options that do not fit the run (no novel classes, another label space, ...).
    """
    if options is None:
        options = EvalOptions()
    if not isinstance(options, EvalOptions):
        raise TypeError(f"options must be an EvalOptions, got {type(options).__name__}")
    import torch

    run, ckpt = rf.resolve_checkpoint(run_dir)
    threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        return _evaluate(run, ckpt, options, log)
    finally:
        torch.set_num_threads(threads)


def _evaluate(run_dir: Path, ckpt: Path, o: EvalOptions, log: Callable[[str], None]) -> dict[str, Any]:
    from ..data import decide_stream, load_dataset, random_subset
    from ..utils import atomic_write_json
    from .accuracy import accuracy, resolve_device
    from .streamed import check_streamed_options, open_streamed_test, streamed_accuracy

    device = resolve_device(o.device)
    model, config = rf.load_model(ckpt, map_location=device)
    dataset = o.dataset or config.get("dataset")
    if not dataset:
        raise ValueError("the run's config names no dataset; pass --dataset")
    same = dataset == config.get("dataset")
    data_dir = o.data_dir if o.data_dir is not None else (config.get("data_dir") if same else None)
    mean = tuple(config["mean"]) if config.get("mean") else None
    std = tuple(config["std"]) if config.get("std") else None
    out_dir = Path(o.out).expanduser() if o.out else run_dir / rf.EVAL_DIR
    try:  # a run on a read-only mount: one line that says to pass --out (before any work)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from ..utils import disk_write_error

        raise disk_write_error(e, out_dir, "evaluation folder") from e
    check_eval_extras(o, dataset)  # refuse a missing extra before any work
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"out_dir": out_dir, "checkpoint": ckpt, "device": str(device), "rows": rows,
                              "files": [], "clean": None, "corruptions": None, "adversarial": None,
                              "fewshot": None}

    kwargs = dict(config.get("dataset_kwargs") or {}) if same else {}
    streamed = decide_stream(dataset, data_dir, config.get("stream", "auto") if same else "auto",
                             image_size=config.get("image_size"), empty_classes=kwargs.get("empty_classes", "error"))
    if o.train_fit and (streamed or not same):  # before any data is read
        raise ValueError("train_fit (--train-fit) needs the run's own dataset held in memory (not --dataset "
                         "another one, not a streamed folder)")
    if streamed:  # a dataset too large for memory: clean accuracy only (evaluate/streamed.py)
        check_streamed_options(o)
        test = open_streamed_test(dataset, data_dir, config if same else {}, mean=mean, std=std)
    else:
        test = load_dataset(dataset, root=data_dir, train=False, image_size=config.get("image_size"),
                            seed=int(config.get("data_seed", 0)) if same else 0, **kwargs)
    test = random_subset(test, o.limit)
    if mean is None:
        mean, std = test.mean, test.std
    if config.get("num_classes") not in (None, test.num_classes):
        raise ValueError(f"the run's model has {config['num_classes']} classes but the {dataset} test split has "
                         f"{test.num_classes}; clean accuracy needs the training label space (use --fewshot for "
                         "novel classes)")
    if streamed:
        clean = streamed_accuracy(model, test, device=device, batch_size=o.batch_size)
    else:
        clean = accuracy(model, test.images, test.labels, mean=mean, std=std, device=device, batch_size=o.batch_size)
    meta = {"checkpoint": str(ckpt), "method": config.get("method"), "model": config.get("model"),
            "train_dataset": config.get("dataset"), "epoch": config.get("epoch"), "seed": config.get("seed")}
    atomic_write_json(out_dir / rf.EVAL_CLEAN, {**meta, "dataset": dataset, "split": "test",
                                                "n": len(test.labels), "acc": clean, "limit": o.limit})
    _write_csv(out_dir / rf.EVAL_CLEAN_CSV, [{**meta, "dataset": dataset, "n": len(test.labels), "acc": clean}])
    result["clean"] = clean
    result["files"] += [rf.EVAL_CLEAN, rf.EVAL_CLEAN_CSV]
    rows.append({"evaluation": "clean", "setting": f"{dataset} test ({len(test.labels)} images)", "acc": clean})

    if o.train_fit:
        acc_train, n_train = _train_fit(o, model, config, dataset, data_dir, kwargs, mean, std, device)
        atomic_write_json(out_dir / rf.EVAL_TRAIN_FIT, {**meta, "dataset": dataset, "split": "train", "n": n_train,
                                                         "acc": acc_train, "train_limit": config.get("train_limit"),
                                                         "mode": "eval mode, clean images (no augmentation)"})
        result["files"] += [rf.EVAL_TRAIN_FIT]
        rows.append({"evaluation": "train_fit", "setting": f"{dataset} training images ({n_train})",
                     "acc": acc_train})
    if o.evaluates_corruptions:
        res = _corruptions(o, model, test, dataset, data_dir, out_dir, mean, std, device, log)
        result["corruptions"] = res
        result["files"] += [rf.EVAL_CORRUPTIONS, rf.EVAL_CORRUPTIONS_CSV]
        mean_acc = res.get("mean_acc")
        if isinstance(mean_acc, (int, float)) and mean_acc == mean_acc:
            n_c = len(res.get("mean_over") or o.corruption_names or range(15))
            rows.append({"evaluation": "corruptions", "setting": f"mean over {n_c} corruptions x 5 severities",
                         "acc": float(mean_acc)})
        extra = res.get("extra_mean_acc")
        if isinstance(extra, (int, float)) and extra == extra:
            rows.append({"evaluation": "corruptions", "setting": "mean over the extra corruptions",
                         "acc": float(extra)})
    if o.adversarial:
        res = _adversarial(o, model, test, out_dir, mean, std, device)
        result["adversarial"] = res
        result["files"] += [rf.EVAL_ADVERSARIAL, rf.EVAL_ADVERSARIAL_CSV]
        for attack, r in res.items():
            setting = f"eps={o.eps}" + (f", {r['steps']} steps" if attack == "pgd" else "")
            rows.append({"evaluation": attack, "setting": setting, "acc": r["adv_acc"]})
    if o.fewshot:
        res = _fewshot(o, model, config, dataset, data_dir, out_dir, mean, std, device)
        result["fewshot"] = res
        result["files"] += [rf.EVAL_FEWSHOT, rf.EVAL_FEWSHOT_CSV]
        for r in res["results"]:
            rows.append({"evaluation": "fewshot",
                         "setting": f"{r['ways']}-way {r['shots']}-shot {r['classifier']} ({r['episodes']} ep.)",
                         "acc": r["acc"], "ci95": r["ci95"]})

    atomic_write_json(out_dir / rf.EVAL_SUMMARY, {**meta, "device": str(device),
                                                  "eval_time_s": time.perf_counter() - t0, "rows": rows})
    _write_csv(out_dir / rf.EVAL_SUMMARY_CSV, rows)
    result["files"] += [rf.EVAL_SUMMARY, rf.EVAL_SUMMARY_CSV]
    return result
