"""SAGE cost benchmark: the mixing kernel against a per-pair loop, and a SAGE step against a vanilla step.

Prints, measured in one run on this machine:
  1. ``sage_mix`` at B=100, 3x32x32 for K=39 random candidates and for the exhaustive search
     (3,969 shifts), and the same for two loop implementations: a Python loop over the pairs with
     each pair's candidates batched through ``grid_sample``, and the structure of the authors'
     implementation, a Python loop over pairs and candidates with one ``grid_sample`` per candidate;
  2. one SAGE training step (two forward/backward passes + mixing) relative to one vanilla step on
     a CIFAR-size PreActResNet18 at B=100, and the share of the step spent mixing.

Usage: python benchmarks/bench_sage.py [--device cuda] [--repeats 5] [--skip-loop-exhaustive]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sagemix import MixStep, create_mixer
from sagemix.functional.sage import EPS, candidate_shifts, gaussian_smooth, normalize_saliency, sage_mix, translate
from sagemix.models import create_model


def timeit(fn, repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def per_pair_loop(images, saliency, perm, prior, shifts):
    """The research code's structure: a loop over pairs; each pair's K shifted partner maps made with
    grid_sample (zero padding), the objective over the K candidates, the best one applied."""
    b, c, h, w = images.shape
    s = normalize_saliency(saliency)
    k = shifts.shape[0]
    mixed = torch.empty_like(images)
    lam = torch.empty(b, device=images.device)
    base = F.affine_grid(torch.eye(2, 3, device=images.device).unsqueeze(0), (1, 1, h, w), align_corners=False)
    for n in range(b):
        a = prior * s[n]
        p = (1 - prior) * s[perm[n]]
        # grid coordinates of the source pixel (i - dy, j - dx) in [-1, 1]
        offs = torch.stack([-shifts[:, 1].float() * 2 / w, -shifts[:, 0].float() * 2 / h], dim=1)
        grid = base + offs.view(k, 1, 1, 2)
        q = F.grid_sample(p.expand(k, 1, h, w), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
        obj = ((a * a + q * q) / (a + q).clamp_min(EPS)).sum(dim=(1, 2))
        best = int(obj.argmax())
        mask = a / (a + q[best]).clamp_min(EPS)
        partner = F.grid_sample(images[perm[n]].unsqueeze(0), grid[best:best + 1], mode="nearest",
                                padding_mode="zeros", align_corners=False)[0]
        mixed[n] = mask * images[n] + (1 - mask) * partner
        lam[n] = mask.mean()
    return mixed, lam


def per_pair_per_candidate_loop(images, saliency, perm, prior, shifts):
    """The reference structure taken literally: a Python loop over pairs and, inside, over candidates,
    each candidate one grid_sample of the partner's map."""
    b, c, h, w = images.shape
    s = normalize_saliency(saliency)
    base = F.affine_grid(torch.eye(2, 3, device=images.device).unsqueeze(0), (1, 1, h, w), align_corners=False)
    mixed = torch.empty_like(images)
    lam = torch.empty(b, device=images.device)
    for n in range(b):
        a = prior * s[n]
        p = (1 - prior) * s[perm[n]].view(1, 1, h, w)
        best, best_grid, best_q = -1.0, None, None
        for dy, dx in shifts.tolist():
            grid = base + torch.tensor([-dx * 2 / w, -dy * 2 / h], device=images.device)
            q = F.grid_sample(p, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
            obj = float(((a * a + q * q) / (a + q).clamp_min(EPS)).sum())
            if obj > best:
                best, best_grid, best_q = obj, grid, q
        mask = a / (a + best_q).clamp_min(EPS)
        partner = F.grid_sample(images[perm[n]].unsqueeze(0), best_grid, mode="nearest", padding_mode="zeros",
                                align_corners=False)[0]
        mixed[n] = mask * images[n] + (1 - mask) * partner
        lam[n] = mask.mean()
    return mixed, lam


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--skip-loop-exhaustive", action="store_true", help="skip the slow per-pair exhaustive loops")
    args = ap.parse_args()
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    b = args.batch_size
    images = torch.randn(b, 3, 32, 32, generator=g).to(dev)
    sal = gaussian_smooth(torch.randn(b, 32, 32, generator=g).pow(2)).to(dev)
    perm = torch.randperm(b, generator=g).to(dev)
    k39 = candidate_shifts(32, 32, rand_pos=0.01, generator=g).to(dev)
    kall = candidate_shifts(32, 32, rand_pos=None).to(dev)
    print(f"device: {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'})"
          f", torch {torch.__version__}")

    # Correctness guard: the loop and the batched kernel agree.
    m1, l1, _ = sage_mix(images, sal, perm, 0.4, k39)
    m2, l2 = per_pair_loop(images, sal, perm, 0.4, k39)
    m3, l3 = per_pair_per_candidate_loop(images, sal, perm, 0.4, k39)
    assert torch.allclose(l1, l2, atol=1e-5) and torch.allclose(l1, l3, atol=1e-5), "the loops and sage_mix disagree"

    rows = []
    for name, shifts in (("K=39", k39), ("exhaustive K=3969", kall)):
        exhaustive = name.startswith("exhaustive")
        t_fast = timeit(lambda: sage_mix(images, sal, perm, 0.4, shifts), args.repeats, dev)
        if exhaustive and args.skip_loop_exhaustive:
            t_loop = t_full = float("nan")
        else:
            t_loop = timeit(lambda: per_pair_loop(images, sal, perm, 0.4, shifts),
                            1 if exhaustive else args.repeats, dev, warmup=0)
            t_full = timeit(lambda: per_pair_per_candidate_loop(images, sal, perm, 0.4, shifts),
                            1 if exhaustive else args.repeats, dev, warmup=0)
        rows.append((name, t_fast, t_loop, t_full))
    print(f"\nsage_mix, B={b}, 3x32x32 (median of {args.repeats}; the exhaustive loops once)")
    print("| candidates | sagemix (ms) | loop over pairs, candidates batched (ms) | loop over pairs and candidates "
          "(ms) | speed-up vs the double loop |")
    print("|---|---|---|---|---|")
    for name, t_fast, t_loop, t_full in rows:
        print(f"| {name} | {t_fast * 1e3:.2f} | {t_loop * 1e3:.1f} | {t_full * 1e3:.0f} | {t_full / t_fast:.0f}x |")

    # Training step: SAGE vs vanilla on PreActResNet18, B=100.
    model = create_model("preactresnet18", num_classes=10).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    y = torch.randint(0, 10, (b,), generator=g).to(dev)
    steps = {name: MixStep(model, create_mixer(name, num_classes=10, generator=torch.Generator().manual_seed(0)))
             for name in ("vanilla", "sage")}

    def run(step):
        opt.zero_grad(set_to_none=True)
        step(images, y)
        opt.step()

    reps = max(3, args.repeats)
    t_van = timeit(lambda: run(steps["vanilla"]), reps, dev)
    t_sage = timeit(lambda: run(steps["sage"]), reps, dev)
    sage_mixer = steps["sage"].mixer
    t_mix = timeit(lambda: sage_mixer(images, y, saliency=sal), reps, dev)
    print(f"\nTraining step, PreActResNet18, B={b}, 3x32x32 (median of {reps})")
    print("| | time (ms) | ratio to vanilla |")
    print("|---|---|---|")
    print(f"| vanilla step | {t_van * 1e3:.1f} | 1.00 |")
    print(f"| SAGE step | {t_sage * 1e3:.1f} | {t_sage / t_van:.2f} |")
    print(f"| SAGE mixing alone (K=39, incl. draws) | {t_mix * 1e3:.2f} | {t_mix / t_van:.3f} "
          f"({100 * t_mix / t_sage:.1f}% of a SAGE step) |")


if __name__ == "__main__":
    main()
