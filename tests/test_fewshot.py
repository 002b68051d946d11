"""Few-shot protocol: episode sampling, JSON round trip, features, classifiers, confidence interval."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from sagemix.evaluate.fewshot import (CLASSIFIERS, Episodes, classify_episodes, evaluate_fewshot, extract_features,
                                      labels_digest, load_or_sample_episodes, logistic_regression, mean_ci95,
                                      parse_classes, sample_episodes)


def _labels(n_classes: int = 10, per_class: int = 25, shuffle_seed: int = 0) -> torch.Tensor:
    lab = torch.arange(n_classes).repeat_interleave(per_class)
    return lab[torch.randperm(lab.numel(), generator=torch.Generator().manual_seed(shuffle_seed))]


# ------------------------------------------------------------------------------------------------ episodes
@pytest.mark.parametrize("shots", [1, 5])
def test_episode_properties(shots):
    labels = _labels()
    eps = sample_episodes(labels, ways=5, shots=shots, queries=15, episodes=50, classes=[3, 4, 5, 6, 7, 8, 9], seed=1)
    assert len(eps) == 50
    assert eps.support.shape == (50, 5, shots) and eps.query.shape == (50, 5, 15)
    for e in range(50):
        cls = eps.classes[e]
        assert len(set(cls.tolist())) == 5                       # distinct classes
        assert set(cls.tolist()) <= {3, 4, 5, 6, 7, 8, 9}        # from the pool only (disjoint from base 0-2)
        sup, qry = eps.support[e], eps.query[e]
        all_idx = torch.cat([sup.flatten(), qry.flatten()])
        assert all_idx.unique().numel() == all_idx.numel()      # no image twice, none in support and query
        # every image carries the label of its episode class
        assert torch.equal(labels[sup], cls.view(5, 1).expand(5, shots))
        assert torch.equal(labels[qry], cls.view(5, 1).expand(5, 15))


def test_episodes_cover_pool_roughly_uniformly():
    labels = _labels(n_classes=8, per_class=20)
    eps = sample_episodes(labels, ways=4, shots=1, queries=3, episodes=800, seed=0)
    counts = torch.bincount(eps.classes.flatten(), minlength=8).double()
    # each class appears in 4/8 of the episodes: 400 expected, binomial sd ~14
    assert (counts - 400).abs().max() < 70
    img_counts = torch.bincount(torch.cat([eps.support.flatten(), eps.query.flatten()]), minlength=160).double()
    assert img_counts.min() > 0  # all images get used


def test_same_seed_same_episodes_different_seed_different():
    labels = _labels()
    a = sample_episodes(labels, episodes=20, queries=5, seed=7)
    b = sample_episodes(labels, episodes=20, queries=5, seed=7)
    c = sample_episodes(labels, episodes=20, queries=5, seed=8)
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query) and torch.equal(a.classes, b.classes)
    assert not torch.equal(a.query, c.query)


def test_episode_json_round_trip_and_digest_check(tmp_path):
    labels = _labels()
    path = tmp_path / "eps.json"
    eps = load_or_sample_episodes(path, labels, ways=3, shots=2, queries=4, episodes=6, seed=2)
    assert path.exists()
    d = json.loads(path.read_text())
    assert d["ways"] == 3 and len(d["tasks"]) == 6 and d["labels_sha256"] == labels_digest(labels)
    again = load_or_sample_episodes(path, labels, ways=3, shots=2, queries=4, episodes=6, seed=2)
    assert torch.equal(again.support, eps.support) and torch.equal(again.query, eps.query)
    # the file wins over re-sampling: edit it, the edit is what is loaded
    d["tasks"][0]["query"][0][0] = d["tasks"][1]["query"][0][0]
    path.write_text(json.dumps(d))
    assert Episodes.load(path).query[0, 0, 0] == eps.query[1, 0, 0]
    with pytest.raises(ValueError, match="another image set"):
        load_or_sample_episodes(path, labels.flip(0), ways=3, shots=2, queries=4, episodes=6, seed=2)
    with pytest.raises(ValueError, match="requested"):
        load_or_sample_episodes(path, labels, ways=3, shots=1, queries=4, episodes=6, seed=2)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        Episodes.load(path)


def test_episode_errors():
    labels = _labels(n_classes=6, per_class=10)
    with pytest.raises(ValueError, match="ways"):
        sample_episodes(labels, ways=7, queries=2)
    with pytest.raises(ValueError, match="images per class"):
        sample_episodes(labels, shots=5, queries=15)
    with pytest.raises(ValueError, match="no images"):
        sample_episodes(labels, classes=[0, 1, 2, 3, 42], queries=2)
    with pytest.raises(ValueError, match="shots"):
        sample_episodes(labels, shots=0)
    with pytest.raises(ValueError, match="labels"):
        sample_episodes(torch.zeros(3, 2, dtype=torch.long))


def test_parse_classes():
    assert parse_classes("5-9") == [5, 6, 7, 8, 9]
    assert parse_classes("0-2,7") == [0, 1, 2, 7]
    assert parse_classes([3, 1, 3]) == [1, 3]
    assert parse_classes(None) is None
    for bad in ("9-5", "a-b", "-3", ""):
        with pytest.raises(ValueError, match="classes"):
            parse_classes(bad)


# ------------------------------------------------------------------------------------------------ CI
def test_ci_formula_against_hand_computation():
    accs = [60.0, 80.0, 100.0, 40.0]
    mean = (60 + 80 + 100 + 40) / 4                                        # 70
    var = ((60 - 70) ** 2 + (80 - 70) ** 2 + (100 - 70) ** 2 + (40 - 70) ** 2) / 4  # population: 500
    ci = 1.96 * math.sqrt(var) / math.sqrt(4)
    m, c = mean_ci95(accs)
    assert m == pytest.approx(70.0) and c == pytest.approx(ci) and c == pytest.approx(21.9135, abs=1e-4)
    assert mean_ci95([50.0]) == (50.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci95([])


# ------------------------------------------------------------------------------------------------ classifiers
def _separable_features(labels: torch.Tensor, dim: int = 16, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(int(labels.max()) + 1, dim, generator=g), dim=1) * 3
    return torch.nn.functional.normalize(centers[labels] + noise * torch.randn(labels.numel(), dim, generator=g), dim=1)


@pytest.mark.parametrize("classifier", CLASSIFIERS)
@pytest.mark.parametrize("shots", [1, 5])
def test_classifiers_reach_100_on_separable_features(classifier, shots):
    labels = _labels()
    feats = _separable_features(labels)
    eps = sample_episodes(labels, ways=5, shots=shots, queries=10, episodes=30, seed=0)
    accs = classify_episodes(feats, eps, classifier=classifier, chunk=7)
    assert accs.shape == (30,)
    assert torch.all(accs == 100.0)


def test_classifiers_are_at_chance_on_noise_and_deterministic():
    labels = _labels(per_class=40)
    feats = torch.nn.functional.normalize(torch.randn(labels.numel(), 32, generator=torch.Generator().manual_seed(3)), dim=1)
    eps = sample_episodes(labels, ways=5, shots=5, queries=15, episodes=60, seed=0)
    for c in CLASSIFIERS:
        a = classify_episodes(feats, eps, classifier=c)
        m, ci = mean_ci95(a)
        assert abs(m - 20.0) < 6.0
        assert torch.equal(a, classify_episodes(feats, eps, classifier=c))


def _naive_proto_cosine(feats, eps, classifier):
    accs = []
    for e in range(len(eps)):
        cents = [feats[eps.support[e, j]].double().mean(0) for j in range(eps.ways)]
        correct = 0
        for j in range(eps.ways):
            for i in eps.query[e, j].tolist():
                q = feats[i].double()
                if classifier == "proto":
                    scores = [-float(((q - c) ** 2).sum()) for c in cents]
                else:
                    scores = [float(q @ c / c.norm()) for c in cents]
                correct += int(max(range(eps.ways), key=lambda k: scores[k]) == j)
        accs.append(100.0 * correct / (eps.ways * eps.queries))
    return torch.tensor(accs, dtype=torch.float64)


@pytest.mark.parametrize("classifier", ["proto", "cosine"])
def test_proto_and_cosine_match_naive_loops(classifier):
    labels = _labels()
    feats = _separable_features(labels, noise=1.0, seed=4)
    eps = sample_episodes(labels, ways=5, shots=3, queries=6, episodes=12, seed=3)
    got = classify_episodes(feats, eps, classifier=classifier)
    assert torch.allclose(got, _naive_proto_cosine(feats, eps, classifier))
    assert 20.0 < float(got.mean()) < 100.0  # a non-trivial regime


def test_logistic_regression_optimality_and_sklearn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 15, 6, generator=g, dtype=torch.float64)
    y = torch.arange(3).repeat_interleave(5).expand(4, -1)
    w, b = logistic_regression(x, y, 3, C=2.0)
    # first-order optimality of 0.5||W||^2 + C * sum CE, in float64 by hand
    p = torch.softmax(torch.bmm(x, w) + b.unsqueeze(1), -1)
    r = p - torch.nn.functional.one_hot(y, 3).double()
    gw = w + 2.0 * torch.bmm(x.transpose(1, 2), r)
    gb = 2.0 * r.sum(1)
    assert gw.abs().max() < 1e-5 and gb.abs().max() < 1e-5
    sk = pytest.importorskip("sklearn.linear_model")
    for e in range(4):
        clf = sk.LogisticRegression(C=2.0, max_iter=2000, tol=1e-10).fit(x[e].numpy(), y[e].numpy())
        assert torch.allclose(torch.from_numpy(clf.coef_.T), w[e], atol=1e-4)
    with pytest.raises(ValueError, match="C"):
        logistic_regression(x, y, 3, C=0.0)


def test_classify_errors():
    labels = _labels()
    eps = sample_episodes(labels, episodes=3, queries=2)
    with pytest.raises(ValueError, match="classifier"):
        classify_episodes(torch.zeros(labels.numel(), 4), eps, classifier="knn")
    with pytest.raises(ValueError, match="rows"):
        classify_episodes(torch.zeros(5, 4), eps)


# ------------------------------------------------------------------------------------------------ features
class _NoFeatures(nn.Module):
    """A model without forward_features: the hook on its last Linear must be used."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.body(x))


