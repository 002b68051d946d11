"""Where SAGE's coarse-to-fine search falls short of the random search: noise-like saliency maps.

The coarse-to-fine search (``sagemix.functional.sage_search``) reached at least the random search's
objective on every measured pair of smooth (blob) maps. On noise-like maps the coarse levels say
little about the full-resolution objective; this script counts, for B = 128 pairs per image side,
the pairs where the coarse-to-fine search's objective is below the best of the paper's random 1% of
shifts, on uniform-noise maps and on the same maps after SAGE's Gaussian smoothing (5x5, sigma 1).

Usage: python benchmarks/sage_search_noise.py [--sizes 64 96 128] [--pairs 128] [--seed 0]
"""
from __future__ import annotations

import argparse

import torch

from sagemix.functional.sage import candidate_shifts, gaussian_smooth, prepare_maps
from sagemix.functional.sage_objective import objective_from_maps
from sagemix.functional.sage_search import coarse_to_fine_search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("maps            side  c2f < random (pairs)  largest shortfall  mean J: c2f / random")
    for kind in ("noise", "smoothed noise"):
        for size in args.sizes:
            g = torch.Generator().manual_seed(args.seed)
            sal = torch.rand(args.pairs, size, size, generator=g)
            if kind == "smoothed noise":
                sal = gaussian_smooth(sal, 5, 1.0)
            perm = torch.randperm(args.pairs, generator=g)
            prior = 0.3 + 0.3 * torch.rand(args.pairs, generator=g)
            a, p = prepare_maps(sal, perm, prior)
            shifts = candidate_shifts(size, size, rand_pos=0.01, generator=g)
            j_rand = objective_from_maps(a, p, shifts).max(dim=1).values
            _, j_c2f = coarse_to_fine_search(a, p)
            below = int((j_c2f < j_rand - 1e-6).sum())
            print(f"{kind:<15} {size:>4}  {below:>9} / {args.pairs:<9} {float((j_rand - j_c2f).max()):>17.2e}"
                  f"  {float(j_c2f.mean()):.4f} / {float(j_rand.mean()):.4f}")


if __name__ == "__main__":
    main()
