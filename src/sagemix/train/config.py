"""Training configuration: one dataclass of every setting, the recipe files and CLI overrides.

The recipes reproduce the CIFAR protocol of SAGE ("Saliency-Guided Mixup with Optimal
Rearrangements", Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113, docs/SAGE.md §7),
which SAGE took from Co-Mixup (Kim et al., ICLR 2021, https://arxiv.org/abs/2102.03065): 300 epochs,
SGD with Nesterov momentum 0.9, lr 0.2 divided by 10 at epochs 100 and 200, weight decay 1e-4,
batch 100, and binary cross-entropy on softmax outputs as the training loss.

A recipe is a JSON file in ``sagemix/configs/`` holding a subset of the :class:`TrainConfig` fields
plus an optional ``"description"``. ``method_defaults`` maps a method name to the keyword options
its mixer gets in that recipe (SAGE's per-model ``update_ratio``/``upper_lambda``/``saliency_reduce``),
so one protocol recipe serves every method: ``sagemix train cifar100_preactresnet18 --method sage``.
Options that are not in the recipe are the mixers' own defaults (the baselines spec).

Example:
    >>> from sagemix.train.config import load_config
    >>> cfg = load_config("cifar100_wrn16_8_sage", overrides={"epochs": 2, "method_kwargs.rand_pos": 0.02})
    >>> cfg.model, cfg.epochs, cfg.mixer_kwargs()["update_ratio"]
    ('wrn16_8', 2, 0.5)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ..checks import is_int, is_number

__all__ = ["TrainConfig", "load_config", "load_recipe", "list_recipes", "recipe_description",
           "parse_overrides", "apply_overrides", "config_hash", "RUN_DEFINING_KEYS", "RUN_INFO_KEYS", "AMP_CHOICES",
           "LOSS_CHOICES", "SEED_MAX"]

AMP_CHOICES = ("none", "bf16", "fp16")
LOSS_CHOICES = ("soft_ce", "bce_softmax")

# The settings that define what is trained: a checkpoint may only be resumed under the same values.
# (``epochs`` is not among them, so a run can be extended; nor are paths, devices and logging.)
RUN_DEFINING_KEYS = ("method", "method_kwargs", "model", "model_kwargs", "dataset", "dataset_kwargs",
                     "image_size", "train_limit", "test_limit", "batch_size", "lr", "momentum", "nesterov",
                     "weight_decay", "milestones", "gamma", "loss", "seed", "data_seed", "amp", "flip",
                     "crop_padding", "drop_last", "max_steps_per_epoch")


@dataclass
class TrainConfig:
    """Every setting of a training run.

    The optimisation defaults are the shared CIFAR protocol; the loss defaults to the library's
    soft-target cross-entropy (the reproduction recipes set ``bce_softmax``).

    Attributes:
        method: mixer registry name (``sagemix list methods``).
        method_kwargs: keyword options for the mixer, on top of ``method_defaults[method]``.
        method_defaults: per-method options of a recipe, ``{"sage": {"update_ratio": 0.7, ...}}``.
        model: model registry name (``sagemix list models``).
        model_kwargs: keyword options for ``create_model``.
        dataset: ``cifar10``, ``cifar100``, ``offline`` or ``imagefolder``.
        dataset_kwargs: dataset-specific options for ``load_dataset`` (e.g. ``n_train`` for ``offline``).
        data_dir: dataset root (None: the data module's default).
        download: download the dataset when it is missing. Under torchrun rank 0 downloads first, then
            the local rank 0 of each other node (which finds the files on a shared filesystem, or
            downloads its own copy to a node-local one), then the other processes only read.
        image_size: resize the images to this side (None: native size).
        train_limit: train on a seeded random subset of this many images (None: all).
        test_limit: evaluate on a seeded random subset of this many images (None: all).
        epochs: number of epochs.
        batch_size: images per optimizer step (per process under ``torchrun``).
        lr: initial learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay on every parameter (as the reference code does).
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        gamma: the learning-rate decay factor.
        loss: ``"soft_ce"`` (soft-target cross-entropy) or ``"bce_softmax"`` (the research code's).
        seed: seeds the model initialisation, the loader and the mixer (per process: a seed derived from
            (seed, rank) that no other (seed, rank) pair shares; rank 0 keeps the single-process seed).
        data_seed: seeds what defines the data (the offline dataset's generation, the train/test limit
            subsets), kept apart from ``seed`` so that runs with different seeds see the same images.
        amp: ``"none"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast + GradScaler, CUDA only).
        channels_last: channels-last memory format for the model and the batches.
        compile: wrap the model in ``torch.compile``.
        tf32: TensorFloat-32 on CUDA for float32 work: ``true`` turns it on for matrix products and
            cuDNN convolutions (``torch.backends.cuda.matmul.allow_tf32``, ``cudnn.allow_tf32``,
            ``set_float32_matmul_precision("high")``), ``false`` turns it off for both ("highest"), and
            ``null`` (the default) leaves torch's defaults (matmul off, cuDNN convolutions on), so that
            runs do not change. Ignored on the CPU; not run-defining (a run may be resumed with another).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Under torchrun
            every process uses ``cuda:LOCAL_RANK``: an explicit ``cuda:N`` is overridden with a warning.
        threads: CPU threads for torch (``torch.set_num_threads``); 0 keeps torch's default.
        workers: DataLoader worker processes, used only when the data set does not fit on the device
            (the resident loader needs none); with ``stream`` the decoding workers (0: decode in the
            training process).
        stream: ``"auto"`` (stream an image-folder dataset from disk when its decoded training split
            would not fit the memory budget of :func:`sagemix.data.should_stream`), ``True`` (always
            stream; ``imagefolder``, ``imagenet`` and ``tiny_imagenet`` only) or ``False`` (decode into
            memory, the device-resident path).
        out: the run folder (None: ``runs/<dataset>-<model>-<method>-s<seed>``).
        eval_every: evaluate every this many epochs (and always after the last one).
        eval_batch_size: batch size of the evaluation loader.
        flip: random horizontal flip of the training images.
        crop_padding: padding of the random crop of the training images (0: no crop).
        drop_last: drop the last incomplete training batch (a last batch of one image is dropped
            always: BatchNorm cannot train on one image).
        max_steps_per_epoch: cap the steps per epoch (None: the whole training set); for demos.
        nan_check_every: check the loss for NaN/inf every this many steps (one device sync each).
        progress: show a tqdm progress bar.
        tensorboard: also log to TensorBoard (needs ``pip install "sagemix[tensorboard]"``).
        description: free text (a recipe's description).
        name: the run's label in reports (a comparison's variant name, e.g. ``sage_no_rearrangement``);
            ``""`` labels it by ``method``.
    """

    method: str = "vanilla"
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    method_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: str = "preactresnet18"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    download: bool = False
    image_size: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    epochs: int = 300
    batch_size: int = 100
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    milestones: list[int] = field(default_factory=lambda: [100, 200])
    gamma: float = 0.1
    loss: str = "soft_ce"
    seed: int = 0
    data_seed: int = 0
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    tf32: bool | None = None
    device: str = "auto"
    threads: int = 0
    workers: int = 0
    stream: Any = "auto"
    out: str | None = None
    eval_every: int = 1
    eval_batch_size: int = 500
    flip: bool = True
    crop_padding: int = 2
    drop_last: bool = False
    max_steps_per_epoch: int | None = None
    nan_check_every: int = 50
    progress: bool = True
    tensorboard: bool = False
    description: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Check every field; raise TypeError/ValueError naming the key, the value and the expectation."""
        for key in ("method", "model", "dataset", "loss", "amp", "device", "description", "name"):
            _expect_str(key, getattr(self, key))
        for key in ("method", "model", "dataset"):
            if not getattr(self, key).strip():
                raise ValueError(f"config key {key!r} must be a non-empty name, got {getattr(self, key)!r}")
        self.method = self.method.lower().replace("-", "_")
        self.model = self.model.lower().replace("-", "_")
        self.dataset = self.dataset.lower()
        for key in ("method_kwargs", "model_kwargs", "method_defaults", "dataset_kwargs"):
            value = getattr(self, key)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise TypeError(f"config key {key!r} must be a dict with string keys, got {value!r}")
        for name, kw in self.method_defaults.items():
            if not isinstance(kw, dict):
                raise TypeError(f"config key 'method_defaults.{name}' must be a dict of mixer options, got {kw!r}")
        for key in ("data_dir", "out"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"config key {key!r} must be a path string or null, got {value!r}")
            if value is not None:
                setattr(self, key, os.fspath(value))
        for key in ("download", "nesterov", "channels_last", "compile", "flip", "drop_last", "progress",
                    "tensorboard"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"config key {key!r} must be true or false, got {getattr(self, key)!r}")
        if self.tf32 is not None and not isinstance(self.tf32, bool):
            raise TypeError(f"config key 'tf32' must be true, false or null, got {self.tf32!r}")
        _expect_int("epochs", self.epochs, minimum=1)
        _expect_int("batch_size", self.batch_size, minimum=1)
        _expect_int("eval_every", self.eval_every, minimum=1)
        _expect_int("eval_batch_size", self.eval_batch_size, minimum=1)
        _expect_int("nan_check_every", self.nan_check_every, minimum=1)
        for key in ("seed", "data_seed"):  # torch's generators take seeds in [0, 2**64 - 1]
            _expect_int(key, getattr(self, key), minimum=0, maximum=SEED_MAX,
                        what=f"an integer from 0 to 2**64 - 1 (torch's seed range), got {getattr(self, key)!r}")
        _expect_int("threads", self.threads, minimum=0)
        _expect_int("workers", self.workers, minimum=0)
        _expect_int("crop_padding", self.crop_padding, minimum=0)
        for key in ("image_size", "train_limit", "test_limit", "max_steps_per_epoch"):
            if getattr(self, key) is not None:
                _expect_int(key, getattr(self, key), minimum=1)
        self.lr = _expect_float("lr", self.lr, minimum=0.0, strict=True)
        self.momentum = _expect_float("momentum", self.momentum, minimum=0.0)
        self.weight_decay = _expect_float("weight_decay", self.weight_decay, minimum=0.0)
        self.gamma = _expect_float("gamma", self.gamma, minimum=0.0, strict=True)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("config key 'nesterov' is true but 'momentum' is 0; Nesterov momentum needs momentum > 0")
        if not isinstance(self.milestones, (list, tuple)):
            raise TypeError(f"config key 'milestones' must be a list of epochs, got {self.milestones!r}")
        for m in self.milestones:
            _expect_int("milestones", m, minimum=1, what=f"a list of epochs >= 1, got {self.milestones!r}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"config key 'milestones' must be strictly increasing, got {self.milestones!r}")
        self.milestones = list(self.milestones)
        if self.loss not in LOSS_CHOICES:
            raise ValueError(f"config key 'loss' must be one of {LOSS_CHOICES}, got {self.loss!r}")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"config key 'amp' must be one of {AMP_CHOICES}, got {self.amp!r}")
        if isinstance(self.stream, str) and self.stream.strip().lower() in _STREAM_WORDS:
            self.stream = _STREAM_WORDS[self.stream.strip().lower()]
        if self.stream not in ("auto", True, False):
            raise ValueError(f"config key 'stream' must be 'auto', true or false, got {self.stream!r}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"config key 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")
        return self

    # -- helpers ----------------------------------------------------------------------------
    def mixer_kwargs(self) -> dict[str, Any]:
        """The mixer's options: ``method_defaults[method]`` updated with ``method_kwargs``."""
        return {**self.method_defaults.get(self.method, {}), **self.method_kwargs}

    def run_dir(self) -> Path:
        """The run folder: ``out`` or ``runs/<dataset>-<model>-<method>-s<seed>``."""
        if self.out is not None:
            return Path(self.out)
        return Path("runs") / f"{self.dataset}-{self.model}-{self.method}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown keys raise a ValueError listing the known ones.

        Keys written into ``config.json`` by a run (``sagemix_version``, ``git_commit``, ...) that
        are not settings are ignored when listed in ``data["_run_info_keys"]`` or are one of the
        known run-info keys.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a config must be a JSON object (dict), got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        info = set(RUN_INFO_KEYS)
        unknown = [k for k in data if k not in names and k not in info]
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; expected some of {sorted(names)}")
        return cls(**{k: _copy(v) for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def run_defining(self) -> dict[str, Any]:
        """The settings a resumed run must share with its checkpoint (mixer options resolved)."""
        d = self.to_dict()
        out = {k: d[k] for k in RUN_DEFINING_KEYS}
        out["method_kwargs"] = json.loads(json.dumps(self.mixer_kwargs()))
        return out


# Spellings of the ``stream`` key (CLI ``--set stream=...`` values arrive as JSON or strings).
_STREAM_WORDS: dict[str, Any] = {"auto": "auto", "true": True, "yes": True, "on": True, "1": True,
                                 "false": False, "no": False, "off": False, "0": False}

# Keys a run adds to config.json next to the settings.
RUN_INFO_KEYS = ("sagemix_version", "git_commit", "torch_version", "num_classes", "classes", "mean", "std",
                  "input_size", "world_size", "device_used", "recipe", "created", "data_hash", "test_data_hash",
                  "torch_threads", "cpu_capability", "onednn_max_cpu_isa")


def config_hash(config: TrainConfig) -> str:
    """A short SHA-256 of the run-defining settings (:data:`RUN_DEFINING_KEYS`)."""
    text = json.dumps(config.run_defining(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# recipes
def _recipe_dir() -> Path:
    return Path(str(resources.files("sagemix") / "configs"))


def list_recipes() -> list[str]:
    """Names of the bundled recipes (``sagemix/configs/*.json``), sorted."""
    return sorted(p.stem for p in _recipe_dir().glob("*.json"))


def load_recipe(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The raw dict of a bundled recipe (by name) or of a JSON file (by path)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"recipe must be a name or a path, got {type(name_or_path).__name__}")
    text_name = os.fspath(name_or_path)
    path = Path(text_name)
    if not path.is_file():
        bundled = _recipe_dir() / f"{text_name}.json"
        if not bundled.is_file():
            raise ValueError(f"unknown recipe {text_name!r}: not a file and not one of {list_recipes()}")
        path = bundled
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"recipe file {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"recipe file {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def recipe_description(name: str) -> str:
    """The ``description`` of a bundled recipe ('' when it has none)."""
    return str(load_recipe(name).get("description", ""))


# ------------------------------------------------------------------------------------------
# overrides
def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` (the CLI's ``--set``) into a dict.

    Values are read as JSON when they parse (``3``, ``0.1``, ``true``, ``null``, ``[100, 200]``,
    ``{"a": 1}``), else taken as strings. Dotted keys (``method_kwargs.update_ratio=0.5``) set one
    entry of a dict field.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. --set lr=0.1)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"override {item!r} has an empty key")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def apply_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated with ``overrides`` (dotted keys reach into dict fields)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    out = {k: _copy(v) for k, v in base.items()}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ValueError(f"unknown config key {head!r} in override {key}={value!r}; expected one of {sorted(names)}")
        if not rest:
            out[head] = _copy(value)
            continue
        default = getattr(TrainConfig(), head)
        if not isinstance(default, dict):
            raise ValueError(f"override {key}={value!r}: config key {head!r} is not a dict, so it has no sub-keys")
        target = out.setdefault(head, {})
        parts = rest.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"override {key}={value!r}: {part!r} is not a dict")
        target[parts[-1]] = _copy(value)
    return out


def load_config(recipe: str | os.PathLike | None = None, *, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Build a validated :class:`TrainConfig` from a recipe (name or file) and overrides.

    Args:
        recipe: a bundled recipe name, a JSON file, or None for the :class:`TrainConfig` defaults.
        overrides: ``{key: value}``, dotted keys allowed (see :func:`apply_overrides`).
    """
    base = load_recipe(recipe) if recipe is not None else {}
    data = apply_overrides(base, dict(overrides or {}))
    if recipe is not None and "description" not in data:
        data["description"] = ""
    return TrainConfig.from_dict(data)


# ------------------------------------------------------------------------------------------
def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value


def _expect_str(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"config key {key!r} must be a string, got {value!r}")


#: The largest seed torch's generators accept (``torch.manual_seed`` overflows above it).
SEED_MAX = 2**64 - 1


def _expect_int(key: str, value: Any, *, minimum: int, maximum: int | None = None, what: str | None = None) -> None:
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"config key {key!r} must be {what or f'an integer >= {minimum}, got {value!r}'}")


#: The largest float32: the optimizer computes in float32, so larger settings overflow there.
_FLOAT32_MAX = 3.4028234663852886e38


def _expect_float(key: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    ok = is_number(value) and abs(value) <= _FLOAT32_MAX
    ok = ok and math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"config key {key!r} must be a finite number {rel} {minimum} and at most "
                         f"{_FLOAT32_MAX:.4g} (float32, what training computes in), got {value!r}")
    return float(value)
