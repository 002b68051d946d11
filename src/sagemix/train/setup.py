"""Building a training set-up from a config: the one place where data, model, optimizer, mixer and step are made.

:func:`build_setup` turns a :class:`~sagemix.train.config.TrainConfig` into a :class:`Setup`: the data
splits (optionally subsampled), their loaders (device-resident for in-memory data; decoding workers
for image folders that stream from disk, as the ``stream`` key and :func:`sagemix.data.decide_stream`
say), the model (raw, and wrapped in DDP /
``torch.compile`` as configured), SGD with its multi-step schedule, the mixer with its own generator,
and the :class:`sagemix.MixStep` that ties model, mixer and loss together. The :class:`Trainer
<sagemix.train.trainer.Trainer>` runs its loop on a set-up; ``sagemix demo`` and ``sagemix show`` train
through the Trainer, and ``sagemix bench`` builds each method's mixer and step with :func:`build_mixer`
and :func:`build_step`, the two pieces :func:`build_setup` uses. The Trainer validates its config once and
builds through :func:`setup_from_valid` (the same set-up, no second validation).

Every randomness source has its own seed derived from the run seed (:func:`derive_seed`): torch's
global RNG is seeded with ``config.seed`` right before the model is created (identical initial weights
on every rank), the loader's generator with ``derive_seed(seed, "loader")`` and the mixer's with
:func:`mixer_seed` (``derive_seed(seed, "mixer")`` on rank 0, as on a single process, and
``derive_seed(seed, "mixer:rank<r>")`` on rank r > 0: a hash of the pair, so that no two (seed, rank)
pairs share a stream, where the former ``seed + rank`` gave seed 0 rank 1 the stream of seed 1 rank 0).

Example:
    >>> from sagemix.train import TrainConfig                                   # doctest: +SKIP
    >>> from sagemix.train.setup import build_setup                             # doctest: +SKIP
    >>> s = build_setup(TrainConfig(method="sage", model="smallnet", dataset="offline"))  # doctest: +SKIP
    >>> images, labels = next(iter(s.train_loader))                             # doctest: +SKIP
    >>> s.optimizer.zero_grad(); out = s.step(images, labels); s.optimizer.step()  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..checks import is_int
from ..losses import get_loss
from ..mixers import Mixer, create_mixer, get_mixer_class
from ..step import MixStep
from ..utils import derive_seed, resolve_device
from .config import TrainConfig
from .distributed import DistInfo, run_in_turns

__all__ = ["Setup", "build_setup", "setup_from_valid", "check_amp_device", "check_mixer_options", "build_mixer", "build_step", "derive_seed", "mixer_seed", "set_tf32",
           "AUTOCAST_DTYPES"]

#: The config's ``amp`` setting -> the autocast dtype of the forward passes.
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def mixer_seed(seed: int, rank: int = 0, *, restart_epoch: int | None = None) -> int:
    """The seed of one process's mixer generator, from the run seed and the process's rank.

    Rank 0 gets ``derive_seed(seed, "mixer")``, the single-process seed, so single-process runs are
    unchanged; rank r > 0 gets ``derive_seed(seed, "mixer:rank<r>")``. Every (seed, rank) pair hashes
    to its own stream (``seed + rank`` gave seed 0 rank 1 the stream of seed 1 rank 0).

    Args:
        seed: the run seed.
        rank: the process's global rank.
        restart_epoch: a fresh stream for a run resumed at this epoch on another number of processes.
    """
    for name, value in (("seed", seed), ("rank", rank)):
        if not is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    purpose = "mixer" if rank == 0 else f"mixer:rank{rank}"
    if restart_epoch is not None:
        purpose += f"@{restart_epoch}"
    return derive_seed(seed, purpose)


def set_tf32(enabled: bool | None) -> None:
    """Apply the config's ``tf32`` policy (process-wide torch settings).

    Args:
        enabled: True: TF32 for float32 matrix products and cuDNN convolutions; False: neither
            (full float32); None: leave torch's settings as they are.
    """
    if enabled is None:
        return
    if not isinstance(enabled, bool):
        raise TypeError(f"tf32 must be true, false or None, got {enabled!r}")
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")


@dataclass
class Setup:
    """Everything one training run is made of (see :func:`build_setup`).

    Attributes:
        config: the validated config.
        dist: where this process stands in a (possibly single-process) run.
        device: the device of the model and the batches.
        train_data: the training ``ImageData`` or ``StreamingImageFolder`` (after ``train_limit``).
        test_data: the test ``ImageData`` or ``StreamingImageFolder`` (after ``test_limit``).
        num_classes: K.
        mean: per-channel normalisation mean of the data (0-1 scale).
        std: per-channel normalisation std of the data.
        train_loader: the training batches (this rank's shard under torchrun).
        test_loader: the clean evaluation batches.
        steps_per_epoch: training steps per epoch (the same on every rank).
        raw_model: the model itself (what is checkpointed and evaluated).
        model: the model the step runs (DDP- and/or ``torch.compile``-wrapped as configured).
        optimizer: SGD over ``raw_model``'s parameters.
        scheduler: the multi-step learning-rate schedule (stepped once per epoch).
        autocast_dtype: the forward passes' autocast dtype, or None.
        scaler: the float16 GradScaler, or None.
        mixer_generator: the mixer's generator.
        mixer: the mixing method.
        loss: ``loss(logits, soft_targets)``.
        step: the :class:`sagemix.MixStep` of model, mixer and loss.
    """

    config: TrainConfig
    dist: DistInfo
    device: torch.device
    train_data: Any
    test_data: Any
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_loader: Any
    test_loader: Any
    steps_per_epoch: int
    raw_model: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast_dtype: torch.dtype | None
    scaler: Any
    mixer_generator: torch.Generator
    mixer: Mixer
    loss: Callable[[Tensor, Tensor], Tensor]
    step: MixStep


def _load_splits(cfg: TrainConfig, train_data: Any, test_data: Any,
                 log: Callable[[str], None] | None) -> tuple[Any, Any, bool]:
    """The (train, test) splits and whether they stream from disk (the ``stream`` config key).

    Splits passed in are used as they are. Otherwise a dataset of :data:`sagemix.data.stream_loader.STREAMABLE`
    streams when ``stream`` is true, or when it is ``"auto"`` and the decoded training split would
    exceed the memory budget; the test split then streams too, with the training split's mean/std.
    Every other case loads in memory exactly as ``load_dataset`` does.
    """
    from ..data import StreamingImageFolder, load_dataset, load_image_data

    def in_memory(train: bool) -> Any:
        return load_dataset(cfg.dataset, root=cfg.data_dir, train=train, download=cfg.download,
                            image_size=cfg.image_size, seed=cfg.data_seed, **cfg.dataset_kwargs)

    if train_data is None and _decide_stream(cfg):
        train_data = load_image_data(cfg.dataset, root=cfg.data_dir, train=True, image_size=cfg.image_size,
                                     seed=cfg.data_seed, stream=True, **cfg.dataset_kwargs)
        train_data.flip = cfg.flip
    elif train_data is None:
        train_data = in_memory(True)
    streamed = isinstance(train_data, StreamingImageFolder)
    if test_data is None and streamed:
        kw = {k: v for k, v in cfg.dataset_kwargs.items() if k not in ("mean", "std")}
        test_data = load_image_data(cfg.dataset, root=cfg.data_dir, train=False, image_size=train_data.image_size,
                                    seed=cfg.data_seed, stream=True, mean=train_data.mean, std=train_data.std, **kw)
    elif test_data is None:
        test_data = in_memory(False)
    if streamed != isinstance(test_data, StreamingImageFolder):
        raise ValueError("the train and test splits must both stream or both be in memory, got "
                         f"{type(train_data).__name__} and {type(test_data).__name__}")
    if streamed and log is not None:
        log(f"streaming {cfg.dataset} from {train_data.index.root}: {len(train_data)} train / {len(test_data)} "
            f"test files at {train_data.image_size}, {cfg.workers} decoding worker(s)")
    return train_data, test_data, streamed


def _decide_stream(cfg: TrainConfig) -> bool:
    """Whether the configured dataset streams (:func:`sagemix.data.decide_stream` of the config's keys)."""
    from ..data import decide_stream

    return decide_stream(cfg.dataset, cfg.data_dir, cfg.stream, image_size=cfg.image_size,
                         empty_classes=cfg.dataset_kwargs.get("empty_classes", "error"))


def _loaders(cfg: TrainConfig, train_data: Any, test_data: Any, dist: DistInfo, dev: torch.device, streamed: bool,
             log: Callable[[str], None] | None) -> tuple[Any, Any]:
    """The training and test loaders (:func:`sagemix.data.make_any_loader`), this rank's shards.

    In memory the images stay on the device and each epoch's shuffle/flip/crop derive from (base
    seed, epoch), so ``set_epoch(e)`` replays epoch e; a stream decodes this rank's files
    (``DistributedSampler`` order) in workers. Evaluation: each rank scores every world_size-th test
    image; the sums are all-reduced.
    """
    from ..data import make_any_loader

    if streamed and cfg.workers == 0 and log is not None:
        log("note: streaming with workers=0 decodes in the training process; set workers (e.g. 8) for speed")
    common = {"device": dev, "rank": dist.rank, "world_size": dist.world_size, "workers": cfg.workers,
              "channels_last": cfg.channels_last}
    augment = {} if streamed else {"flip": cfg.flip, "crop_padding": cfg.crop_padding}  # a stream's are its own
    train_loader = make_any_loader(train_data, batch_size=cfg.batch_size, train=True,
                                   seed=derive_seed(cfg.seed, "loader"), drop_last=cfg.drop_last, **augment, **common)
    test_loader = make_any_loader(test_data, batch_size=cfg.eval_batch_size, train=False, seed=0, **common)
    return train_loader, test_loader


def build_mixer(method: str, *, num_classes: int, generator: torch.Generator | None = None,
                mixer_kwargs: dict[str, Any] | None = None, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None) -> Mixer:
    """The mixer of ``method``, given the data's normalisation where the method looks at pixels.

    Methods that look at pixels (SaliencyMix's OpenCV saliency, Puzzle Mix's smoothness term) take the
    normalisation to undo; they get ``mean``/``std`` unless ``mixer_kwargs`` sets them.

    Args:
        method: registry name.
        num_classes: K.
        generator: the mixer's generator.
        mixer_kwargs: the method's options.
        mean: the data's per-channel mean (None: the method's default).
        std: the data's per-channel std (None: the method's default).
    """
    kwargs = dict(mixer_kwargs or {})
    if get_mixer_class(method).needs_normalization:
        for key, value in (("mean", mean), ("std", std)):
            if value is not None and key not in kwargs:
                kwargs[key] = tuple(value)
    return create_mixer(method, num_classes=num_classes, generator=generator, **kwargs)


def check_mixer_options(method: str, options: dict[str, Any], *, num_classes: int = 10) -> None:
    """Refuse unknown or invalid options of ``method``'s mixer before any work (the CLI's and compare's check).

    The option names are checked against the mixer's constructor (an unknown one is refused with the
    list of valid ones; ``num_classes`` and ``generator`` are the run's, not options), then the mixer
    is built once (and closed) to check the values. A missing optional extra is left to the caller
    (it skips the method or fails when it trains).

    Raises:
        ValueError: an unknown option or a bad value, naming the method and its options.
    """
    import inspect

    cls = get_mixer_class(method)
    params = inspect.signature(cls.__init__).parameters
    valid = sorted(n for n, p in params.items()
                   if n not in ("self", "num_classes", "generator") and p.kind is not p.VAR_KEYWORD
                   and p.kind is not p.VAR_POSITIONAL)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in options if k not in valid)
    if unknown and not takes_any:
        raise ValueError(f"{method} has no option {', '.join(map(repr, unknown))}; "
                         f"its options are {', '.join(valid) or '(none)'}")
    try:
        create_mixer(method, num_classes=num_classes, **options).close()
    except ImportError:
        return
    except (ValueError, TypeError) as e:
        raise ValueError(f"bad options for {method}: {e}") from None


def build_step(model: nn.Module, mixer: Mixer, *, num_classes: int, loss: str = "soft_ce", amp: str = "none",
               device: torch.device | str = "cpu") -> MixStep:
    """The :class:`sagemix.MixStep` of ``model`` and ``mixer`` with the named loss and mixed precision.

    Args:
        model: the network the step runs (possibly wrapped).
        mixer: the mixing method.
        num_classes: K.
        loss: a loss name for :func:`sagemix.losses.get_loss`.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` (fp16 gets a GradScaler and needs CUDA).
        device: the device of the model (for the fp16 check).
    """
    if amp not in AUTOCAST_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AUTOCAST_DTYPES)}, got {amp!r}")
    check_amp_device(amp, torch.device(device))
    return _step(model, mixer, num_classes, loss, amp)


