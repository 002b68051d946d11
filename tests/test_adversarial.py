"""FGSM / PGD accuracy in pixel space through the normalisation (sagemix.evaluate.adversarial)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sagemix.evaluate.accuracy import accuracy, normalize
from sagemix.evaluate.adversarial import adversarial_accuracy, fgsm, parse_eps, pgd

MEAN = (0.45, 0.5, 0.55)
STD = (0.2, 0.25, 0.3)


def _make_data(n: int, seed: int, h: int = 8, w: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Easy 2-class task: is channel 0 brighter on average than channel 1 (by a small margin)?"""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    level = torch.randint(60, 190, (n, 1, 1, 1), generator=g).float()
    base = level + torch.randint(-20, 21, (n, 3, h, w), generator=g).float()
    delta = (torch.rand(n, generator=g) * 14 + 4) * (2 * y.float() - 1)  # 4..18 grey levels
    base[:, 0] += delta.view(n, 1, 1) / 2
    base[:, 1] -= delta.view(n, 1, 1) / 2
    return base.round().clamp(0, 255).to(torch.uint8), y


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyNet()
    x, y = _make_data(1024, seed=1)
    x01 = normalize(x.float() / 255, MEAN, STD)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(2)
    model.train()
    for _ in range(250):
        idx = torch.randint(0, x.shape[0], (128,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x01[idx]), y[idx]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    xt, yt = _make_data(300, seed=3)
    return model, xt, yt


def test_trained_model_is_accurate_and_fgsm_lowers_accuracy(trained):
    model, x, y = trained
    clean = accuracy(model, x, y, mean=MEAN, std=STD, batch_size=64)
    assert clean > 90.0
    res = adversarial_accuracy(model, x, y, attack="fgsm", eps=8 / 255, mean=MEAN, std=STD, batch_size=64)
    assert res["clean_acc"] == pytest.approx(clean)
    assert res["adv_acc"] < clean - 20.0
    assert res["n"] == 300 and res["attack"] == "fgsm"


def test_eps_zero_gives_clean_accuracy(trained):
    model, x, y = trained
    clean = accuracy(model, x, y, mean=MEAN, std=STD, batch_size=77)
    for attack in ("fgsm", "pgd"):
        res = adversarial_accuracy(model, x, y, attack=attack, eps=0.0, mean=MEAN, std=STD, batch_size=77)
        assert res["adv_acc"] == pytest.approx(clean)


def test_accuracy_decreases_with_eps(trained):
    model, x, y = trained
    accs = [adversarial_accuracy(model, x, y, eps=e, mean=MEAN, std=STD)["adv_acc"] for e in (0, 2 / 255, 8 / 255)]
    assert accs[0] >= accs[1] >= accs[2]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_perturbation_bounded_and_in_range(trained, attack):
    model, x, y = trained
    x01 = x[:65].float() / 255
    x01[0] = 0.0  # pixels at the borders of [0, 1] must be clamped
    x01[1] = 1.0
    eps = 8 / 255
    if attack == "fgsm":
        adv = fgsm(model, x01, y[:65], eps=eps, mean=MEAN, std=STD)
    else:
        adv = pgd(model, x01, y[:65], eps=eps, steps=5, mean=MEAN, std=STD,
                  generator=torch.Generator().manual_seed(0))
    assert adv.shape == x01.shape and adv.dtype == x01.dtype
    assert (adv - x01).abs().max() <= eps + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert (adv - x01).abs().max() > eps / 2  # it did move
    assert not adv.requires_grad


def test_fgsm_matches_naive_float64_reference(trained):
    model, x, y = trained
    model64 = TinyNet().double()
    model64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    model64.eval()
    x01 = x[:9].float() / 255
    adv = fgsm(model, x01, y[:9], eps=4 / 255, mean=MEAN, std=STD)
    m = torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)
    s = torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)
    for i in range(9):  # one image at a time, float64, by hand
        xi = x01[i].double().clone().requires_grad_(True)
        logits = model64(((xi - m) / s).unsqueeze(0))
        loss = -torch.log_softmax(logits, 1)[0, y[i]]
        loss.backward()
        ref = (xi.detach() + 4 / 255 * xi.grad.sign()).clamp(0, 1)
        # Float32 vs float64 gradients can differ in sign only where the gradient is ~0.
        close = (adv[i].double() - ref).abs() < 1e-6
        assert close.float().mean() > 0.98


