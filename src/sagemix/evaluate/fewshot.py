"""Few-shot transfer of a frozen backbone: fixed episodes, penultimate features, simple classifiers.

The SAGE paper (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal Rearrangements", BMVC 2022,
https://arxiv.org/abs/2211.00113) asks whether saliency-guided mixing learns features that transfer.
The protocol here is the standard "train on base classes, probe on novel classes" one (Tian et al.,
"Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need?", ECCV 2020,
https://arxiv.org/abs/2003.11539): a backbone is trained by ordinary classification on the base
classes, frozen, and each N-way K-shot episode drawn from the novel classes is solved by a simple
classifier on its L2-normalised penultimate features.

Pieces:

- :func:`sample_episodes` draws ``episodes`` tasks of ``ways`` classes with ``shots`` support and
  ``queries`` query images per class (no image in both), batched from one seeded torch generator;
  :class:`Episodes` saves them to / loads them from JSON so that every method is judged on exactly
  the same tasks (the file records a digest of the labels it was drawn for and is refused for others).
- :func:`extract_features` takes the model's input to its final linear layer: the model's
  ``forward_features(x)`` when it has one (all sagemix models do), else a forward hook on the last
  ``nn.Linear``; the features are L2-normalised.
- Classifiers, batched over episodes: ``"logreg"`` (default), multinomial logistic regression
  implemented in torch (L-BFGS in float64, the objective of scikit-learn's ``LogisticRegression``:
  ``0.5 ||W||^2 + C * sum CE`` with an unpenalised bias, ``C = 1``, as in Tian et al.; deterministic,
  no scikit-learn needed); ``"proto"``, nearest class centroid in Euclidean distance (Snell et al.,
  https://arxiv.org/abs/1703.05175); ``"cosine"``, highest cosine similarity to the class centroid.
- :func:`mean_ci95`: mean accuracy and the 95% confidence half-width ``1.96 * std / sqrt(n)``
  (population std, ``ddof = 0``, as in the usual few-shot evaluation code).

Example:
    >>> import torch
    >>> from sagemix.evaluate.fewshot import sample_episodes, classify_episodes, mean_ci95
    >>> labels = torch.arange(10).repeat_interleave(20)
    >>> eps = sample_episodes(labels, ways=5, shots=1, queries=3, episodes=4, seed=0)
    >>> feats = torch.nn.functional.one_hot(labels, 10).float()
    >>> mean_ci95(classify_episodes(feats, eps, classifier="proto"))
    (100.0, 0.0)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import atomic_write_json
from .accuracy import (_check_common, _check_labels, as_nchw_uint8, check_mean_std, eval_mode, iter_batches,
                       normalize, resolve_device)

__all__ = ["Episodes", "sample_episodes", "load_or_sample_episodes", "labels_digest", "extract_features",
           "classify_episodes", "logistic_regression", "mean_ci95", "evaluate_fewshot", "parse_classes",
           "CLASSIFIERS"]

CLASSIFIERS = ("logreg", "proto", "cosine")
_FORMAT = "sagemix-episodes"
_VERSION = 1


def _check_pos_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def labels_digest(labels: Tensor) -> str:
    """SHA-256 of the labels as little-endian int64: identifies the image set episodes index into."""
    arr = labels.detach().to("cpu", torch.int64).contiguous().numpy().astype("<i8")
    return hashlib.sha256(arr.tobytes()).hexdigest()


def parse_classes(spec: str | Sequence[int] | None) -> list[int] | None:
    """Parse ``"5-9"``, ``"5,6,7"``, ``"0-2,7"`` or a sequence of ints into a sorted list of labels."""
    if spec is None:
        return None
    if isinstance(spec, str):
        out: set[int] = set()
        try:
            for part in spec.replace(" ", "").split(","):
                if not part:
                    continue
                if "-" in part:
                    a, b = part.split("-", 1)
                    lo, hi = int(a), int(b)
                    if hi < lo:
                        raise ValueError
                    out.update(range(lo, hi + 1))
                else:
                    out.add(int(part))
        except ValueError as e:
            raise ValueError(f"classes must look like '5-9' or '5,6,7' (non-negative ints), got {spec!r}") from e
        values = sorted(out)
    else:
        try:
            values = sorted({int(c) for c in spec})
        except (TypeError, ValueError) as e:
            raise TypeError(f"classes must be a string like '5-9' or a sequence of ints, got {spec!r}") from e
    if not values or values[0] < 0:
        raise ValueError(f"classes must name at least one non-negative class label, got {spec!r}")
    return values


@dataclass(frozen=True)
class Episodes:
    """A fixed set of N-way K-shot episodes over a labelled image set.

    Attributes:
        ways: classes per episode (N).
        shots: support images per class (K).
        queries: query images per class.
        seed: the seed they were drawn from.
        classes: (E, ways) int64, the dataset labels of each episode's classes; episode label j is
            ``classes[e, j]``.
        support: (E, ways, shots) int64 indices into the image set.
        query: (E, ways, queries) int64 indices into the image set.
        n_images: the size of the image set.
        labels_sha256: :func:`labels_digest` of the image set's labels.
    """

    ways: int
    shots: int
    queries: int
    seed: int
    classes: Tensor
    support: Tensor
    query: Tensor
    n_images: int
    labels_sha256: str

    def __len__(self) -> int:
        return int(self.classes.shape[0])

    def check_labels(self, labels: Tensor) -> None:
        """Raise ValueError unless these episodes were drawn for exactly ``labels``."""
        if int(labels.shape[0]) != self.n_images or labels_digest(labels) != self.labels_sha256:
            raise ValueError(f"these episodes were drawn for another image set ({self.n_images} images, labels "
                             f"sha256 {self.labels_sha256[:12]}...), not this one ({int(labels.shape[0])} images, "
                             f"sha256 {labels_digest(labels)[:12]}...); delete the episodes file or pass the "
                             "data they were made for")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the file format of :meth:`save`)."""
        return {"format": _FORMAT, "version": _VERSION, "ways": self.ways, "shots": self.shots,
                "queries": self.queries, "seed": self.seed, "episodes": len(self), "n_images": self.n_images,
                "labels_sha256": self.labels_sha256,
                "tasks": [{"classes": c, "support": s, "query": q} for c, s, q in
                          zip(self.classes.tolist(), self.support.tolist(), self.query.tolist())]}

    def save(self, path: str | os.PathLike) -> None:
        """Write the episodes as JSON (atomically)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Episodes":
        """Inverse of :meth:`to_dict`, with validation."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ValueError(f"not a {_FORMAT} v{_VERSION} file (format={d.get('format') if isinstance(d, dict) else d!r})")
        try:
            tasks = d["tasks"]
            classes = torch.tensor([t["classes"] for t in tasks], dtype=torch.int64)
            support = torch.tensor([t["support"] for t in tasks], dtype=torch.int64)
            query = torch.tensor([t["query"] for t in tasks], dtype=torch.int64)
            ways, shots, queries = int(d["ways"]), int(d["shots"]), int(d["queries"])
            out = cls(ways=ways, shots=shots, queries=queries, seed=int(d["seed"]), classes=classes,
                      support=support, query=query, n_images=int(d["n_images"]),
                      labels_sha256=str(d["labels_sha256"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"damaged episodes file: {e}") from e
        e = len(tasks)
        if (e < 1 or tuple(classes.shape) != (e, ways) or tuple(support.shape) != (e, ways, shots)
                or tuple(query.shape) != (e, ways, queries) or int(d.get("episodes", e)) != e):
            raise ValueError("damaged episodes file: shapes do not match ways/shots/queries")
        idx = torch.cat([support.flatten(), query.flatten()])
        if int(idx.min()) < 0 or int(idx.max()) >= out.n_images:
            raise ValueError("damaged episodes file: an image index is out of range")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Episodes":
        """Read episodes written by :meth:`save`."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"episodes file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"episodes file {path} is not valid JSON: {e}") from e
        return cls.from_dict(d)


def sample_episodes(labels: Tensor, *, ways: int = 5, shots: int = 1, queries: int = 15, episodes: int = 600,
                    classes: Sequence[int] | None = None, seed: int = 0) -> Episodes:
    """Draw ``episodes`` N-way K-shot tasks from a labelled image set, all at once.

    Each episode picks ``ways`` distinct classes uniformly from the pool, then ``shots + queries``
    distinct images of each class uniformly without replacement: the first ``shots`` are the support
    set, the rest the queries, so no image is in both. All draws come from one CPU
    ``torch.Generator`` seeded with ``seed`` (independent of the device and of global state).

    Args:
        labels: (N,) int labels of the image set (e.g. the novel-class split).
        ways: classes per episode.
        shots: support images per class.
        queries: query images per class.
        episodes: number of episodes.
        classes: the class pool (novel classes); default every label present.
        seed: the seed.

    Returns:
        :class:`Episodes`.
    """
    ways = _check_pos_int(ways, "ways")
    shots = _check_pos_int(shots, "shots")
    queries = _check_pos_int(queries, "queries")
    episodes = _check_pos_int(episodes, "episodes")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    labels = _check_labels(labels, int(getattr(labels, "shape", [len(labels)])[0])).cpu()
    present = torch.unique(labels)
    if classes is None:
        pool = present
    else:
        pool = torch.tensor(sorted({int(c) for c in classes}), dtype=torch.int64)
        missing = sorted(set(pool.tolist()) - set(present.tolist()))
        if missing:
            raise ValueError(f"classes {missing} have no images (labels present: {present.tolist()})")
    n_cls = int(pool.numel())
    if n_cls < ways:
        raise ValueError(f"ways={ways} needs at least {ways} classes in the pool, got {n_cls}: {pool.tolist()}")
    per = shots + queries
    # Index table (n_cls, max_count) of each pool class's images in dataset order, padded with -1.
    in_pool = torch.isin(labels, pool)
    idx = torch.nonzero(in_pool).squeeze(1)
    cls_of = torch.searchsorted(pool, labels[idx])              # position of each image's class in the pool
    order = torch.argsort(cls_of, stable=True)
    idx, cls_of = idx[order], cls_of[order]
    counts = torch.bincount(cls_of, minlength=n_cls)
    if int(counts.min()) < per:
        bad = pool[counts < per].tolist()
        raise ValueError(f"shots + queries = {per} images per class are needed, but classes {bad} have only "
                         f"{counts[counts < per].tolist()} images")
    max_count = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(idx.numel()) - starts[cls_of]
    table = torch.full((n_cls, max_count), -1, dtype=torch.int64)
    table[cls_of, rank] = idx
    g = torch.Generator().manual_seed(seed)
    chosen = torch.argsort(torch.rand(episodes, n_cls, generator=g), dim=1, stable=True)[:, :ways]   # (E, ways)
    keys = torch.rand(episodes, ways, max_count, generator=g)
    valid = torch.arange(max_count).view(1, 1, -1) < counts[chosen].unsqueeze(-1)
    keys = torch.where(valid, keys, torch.full_like(keys, 2.0))  # padding sorts last
    pos = torch.argsort(keys, dim=-1, stable=True)[..., :per]                                     # (E, ways, per)
    picked = table[chosen.unsqueeze(-1).expand(-1, -1, per), pos]
    return Episodes(ways=ways, shots=shots, queries=queries, seed=seed, classes=pool[chosen],
                    support=picked[..., :shots].contiguous(), query=picked[..., shots:].contiguous(),
                    n_images=int(labels.shape[0]), labels_sha256=labels_digest(labels))


def load_or_sample_episodes(path: str | os.PathLike, labels: Tensor, *, ways: int = 5, shots: int = 1,
                            queries: int = 15, episodes: int = 600, classes: Sequence[int] | None = None,
                            seed: int = 0) -> Episodes:
    """Load the episodes at ``path`` if it exists (checking they fit ``labels`` and the settings),
    otherwise draw them with :func:`sample_episodes` and save them there."""
    path = Path(path)
    if path.exists():
        eps = Episodes.load(path)
        eps.check_labels(labels)
        want = {"ways": ways, "shots": shots, "queries": queries, "episodes": episodes, "seed": seed}
        got = {"ways": eps.ways, "shots": eps.shots, "queries": eps.queries, "episodes": len(eps), "seed": eps.seed}
        if want != got:
            raise ValueError(f"episodes file {path} holds {got}, not the requested {want}")
        if classes is not None and not set(eps.classes.unique().tolist()) <= {int(c) for c in classes}:
            raise ValueError(f"episodes file {path} uses classes outside the requested pool {sorted(classes)}")
        return eps
    eps = sample_episodes(labels, ways=ways, shots=shots, queries=queries, episodes=episodes, classes=classes,
                          seed=seed)
    eps.save(path)
    return eps


def _penultimate_module(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError(f"model {type(model).__name__} has no forward_features() method and no nn.Linear layer: "
                         "cannot find its penultimate features")
    return last


def extract_features(model: nn.Module, images: Tensor, *, mean: Sequence[float], std: Sequence[float],
                     device: str | torch.device | None = "cpu", batch_size: int = 500,
                     l2_normalize: bool = True) -> Tensor:
    """Penultimate features of uint8 images: the input to the model's final linear layer.

    Uses ``model.forward_features(x)`` when the model has it (every sagemix model does: the pooled
    features that feed ``fc``); otherwise a forward hook on the model's last ``nn.Linear`` module (in
    registration order) records that layer's input. The model runs in eval mode, without gradients.

    Args:
        model: the frozen backbone, already on ``device``.
        images: uint8 (N, C, H, W) or (N, H, W, C).
        mean: per-channel normalisation mean (0-1 scale).
        std: per-channel normalisation std (0-1 scale).
        device: where to run.
        batch_size: images per forward pass.
        l2_normalize: divide each feature vector by its L2 norm (the protocol's default).

    Returns:
        (N, D) float32 features on the CPU.
    """
    _check_common(model, batch_size)
    x_all = as_nchw_uint8(images)
    mean, std = check_mean_std(mean, std, x_all.shape[1])
    dev = resolve_device(device)
    feats: list[Tensor] = []
    from ..models.protocol import unwrap_model

    inner = unwrap_model(model)
    use_method = callable(getattr(inner, "forward_features", None))
    captured: list[Tensor] = []
    handle = None
    if not use_method:
        layer = _penultimate_module(inner)
        handle = layer.register_forward_pre_hook(lambda mod, args: captured.append(args[0].detach()))
    try:
        with eval_mode(model), torch.inference_mode():
            for x, _ in iter_batches(x_all, None, batch_size=batch_size, device=dev):
                x = normalize(x, mean, std)
                if use_method:
                    f = inner.forward_features(x)
                else:
                    captured.clear()
                    model(x)
                    if len(captured) != 1:
                        raise ValueError(f"the last nn.Linear of {type(inner).__name__} ran {len(captured)} times in "
                                         "one forward pass; give the model a forward_features() method")
                    f = captured[0]
                feats.append(f.flatten(1).float().cpu())
    finally:
        if handle is not None:
            handle.remove()
    out = torch.cat(feats)
    return F.normalize(out, dim=1) if l2_normalize else out


def logistic_regression(x: Tensor, y: Tensor, num_classes: int, *, C: float = 1.0, max_iter: int = 1000,
                        tol: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression for a batch of independent problems, fitted with L-BFGS.

    Minimises ``sum_e [0.5 ||W_e||^2 + C * sum_i CE(x_ei W_e + b_e, y_ei)]`` (scikit-learn's
    ``LogisticRegression(C=C)`` objective: L2 penalty on the weights, none on the bias) in float64.
    The problems are independent, so the optimum of the sum is each problem's own optimum; one
    L-BFGS run over all of them is deterministic and avoids a Python loop over episodes.

    Args:
        x: (E, S, D) features of E problems with S samples each.
        y: (E, S) int labels in [0, num_classes).
        num_classes: number of classes per problem.
        C: inverse regularisation strength (> 0).
        max_iter: the most L-BFGS iterations.
        tol: stop when every gradient entry is below this.

    Returns:
        ``(W, b)``: (E, D, num_classes) and (E, num_classes) float64.
    """
    if not (isinstance(C, (int, float)) and not isinstance(C, bool) and math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive float, got {C!r}")
    x = x.detach().to(torch.float64)
    e, _, d = x.shape
    onehot = F.one_hot(y.long(), num_classes).to(torch.float64)
    w = torch.zeros(e, d, num_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    b = torch.zeros(e, num_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        logits = torch.bmm(x, w) + b.unsqueeze(1)
        ce = -(onehot * torch.log_softmax(logits, dim=-1)).sum()
        loss = 0.5 * (w * w).sum() + C * ce
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def classify_episodes(features: Tensor, episodes: Episodes, *, classifier: str = "logreg", C: float = 1.0,
                      chunk: int = 200) -> Tensor:
    """Accuracy (percent) of each episode's queries, from the image set's features.

    Args:
        features: (N, D) features of the image set the episodes index into (L2-normalised by
            :func:`extract_features`).
        episodes: the :class:`Episodes`.
        classifier: ``"logreg"``, ``"proto"`` or ``"cosine"`` (see the module docstring).
        C: logistic-regression inverse regularisation.
        chunk: episodes solved together (bounds memory).

    Returns:
        (E,) float64 per-episode accuracies in [0, 100].
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    if not isinstance(features, Tensor) or features.ndim != 2 or not features.is_floating_point():
        raise TypeError(f"features must be a float tensor (N, D), got {getattr(features, 'shape', features)!r}")
    if features.shape[0] != episodes.n_images:
        raise ValueError(f"features has {features.shape[0]} rows but the episodes index {episodes.n_images} images")
    _check_pos_int(chunk, "chunk")
    w, s, q = episodes.ways, episodes.shots, episodes.queries
    out = []
    for start in range(0, len(episodes), chunk):
        sup = features[episodes.support[start:start + chunk]].double()          # (e, ways, shots, D)
        qry = features[episodes.query[start:start + chunk]].double()            # (e, ways, queries, D)
        e = sup.shape[0]
        qry_flat = qry.reshape(e, w * q, -1)
        truth = torch.arange(w).repeat_interleave(q).expand(e, -1)
        if classifier == "logreg":
            ys = torch.arange(w).repeat_interleave(s).expand(e, -1)
            wt, b = logistic_regression(sup.reshape(e, w * s, -1), ys, w, C=C)
            scores = torch.bmm(qry_flat, wt) + b.unsqueeze(1)
        else:
            centroids = sup.mean(dim=2)                                          # (e, ways, D)
            if classifier == "proto":
                scores = -torch.cdist(qry_flat, centroids).square()
            else:
                scores = torch.bmm(qry_flat, F.normalize(centroids, dim=-1).transpose(1, 2))
        pred = scores.argmax(dim=-1)
        out.append(100.0 * (pred == truth).double().mean(dim=1))
    return torch.cat(out)


def mean_ci95(accs: Tensor | Sequence[float]) -> tuple[float, float]:
    """Mean and 95% confidence half-width ``1.96 * std / sqrt(n)`` (population std, ddof = 0)."""
    a = torch.as_tensor(accs, dtype=torch.float64).flatten()
    if a.numel() == 0:
        raise ValueError("accs must hold at least one accuracy")
    return float(a.mean()), float(1.96 * a.std(correction=0) / math.sqrt(a.numel()))


def evaluate_fewshot(model: nn.Module, images: Tensor, labels: Tensor, *, mean: Sequence[float],
                     std: Sequence[float], device: str | torch.device | None = "cpu", batch_size: int = 500,
                     ways: int = 5, shots: Sequence[int] = (1, 5), queries: int = 15, episodes: int = 600,
                     classes: Sequence[int] | None = None, base_classes: Sequence[int] | None = None,
                     classifiers: Sequence[str] = ("logreg",), seed: int = 0,
                     episodes_dir: str | os.PathLike | None = None, tag: str = "") -> list[dict[str, Any]]:
    """The whole few-shot protocol on a frozen model: features once, then every (shots, classifier).

    Args:
        model: the backbone trained on the base classes, already on ``device``.
        images: uint8 images of the novel-class image set.
        labels: (N,) labels of that set.
        mean: per-channel normalisation mean of the backbone's training data (0-1 scale).
        std: per-channel normalisation std (0-1 scale).
        device: where to run the backbone.
        batch_size: images per forward pass.
        ways: classes per episode.
        shots: the support sizes to evaluate (each gets its own episodes).
        queries: query images per class.
        episodes: episodes per setting.
        classes: the novel class pool in ``labels``' label space (default: every label).
        base_classes: the backbone's training classes in the same label space, when it is the same
            (e.g. the offline dataset split 0-4 / 5-9); a ValueError if they overlap the pool.
        classifiers: any of ``"logreg"``, ``"proto"``, ``"cosine"``.
        seed: episode seed (the same for every method, so all are judged on the same tasks).
        episodes_dir: where episode JSON files are kept (loaded if present, else drawn and saved);
            None keeps them in memory only.
        tag: a name for the image set, used in the episode file names (e.g. ``"mini_imagenet-test"``).

    Returns:
        One row per (shots, classifier): ``ways, shots, queries, episodes, classifier, acc, ci95,
        seed, episodes_file``; accuracies in percent.
    """
    if isinstance(shots, int):
        shots = (shots,)
    for c in classifiers:
        if c not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {c!r}")
    x_all = as_nchw_uint8(images)
    labels = _check_labels(labels, x_all.shape[0]).cpu()
    pool = sorted(set(torch.unique(labels).tolist())) if classes is None else sorted({int(c) for c in classes})
    if base_classes is not None:
        overlap = sorted(set(pool) & {int(c) for c in base_classes})
        if overlap:
            raise ValueError(f"novel classes {pool} overlap the backbone's base classes {sorted(base_classes)} "
                             f"at {overlap}: few-shot classes must be unseen in training")
    sel = torch.isin(labels, torch.tensor(pool, dtype=torch.int64))
    if not bool(sel.any()):
        raise ValueError(f"no image has a label in classes {pool}")
    # Features only for the novel-class images; episodes index into that subset.
    idx = torch.nonzero(sel).squeeze(1)
    sub_labels = labels[idx]
    feats = extract_features(model, x_all[idx], mean=mean, std=std, device=device, batch_size=batch_size)
    digest = labels_digest(sub_labels)[:12]
    rows = []
    for k in shots:
        k = _check_pos_int(k, "shots")
        if episodes_dir is not None:
            name = (f"episodes_{tag + '_' if tag else ''}{ways}way_{k}shot_{queries}q_{episodes}ep_seed{seed}_"
                    f"{digest}.json")
            path: Path | None = Path(episodes_dir) / name
            eps = load_or_sample_episodes(path, sub_labels, ways=ways, shots=k, queries=queries, episodes=episodes,
                                          seed=seed)
        else:
            path = None
            eps = sample_episodes(sub_labels, ways=ways, shots=k, queries=queries, episodes=episodes, seed=seed)
        for c in classifiers:
            acc, ci = mean_ci95(classify_episodes(feats, eps, classifier=c))
            rows.append({"ways": ways, "shots": k, "queries": queries, "episodes": episodes, "classifier": c,
                         "acc": acc, "ci95": ci, "seed": seed, "classes": pool,
                         "episodes_file": str(path) if path is not None else None})
    return rows
