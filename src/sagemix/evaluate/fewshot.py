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

import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int, check_mean_std, is_number
from .episodes import Episodes, labels_digest, load_or_sample_episodes, parse_classes, sample_episodes
from .accuracy import (check_model_and_batch, check_labels, as_nchw_uint8, eval_mode, iter_batches,
                       normalize, resolve_device)

__all__ = ["Episodes", "sample_episodes", "load_or_sample_episodes", "labels_digest", "extract_features",
           "classify_episodes", "logistic_regression", "mean_ci95", "evaluate_fewshot", "parse_classes",
           "CLASSIFIERS"]

CLASSIFIERS = ("logreg", "proto", "cosine")
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
    check_model_and_batch(model, batch_size)
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
    if not (is_number(C) and math.isfinite(C) and C > 0):
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
    check_int(chunk, "chunk", 1)
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
    labels = check_labels(labels, x_all.shape[0]).cpu()
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
        k = check_int(k, "shots", 1)
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