def check_amp_device(amp: str, device: torch.device) -> None:
    """fp16 autocast (with its GradScaler) needs CUDA: a ValueError naming the config key otherwise."""
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"config key 'amp' is 'fp16', which needs CUDA (device is {device}); "
                         "use amp='bf16' or 'none' on CPU")


def _step(model: nn.Module, mixer: Mixer, num_classes: int, loss: str, amp: str) -> MixStep:
    """The step of :func:`build_step`, its arguments already checked."""
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    return MixStep(model, mixer, get_loss(loss), num_classes=num_classes, autocast_dtype=AUTOCAST_DTYPES[amp],
                   scaler=scaler)


def build_setup(config: TrainConfig, *, train_data: Any = None, test_data: Any = None, dist: DistInfo | None = None,
                device: str | torch.device | None = None, log: Callable[[str], None] | None = None) -> Setup:
    """Build the training set-up that ``config`` describes.

    Args:
        config: the run's settings (validated here).
        train_data: an ``ImageData`` (or ``StreamingImageFolder``) to train on instead of the
            configured dataset.
        test_data: the same kind, to evaluate on instead of the dataset's test split.
        dist: the process's place in a torchrun group (from
            :func:`sagemix.train.distributed.setup_distributed`); None: a single process.
        device: the device (None: ``config.device`` through :func:`sagemix.utils.resolve_device`).
        log: where notes go (None: nowhere).

    Returns:
        The :class:`Setup`.

    Raises:
        TypeError: ``config`` is not a TrainConfig.
        ValueError: an empty split, no training step per epoch, fp16 without CUDA, bad config values.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    return setup_from_valid(config.validate(), train_data=train_data, test_data=test_data, dist=dist, device=device,
                            log=log)


def setup_from_valid(cfg: TrainConfig, *, train_data: Any = None, test_data: Any = None, dist: DistInfo | None = None,
                     device: str | torch.device | None = None, log: Callable[[str], None] | None = None) -> Setup:
    """:func:`build_setup` of a config that its caller has just validated (the Trainer), not validated again."""
    dist = dist if dist is not None else DistInfo()
    if not isinstance(dist, DistInfo):
        raise TypeError(f"dist must be a DistInfo or None, got {type(dist).__name__}")
    dev = resolve_device(cfg.device if device is None else device, dist.local_rank)
    check_amp_device(cfg.amp, dev)  # before any data is read
    if dev.type == "cuda":
        # Fixed shapes every step: let cuDNN pick its fastest kernels (at the cost of bitwise
        # run-to-run reproducibility on the GPU; CPU runs stay bitwise reproducible).
        torch.backends.cudnn.benchmark = True
        set_tf32(cfg.tf32)
    if cfg.compile and dev.type != "cuda" and log is not None:
        log("note: compile=true on CPU needs a C++ compiler and compiles slowly")

    # Data -------------------------------------------------------------------------------------
    # Under torchrun: rank 0 downloads (when asked) first, then each other node's local rank 0, then the
    # rest only read; an error in any turn stops every rank (see distributed.run_in_turns).
    train_data, test_data, streamed = run_in_turns(lambda: _load_splits(cfg, train_data, test_data, log),
                                                   local_rank=dist.local_rank)
    from ..data import random_subset

    train_data = random_subset(train_data, cfg.train_limit, derive_seed(cfg.data_seed, "train_limit"))
    test_data = random_subset(test_data, cfg.test_limit, derive_seed(cfg.data_seed, "test_limit"))
    num_classes = int(train_data.num_classes)
    if int(train_data.labels.numel()) == 0 or int(test_data.labels.numel()) == 0:
        raise ValueError(f"dataset {cfg.dataset!r} has an empty train or test split")
    # The loader seed is shared by all ranks' samplers (same shuffle, different shards).
    train_loader, test_loader = _loaders(cfg, train_data, test_data, dist, dev, streamed, log)
    steps = len(train_loader)
    if not cfg.drop_last and train_loader.num_samples % cfg.batch_size == 1:
        steps -= 1  # a last batch of one image is not trained on (BatchNorm cannot train on one image)
    if cfg.max_steps_per_epoch is not None:
        steps = min(steps, cfg.max_steps_per_epoch)
    if dist.distributed:  # every rank must run the same number of DDP steps
        t = torch.tensor([steps], dtype=torch.float64, device=dev)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        steps = int(t.item())
    if steps < 1:
        raise ValueError(f"no training step per epoch: {len(train_data.labels)} images with "
                         f"batch_size={cfg.batch_size} and drop_last={cfg.drop_last} (a last batch of one image "
                         "is not trained on)")

    # Model, optimizer, schedule -----------------------------------------------------------------
    from ..models import create_model

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    raw_model = create_model(cfg.model, num_classes=num_classes, **cfg.model_kwargs).to(dev)
    if cfg.channels_last:
        raw_model = raw_model.to(memory_format=torch.channels_last)
    model: nn.Module = raw_model
    if dist.distributed:
        ddp_kwargs: dict[str, Any] = {"device_ids": [dev]} if dev.type == "cuda" else {}
        model = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
    if cfg.compile:
        model = torch.compile(model)
    optimizer = torch.optim.SGD(raw_model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)

    # Mixer and step: each rank mixes within its own batch with its own generator.
    mixer_generator = torch.Generator().manual_seed(mixer_seed(cfg.seed, dist.rank))
    mixer = build_mixer(cfg.method, num_classes=num_classes, generator=mixer_generator,
                        mixer_kwargs=cfg.mixer_kwargs(), mean=train_data.mean, std=train_data.std)
    step = _step(model, mixer, num_classes, cfg.loss, cfg.amp)  # amp checked above
    return Setup(config=cfg, dist=dist, device=dev, train_data=train_data, test_data=test_data,
                 num_classes=num_classes, mean=tuple(train_data.mean), std=tuple(train_data.std),
                 train_loader=train_loader, test_loader=test_loader,
                 steps_per_epoch=steps, raw_model=raw_model, model=model, optimizer=optimizer, scheduler=scheduler,
                 autocast_dtype=step.autocast_dtype, scaler=step.scaler, mixer_generator=mixer_generator,
                 mixer=mixer, loss=step.loss, step=step)
