"""sagemix.viz and `sagemix show`: PNGs of the expected pixel size, the pair mixes, saliency, errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from sagemix import viz  # noqa: E402

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _model(k: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(6, k)).eval()


def _data(n: int = 8, h: int = 12, w: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    u8 = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    return viz.normalize_uint8(u8, MEAN, STD), torch.arange(n) % 4


def _png(path: Path) -> tuple[tuple[int, int], torch.Tensor]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        arr = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
        return im.size, arr


def test_grid_size_formula() -> None:
    lay = viz.Layout(cell=40, title=10, foot=12, margin=4)
    assert viz.grid_size(2, 3, lay) == (3 * 44 + 4, 2 * (10 + 40 + 12 + 4) + 4)


def test_figure_mixes_png_size_and_content(tmp_path: Path) -> None:
    x, y = _data()
    lay = viz.Layout(cell=48, title=16, foot=16, margin=4)
    p = viz.figure_mixes(x, y, model=_model(), mean=MEAN, std=STD, path=tmp_path / "f1.png",
                         methods=("mixup", "cutmix", "sage"), n_pairs=2, layout=lay)
    size, pixels = _png(p)
    assert size == viz.grid_size(2, 5, lay)
    assert pixels.float().std() > 10  # pictures, not a blank canvas


def test_figure_anatomy_and_rearrangement_sizes(tmp_path: Path) -> None:
    x, y = _data()
    lay = viz.Layout(cell=32, title=14, foot=24, margin=4)
    p3 = viz.figure_sage_anatomy(x, y, model=_model(), mean=MEAN, std=STD, path=tmp_path / "f3.png",
                                 pairs=[(0, 1)], layout=lay)
    assert _png(p3)[0] == viz.grid_size(1, 7, lay)
    p4 = viz.figure_rearrangement(x, y, model=_model(), mean=MEAN, std=STD, path=tmp_path / "f4.png",
                                  pairs=[(0, 1), (2, 3)], layout=lay)
    assert _png(p4)[0] == viz.grid_size(2, 6, lay)


def test_mix_pair_mixup_is_the_weighted_pair() -> None:
    x, y = _data(2)
    mixed, target, params = viz.mix_pair("mixup", x, y, 4, None, seed=0, min_weight=0.2)
    w1, w2 = float(target[y[0]]), float(target[y[1]])
    assert w1 >= 0.2 and w2 >= 0.2 and w1 + w2 == pytest.approx(1.0)
    torch.testing.assert_close(mixed, w1 * x[0] + w2 * x[1], rtol=1e-5, atol=1e-5)
    # Same seed, same draw.
    again = viz.mix_pair("mixup", x, y, 4, None, seed=0, min_weight=0.2)
    assert torch.equal(again[2].lam, params.lam) and torch.equal(again[0], mixed)
    # The returned params replay the draw.
    from sagemix.mixers import create_mixer

    replay = create_mixer("mixup", num_classes=4).apply(x.repeat(len(params.index) // 2, 1, 1, 1),
                                                        y.repeat(len(params.index) // 2), params)
    assert torch.equal(replay.images[0], mixed) or torch.equal(replay.images[1], mixed)
    # One generator for several rows: each row gets its own draw (it was the same lam on every row).
    g = torch.Generator().manual_seed(0)
    lams = {round(float(viz.mix_pair("mixup", x, y, 4, None, generator=g)[1][y[0]]), 6) for _ in range(4)}
    assert len(lams) == 4


def test_mix_pair_cutmix_pixels_come_from_the_pair() -> None:
    x, y = _data(2)
    mixed, target, _ = viz.mix_pair("cutmix", x, y, 4, None, seed=3)
    from_1 = (mixed == x[0]).all(0)
    from_2 = (mixed == x[1]).all(0)
    assert bool((from_1 | from_2).all())
    assert float(from_1.float().mean()) == pytest.approx(float(target[y[0]]), abs=1e-6)


def test_mix_pair_errors() -> None:
    x, y = _data(2)
    with pytest.raises(ValueError, match="2 different labels"):
        viz.mix_pair("mixup", x, torch.tensor([1, 1]), 4, None)
    with pytest.raises(RuntimeError, match="no draw"):
        viz.mix_pair("vanilla", x, y, 4, None, tries=3)


def test_input_gradient_matches_autograd_and_keeps_mode() -> None:
    m = _model().train()
    x, y = _data(3)
    g = viz.input_gradient(m, x[:3], y[:3])
    assert m.training  # restored
    assert all(p.grad is None for p in m.parameters())  # only the input gradient was taken
    m.eval()  # the reference: eval mode (running batch-norm statistics), mean cross-entropy
    xx = x[:3].clone().requires_grad_(True)
    nn.functional.cross_entropy(m(xx), y[:3]).backward()
    torch.testing.assert_close(g, xx.grad)


def test_normalize_denormalize_round_trip() -> None:
    u8 = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    back = viz.denormalize(viz.normalize_uint8(u8, MEAN, STD), MEAN, STD)
    torch.testing.assert_close(back, u8.permute(0, 2, 3, 1).float() / 255, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        viz.normalize_uint8(u8.float(), MEAN, STD)
    with pytest.raises(ValueError, match="mean"):
        viz.denormalize(u8.float(), (1, 2), STD)


def test_pick_pairs() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    pairs = viz.pick_pairs(labels, 3, generator=torch.Generator().manual_seed(0))
    assert len(pairs) == 3
    assert all(labels[i] != labels[j] for i, j in pairs)
    assert len({i for p in pairs for i in p}) == 6
    with pytest.raises(ValueError, match="different labels"):
        viz.pick_pairs(torch.zeros(6, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="n_pairs"):
        viz.pick_pairs(labels, 0)


def test_load_image_folder(tmp_path: Path) -> None:
    for i, size in enumerate([(20, 10), (8, 8), (30, 40)]):
        Image.new("RGB", size, (40 * i, 100, 200)).save(tmp_path / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    imgs, names = viz.load_image_folder(tmp_path, size=16)
    assert imgs.shape == (3, 3, 16, 16) and imgs.dtype == torch.uint8
    assert names == ["p0", "p1", "p2"]
    assert int(imgs[1, 0, 0, 0]) == 40 and int(imgs[1, 2, 5, 5]) == 200
    with pytest.raises(FileNotFoundError, match="at least 2 images"):
        viz.load_image_folder(_one_image_dir(tmp_path), size=16)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        viz.load_image_folder(tmp_path / "nope")


def _one_image_dir(tmp_path: Path) -> Path:
    d = tmp_path / "one"
    d.mkdir()
    Image.new("RGB", (4, 4)).save(d / "a.png")
    return d


def test_show_cli_user_images_with_checkpoint(tmp_path: Path) -> None:
    """`sagemix show` on a folder of pictures with a trained checkpoint (saved by the trainer's own code)."""
    from sagemix.train import load_config, train

    run = tmp_path / "run"
    cfg = load_config(None, overrides={"dataset": "offline", "model": "smallnet", "epochs": 1, "batch_size": 32,
                                       "train_limit": 64, "test_limit": 32, "milestones": [], "device": "cpu",
                                       "progress": False, "out": str(run), "lr": 0.05})
    train(cfg, log=None)
    pics = tmp_path / "pics"
    pics.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        arr = torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8, generator=g)
        Image.fromarray(arr.numpy()).save(pics / f"im{i}.png")
    out = tmp_path / "figs"
    proc = subprocess.run([sys.executable, "-m", "sagemix", "show", "--images", str(pics), "--image-size", "24",
                           "--checkpoint", str(run), "--methods", "mixup", "sage", "--pairs", "2",
                           "--cell", "48", "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lay = viz.Layout(cell=48)
    assert _png(out / "mixes.png")[0] == viz.grid_size(2, 4, lay)
    assert _png(out / "sage_anatomy.png")[0] == viz.grid_size(2, 7, lay)
    assert _png(out / "rearrangement.png")[0] == viz.grid_size(2, 6, viz.Layout(cell=48, foot=40))
    bad = subprocess.run([sys.executable, "-m", "sagemix", "show", "--images", str(tmp_path / "none"),
                          "--checkpoint", str(run), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_load_image_folder_spreads_over_classes_and_groups(tmp_path: Path) -> None:
    for c, colour in (("a_cats", 10), ("b_dogs", 120), ("c_owls", 240)):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.new("RGB", (6, 6), (colour, i, 0)).save(tmp_path / c / f"{i}.png")
    Image.new("RGB", (6, 6)).save(tmp_path / "loose.png")
    imgs, names, groups = viz.load_image_folder(tmp_path, size=6, limit=6, groups=True)
    assert imgs.shape[0] == 6 and len(names) == 6
    # sorted: a_cats/0..4, b_dogs/0..4, c_owls/0..4, loose.png; 6 of the 16 spread evenly (not the first 6,
    # which are five cats and a dog): every class folder is seen, two pictures each
    assert groups.tolist() == [0, 0, 1, 1, 2, 2]
    assert imgs[:, 0, 0, 0].tolist() == [10, 10, 120, 120, 240, 240]
    _, _, groups = viz.load_image_folder(tmp_path, size=6, groups=True)  # the loose picture: a group of its own
    assert groups.tolist() == [1] * 5 + [2] * 5 + [3] * 5 + [0]


def test_show_pairs_own_images_across_subfolders() -> None:
    from sagemix.commands.show import _predict_pair_labels

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    x = torch.randn(8, 3, 4, 4)
    groups = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])  # folder order would pair the first class with itself
    labels, pairs = _predict_pair_labels(model, x, groups, 3, seed=0)
    assert len(pairs) == 3 and len({i for p in pairs for i in p}) == 6
    assert sum(int(groups[i] != groups[j]) for i, j in pairs) == 2  # only two images of class 1: two cross pairs
    assert all(labels[i] != labels[j] for i, j in pairs)


def test_saliency_panel_is_never_silently_black(tmp_path: Path) -> None:
    from sagemix.viz.figures import _saliency_panel

    sal = torch.rand(40, 40, generator=torch.Generator().manual_seed(0))
    sal[3, 4] = 1e4  # one hot pixel would leave the rest black under min-max scaling
    img, note = _saliency_panel(sal, "s")
    assert note is None and float(img.max()) == 1.0 and float(img.median()) > 0.3
    with pytest.warns(UserWarning, match="all zero"):
        _, note = _saliency_panel(torch.zeros(3, 3), "saliency 1")
    assert "all zero" in note
    # A model certain of everything (constant logits: no input gradient) says so in the anatomy figure.
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 16, 4))
    nn.init.zeros_(flat[1].weight)
    x, y = _data()
    with pytest.warns(UserWarning, match="saliency 1 is all zero"):
        viz.figure_sage_anatomy(x, y, model=flat, mean=MEAN, std=STD, path=tmp_path / "a.png", pairs=[(0, 1)],
                                layout=viz.Layout(cell=32, title=14, foot=24, margin=4))