class _WithFeatures(_NoFeatures):
    def forward_features(self, x):
        return self.body(x)


def test_extract_features_hook_and_method_agree():
    torch.manual_seed(0)
    a = _NoFeatures()
    b = _WithFeatures()
    b.load_state_dict(a.state_dict())
    imgs = torch.randint(0, 256, (7, 3, 5, 9), dtype=torch.uint8)  # odd batch, non-square
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.3, 0.25)
    fa = extract_features(a, imgs, mean=mean, std=std, batch_size=3)
    fb = extract_features(b, imgs, mean=mean, std=std, batch_size=2)
    x = (imgs.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    ref = torch.nn.functional.normalize(a.body(x), dim=1).detach()
    assert fa.shape == (7, 4)
    assert torch.allclose(fa, ref, atol=1e-6) and torch.allclose(fb, ref, atol=1e-6)
    assert torch.allclose(fa.norm(dim=1), torch.ones(7))
    raw = extract_features(a, imgs, mean=mean, std=std, l2_normalize=False)
    assert torch.allclose(raw, a.body(x).detach(), atol=1e-6)
    with pytest.raises(ValueError, match="nn.Linear"):
        extract_features(nn.Sequential(nn.Flatten()), imgs, mean=mean, std=std)


def test_evaluate_fewshot_end_to_end(tmp_path):
    """Images whose class is a colour: features separate them, every classifier gets 100%."""
    torch.manual_seed(0)
    n_cls, per = 10, 12
    labels = torch.arange(n_cls).repeat_interleave(per)
    palette = torch.randint(0, 256, (n_cls, 3), generator=torch.Generator().manual_seed(1))
    imgs = palette[labels].view(-1, 3, 1, 1).expand(-1, 3, 6, 6).to(torch.uint8).contiguous()

    class ColourNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 5)

        def forward(self, x):
            return self.fc(x.mean(dim=(2, 3)))

    model = ColourNet()
    kw = dict(mean=(0.5,) * 3, std=(0.5,) * 3, ways=3, shots=(1, 2), queries=4, episodes=10,
              classifiers=("logreg", "proto", "cosine"), classes=[5, 6, 7, 8, 9], base_classes=[0, 1, 2, 3, 4])
    rows = evaluate_fewshot(model, imgs, labels, episodes_dir=tmp_path, tag="toy", **kw)
    assert [(r["shots"], r["classifier"]) for r in rows] == [(s, c) for s in (1, 2) for c in ("logreg", "proto", "cosine")]
    assert len(list(tmp_path.glob("episodes_toy_3way_*shot_*.json"))) == 2
    for r in rows:
        assert r["classes"] == [5, 6, 7, 8, 9]
        # all images of a class have identical features and the 5 colours differ: every query is right
        assert r["acc"] == 100.0 and r["ci95"] == 0.0 and r["episodes"] == 10
    # deterministic: same files, same results
    assert evaluate_fewshot(model, imgs, labels, episodes_dir=tmp_path, tag="toy", **kw) == rows
    with pytest.raises(ValueError, match="overlap"):
        evaluate_fewshot(model, imgs, labels, **{**kw, "base_classes": [4, 5]})