def test_model_mode_and_parameter_grads_untouched(trained):
    model, x, y = trained
    model.train()
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        adversarial_accuracy(model, x[:20], y[:20], attack="pgd", steps=2, mean=MEAN, std=STD)
        assert model.training
        assert all(p.grad is None for p in model.parameters())
        after = model.state_dict()
        # eval mode during the attack: BN running statistics did not move.
        assert all(torch.equal(before[k], after[k]) for k in before)
    finally:
        model.eval()


def test_pgd_at_least_as_strong_as_fgsm(trained):
    model, x, y = trained
    f = adversarial_accuracy(model, x, y, attack="fgsm", mean=MEAN, std=STD)["adv_acc"]
    p = adversarial_accuracy(model, x, y, attack="pgd", steps=10, mean=MEAN, std=STD, seed=0)["adv_acc"]
    assert p <= f
    # one PGD step of size eps from the clean image is exactly FGSM
    x01 = x[:30].float() / 255
    a = fgsm(model, x01, y[:30], eps=8 / 255, mean=MEAN, std=STD)
    b = pgd(model, x01, y[:30], eps=8 / 255, steps=1, step_size=8 / 255, random_start=False, mean=MEAN, std=STD)
    assert torch.allclose(a, b)


def test_pgd_same_seed_same_result(trained):
    model, x, y = trained
    kw = dict(attack="pgd", steps=3, mean=MEAN, std=STD, batch_size=50)
    r1 = adversarial_accuracy(model, x[:100], y[:100], seed=5, **kw)
    r2 = adversarial_accuracy(model, x[:100], y[:100], seed=5, **kw)
    assert r1 == r2
    x01 = x[:10].float() / 255
    a = pgd(model, x01, y[:10], steps=2, mean=MEAN, std=STD, generator=torch.Generator().manual_seed(1))
    b = pgd(model, x01, y[:10], steps=2, mean=MEAN, std=STD, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_batch_size_one_and_nhwc_input(trained):
    model, x, y = trained
    r_nchw = adversarial_accuracy(model, x[:7], y[:7], mean=MEAN, std=STD, batch_size=1)
    r_nhwc = adversarial_accuracy(model, x[:7].permute(0, 2, 3, 1).numpy(), y[:7], mean=MEAN, std=STD, batch_size=3)
    assert r_nchw == r_nhwc


def test_parse_eps():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.03") == pytest.approx(0.03)
    assert parse_eps(0) == 0.0
    with pytest.raises(ValueError, match="eps"):
        parse_eps("eight")
    with pytest.raises(ValueError, match="eps"):
        parse_eps("300/255")


def test_bad_input_errors(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="attack"):
        adversarial_accuracy(model, x, y, attack="cw", mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="eps"):
        adversarial_accuracy(model, x, y, eps=-0.1, mean=MEAN, std=STD)
    with pytest.raises(TypeError, match="uint8"):
        adversarial_accuracy(model, x.float(), y, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="labels"):
        adversarial_accuracy(model, x, y[:-1], mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="std"):
        adversarial_accuracy(model, x, y, mean=MEAN, std=(0.2, 0.0, 0.3))
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x.float() / 255, y, steps=0, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="batch_size"):
        adversarial_accuracy(model, x, y, mean=MEAN, std=STD, batch_size=0)


def test_clean_accuracy_uint8_and_loader_agree_with_naive_count(trained):
    model, x, y = trained
    x01 = x.float() / 255
    xn = normalize(x01, MEAN, STD)
    naive = sum(int(model(xn[i:i + 1]).argmax(1).item() == int(y[i])) for i in range(x.shape[0])) / x.shape[0] * 100
    assert accuracy(model, x, y, mean=MEAN, std=STD, batch_size=41) == pytest.approx(naive)
    loader = [(xn[i:i + 50], y[i:i + 50]) for i in range(0, x.shape[0], 50)]
    assert accuracy(model, loader) == pytest.approx(naive)
    with pytest.raises(ValueError, match="mean"):
        accuracy(model, x, y)
    with pytest.raises(ValueError, match="must be None"):
        accuracy(model, loader, y)
