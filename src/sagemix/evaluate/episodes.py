"""Few-shot episodes: fixed N-way K-shot tasks drawn once from a seed and saved, so every method meets the same ones.

:func:`sample_episodes` draws ``episodes`` tasks of ``ways`` classes with ``shots`` support and ``queries``
query images per class (no image in both), batched from one seeded torch generator; :class:`Episodes` saves
them to / loads them from JSON, recording a digest of the labels they were drawn for (a file is refused for
other labels). Used by :mod:`sagemix.evaluate.fewshot`.

Example:
    >>> import torch
    >>> eps = sample_episodes(torch.arange(10).repeat_interleave(20), ways=5, shots=1, queries=3, episodes=4, seed=0)
    >>> eps.support.shape, eps.query.shape
    (torch.Size([4, 5, 1]), torch.Size([4, 5, 3]))
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..checks import check_int, is_int
from ..utils import atomic_write_json
from .accuracy import check_labels

__all__ = ["Episodes", "sample_episodes", "load_or_sample_episodes", "labels_digest", "parse_classes"]

_FORMAT = "sagemix-episodes"
_VERSION = 1


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
    ways = check_int(ways, "ways", 1)
    shots = check_int(shots, "shots", 1)
    queries = check_int(queries, "queries", 1)
    episodes = check_int(episodes, "episodes", 1)
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    labels = check_labels(labels, int(getattr(labels, "shape", [len(labels)])[0])).cpu()
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
