"""Tests for sagemix.evaluate.robustness: accuracy over a (tiny, generated) CIFAR-C folder."""
from __future__ import annotations

import csv
import importlib.util
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("cv2")
pytest.importorskip("scipy")
pytest.importorskip("skimage")

from sagemix.evaluate.corruptions import (  # noqa: E402
    ALL_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, generate_corrupted, load_corrupted)
from sagemix.evaluate.robustness import (  # noqa: E402
    evaluate_corruptions, relative_corruption_error, results_to_rows)

HAS_FROST = importlib.util.find_spec("imagecorruptions") is not None
MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.3)
N = 5


@pytest.fixture(scope="module")
def c_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("c")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    imgs = np.stack([np.clip(128 + 80 * np.sin(xx / (2 + k))[..., None] * np.array([1, 0.5, -1])
                             + rng.normal(0, 25, (32, 32, 3)), 0, 255) for k in range(N)]).astype(np.uint8)
    labels = np.array([0, 1, 2, 1, 0])
    kwargs = {} if HAS_FROST else {"frost_source": "procedural"}
    generate_corrupted(imgs, labels, out, include_extra=True, seed=1, progress=False, **kwargs)
    return out


class Brightness(nn.Module):
    """A fixed 3-class rule: class = which channel has the largest normalised mean (no training needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * self.scale


def _manual_acc(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255
    x = (x - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = model.double()(x).argmax(1).numpy()
    model.float()
    return 100.0 * float((pred == labels).mean())


def test_results_consistent_with_parts_and_direct_computation(c_dir) -> None:
    model = Brightness()
    res = evaluate_corruptions(model, c_dir, mean=MEAN, std=STD, batch_size=3)
    assert list(res["corruptions"]) == list(CORRUPTIONS)  # extras only when asked
    assert res["complete"] is True and res["mean_over"] == list(CORRUPTIONS)
    assert res["num_images"] == N and res["severities"] == [1, 2, 3, 4, 5]
    for name, r in res["corruptions"].items():
        assert len(r["acc"]) == 5 and r["benchmark"] is True
        for a, e in zip(r["acc"], r["error"]):
            assert 0 <= a <= 100 and a + e == pytest.approx(100)
            assert (a * N / 100) == pytest.approx(round(a * N / 100))  # a whole number of images
        assert r["mean_acc"] == pytest.approx(np.mean(r["acc"]))
        assert r["mean_error"] == pytest.approx(np.mean(r["error"]))
    assert res["mean_acc"] == pytest.approx(np.mean([r["mean_acc"] for r in res["corruptions"].values()]))
    assert res["mean_error"] == pytest.approx(100 - res["mean_acc"])
    # Direct computation for two corruptions, every severity.
    for name in ("fog", "contrast"):
        x, y = load_corrupted(c_dir, name)
        for s in range(1, 6):
            assert res["corruptions"][name]["acc"][s - 1] == pytest.approx(
                _manual_acc(model, x[(s - 1) * N:s * N], y[(s - 1) * N:s * N]))
    assert "extra_mean_acc" not in res
    assert not any("mce" in k.lower() for k in res)
    json.dumps(res)  # JSON-ready


def test_extras_subset_and_max_images(c_dir) -> None:
    model = Brightness()
    res = evaluate_corruptions(model, c_dir, mean=MEAN, std=STD, corruptions=["fog", "contrast"],
                               include_extra=True, max_images=2)
    assert list(res["corruptions"]) == ["fog", "contrast"] + list(EXTRA_CORRUPTIONS)
    assert res["complete"] is False and res["mean_over"] == ["fog", "contrast"]
    assert res["num_images"] == 2
    assert res["mean_acc"] == pytest.approx((res["corruptions"]["fog"]["mean_acc"]
                                             + res["corruptions"]["contrast"]["mean_acc"]) / 2)
    assert res["extra_mean_acc"] == pytest.approx(np.mean([res["corruptions"][n]["mean_acc"]
                                                           for n in EXTRA_CORRUPTIONS]))
    assert all(res["corruptions"][n]["benchmark"] is False for n in EXTRA_CORRUPTIONS)
    x, y = load_corrupted(c_dir, "fog", severity=2)
    assert res["corruptions"]["fog"]["acc"][1] == pytest.approx(_manual_acc(model, x[:2], y[:2]))
    only_extra = evaluate_corruptions(model, c_dir, mean=MEAN, std=STD, corruptions=["spatter"])
    assert "mean_acc" not in only_extra and only_extra["extra_mean_acc"] == only_extra["corruptions"]["spatter"]["mean_acc"]


def test_rows_for_csv(c_dir) -> None:
    res = evaluate_corruptions(Brightness(), c_dir, mean=MEAN, std=STD, include_extra=True)
    rows = results_to_rows(res)
    assert len(rows) == len(ALL_CORRUPTIONS) * 6 + 2
    first = rows[0]
    assert first == {"corruption": "gaussian_noise", "severity": 1, "acc": res["corruptions"]["gaussian_noise"]["acc"][0],
                     "error": res["corruptions"]["gaussian_noise"]["error"][0], "benchmark": True}
    assert rows[-2]["corruption"] == "mean" and rows[-2]["acc"] == res["mean_acc"]
    assert rows[-1]["corruption"] == "extra_mean" and rows[-1]["acc"] == res["extra_mean_acc"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(first))
    writer.writeheader()
    writer.writerows(rows)
    assert buf.getvalue().count("\n") == len(rows) + 1
    with pytest.raises(ValueError, match="evaluate_corruptions"):
        results_to_rows({"acc": 1})


def test_model_mode_restored_and_perfect_model(c_dir) -> None:
    class Oracle(nn.Module):
        """Knows the labels by image order: checks labels and batching line up (label = f(position))."""

        def __init__(self) -> None:
            super().__init__()
            self.seen = 0
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert not self.training
            labels = torch.tensor([0, 1, 2, 1, 0])
            idx = torch.arange(self.seen, self.seen + x.shape[0]) % N
            self.seen += x.shape[0]
            return nn.functional.one_hot(labels[idx], 3).float() + 0 * self.bn(x).mean()

    model = Oracle().train()
    res = evaluate_corruptions(model, c_dir, mean=MEAN, std=STD, corruptions=["fog", "snow"], batch_size=2)
    assert model.training
    assert res["mean_acc"] == 100.0 and res["mean_error"] == 0.0


def test_relative_corruption_error_names_its_baseline(c_dir) -> None:
    a = evaluate_corruptions(Brightness(), c_dir, mean=MEAN, std=STD, corruptions=["fog", "contrast", "snow"])
    base = json.loads(json.dumps(a))
    for r in base["corruptions"].values():
        r["error"] = [e * 2 + 1 for e in r["error"]]
    rel = relative_corruption_error(a, base, baseline_name="runs/vanilla_seed0")
    assert rel["baseline"] == "runs/vanilla_seed0" and rel["mean_over"] == ["snow", "fog", "contrast"]
    for n in ("fog", "contrast", "snow"):
        e = a["corruptions"][n]["error"]
        assert rel["relative_error"][n] == pytest.approx(100 * sum(e) / sum(2 * v + 1 for v in e))
    with pytest.raises(ValueError, match="baseline_name"):
        relative_corruption_error(a, base, baseline_name="")


def test_errors(c_dir, tmp_path) -> None:
    m = Brightness()
    with pytest.raises(TypeError, match="nn.Module"):
        evaluate_corruptions(lambda x: x, c_dir, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="mean"):
        evaluate_corruptions(m, c_dir, mean=(0.5, 0.5), std=STD)
    with pytest.raises(ValueError, match="std must hold finite numbers > 0"):
        evaluate_corruptions(m, c_dir, mean=MEAN, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_corruptions(m, c_dir, mean=MEAN, std=STD, batch_size=0)
    with pytest.raises(ValueError, match="max_images"):
        evaluate_corruptions(m, c_dir, mean=MEAN, std=STD, max_images=0)
    with pytest.raises(ValueError, match="corruptions"):
        evaluate_corruptions(m, c_dir, mean=MEAN, std=STD, corruptions=["rain"])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        evaluate_corruptions(m, tmp_path / "nope", mean=MEAN, std=STD)
    with pytest.raises(FileNotFoundError, match="gaussian_noise.npy"):
        evaluate_corruptions(m, tmp_path, mean=MEAN, std=STD)

    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean()

    with pytest.raises(ValueError, match="logits"):
        evaluate_corruptions(Bad(), c_dir, mean=MEAN, std=STD, corruptions=["fog"])
