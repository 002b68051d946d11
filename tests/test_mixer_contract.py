"""The mixer contract, checked for every registered mixer (``list_mixers()``).

Every mixer: returns (B, C, H, W) images in the input dtype, (B, K) soft targets whose rows sum to
1, ``lam`` in [0, 1] and a partner ``index`` in [0, B); is deterministic under a generator; never
changes its inputs; accepts B = 1 and odd B, float32/float64 (and the half types it supports),
integer and soft targets. Mixers that need a saliency map get a random one; Manifold Mixup's
mixing is checked through ``extras["mix_fn"]``. Method-specific behaviour is tested in each
method's own test file.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from sagemix.mixers import MixOutput, create_mixer, get_mixer_class, list_mixers

K = 6
H = W = 16
#: Small, fast options per method (the defaults otherwise); every batch is mixed.
OPTIONS = {"saliencymix": {"prob": 1.0}, "comixup": {"m_part": 3}}
#: Methods whose output mixes more than two inputs (the two-input label identity does not apply).
MULTI_INPUT = {"comixup"}
NEEDS_GCO = {"puzzlemix", "comixup"}
NAMES = list_mixers()


def _mixer(name: str, seed: int = 0):
    if name in NEEDS_GCO:
        pytest.importorskip("gco")
    return create_mixer(name, num_classes=K, generator=torch.Generator().manual_seed(seed), **OPTIONS.get(name, {}))


def _takes_saliency(name: str) -> bool:
    return get_mixer_class(name).needs_gradient_saliency or name == "saliencymix"


def _batch(b: int, dtype: torch.dtype = torch.float32, soft: bool = False, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, H, W, generator=g).to(dtype)
    if soft:
        y = torch.rand(b, K, generator=g, dtype=torch.float64).to(dtype if dtype.is_floating_point else torch.float32)
        y = (y / y.sum(1, keepdim=True)).float()
    else:
        y = torch.randint(0, K, (b,), generator=g)
    sal = torch.rand(b, H, W, generator=g)
    return x, y, sal


def _call(mixer, name: str, x, y, sal) -> MixOutput:
    return mixer(x, y, sal) if _takes_saliency(name) else mixer(x, y)


def _check_output(name: str, out: MixOutput, x: torch.Tensor, soft: torch.Tensor) -> None:
    b = x.shape[0]
    assert isinstance(out, MixOutput)
    assert out.images.shape == x.shape and out.images.dtype == x.dtype
    assert bool(torch.isfinite(out.images.float()).all())
    assert out.targets.shape == (b, K) and out.targets.is_floating_point()
    torch.testing.assert_close(out.targets.sum(1).double(), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-5)
    assert bool((out.targets >= -1e-6).all())
    assert out.lam.shape == (b,) and out.lam.is_floating_point()
    assert bool(((out.lam >= 0) & (out.lam <= 1 + 1e-6)).all())
    assert out.index.shape == (b,) and out.index.dtype == torch.int64
    assert bool(((out.index >= 0) & (out.index < b)).all())
    if name not in MULTI_INPUT:  # two-input mixers: y~ = lam y + (1 - lam) y[index]
        lam = out.lam.double()[:, None]
        want = lam * soft.double() + (1 - lam) * soft.double()[out.index]
        torch.testing.assert_close(out.targets.double(), want, rtol=0, atol=1e-5)
    if name == "manifold_mixup":  # the images are unmixed; the mix happens through mix_fn
        torch.testing.assert_close(out.images, x, rtol=0, atol=0)
        h = torch.randn(b, 4, 2, 2).to(x.dtype)
        lam = out.lam.float().reshape(b, 1, 1, 1)
        hf = h.float()
        torch.testing.assert_close(out.extras["mix_fn"](h), (lam * hf + (1 - lam) * hf[out.index]).to(x.dtype))


def _soft(y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, K).double() if y.ndim == 1 else y.double()


def test_every_mixer_is_covered():
    assert {"vanilla", "sage", "mixup", "manifold_mixup", "cutmix", "cutout", "saliencymix", "puzzlemix",
            "comixup"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("b", [1, 2, 5])
@pytest.mark.parametrize("soft", [False, True], ids=["int", "soft"])
def test_output_contract(name, b, soft):
    x, y, sal = _batch(b, soft=soft)
    out = _call(_mixer(name), name, x, y, sal)
    _check_output(name, out, x, _soft(y))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_dtypes(name, dtype):
    x, y, sal = _batch(4, dtype=dtype)
    out = _call(_mixer(name), name, x, y, sal)
    assert out.images.dtype == dtype
    _check_output(name, out, x, _soft(y))


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_generator(name):
    x, y, sal = _batch(5)
    a = _call(_mixer(name, seed=3), name, x, y, sal)
    b = _call(_mixer(name, seed=3), name, x, y, sal)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert torch.equal(a.lam, b.lam) and torch.equal(a.index, b.index)
    # The generator advances: a second batch from the same mixer is a fresh draw (for the random methods).
    mixer = _mixer(name, seed=3)
    first, second = _call(mixer, name, x, y, sal), _call(mixer, name, x, y, sal)
    if name != "vanilla":
        assert not (torch.equal(first.images, second.images) and torch.equal(first.targets, second.targets)
                    and torch.equal(first.lam, second.lam))


def _same(a: MixOutput, b: MixOutput) -> bool:
    return (torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets) and torch.equal(a.lam, b.lam)
            and torch.equal(a.index, b.index))


def _tensors_of(value):
    """Every tensor inside a params field (tensors, tuples of tensors)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors_of(v)]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_draw_then_apply_replays(name):
    """``make_params`` returns a frozen dataclass of CPU values; ``apply`` with it is deterministic; a call is
    exactly ``apply(x, y, make_params(x, y, s), s)``."""
    x, y, sal = _batch(5)
    s = sal if _takes_saliency(name) else None
    mixer = _mixer(name, seed=3)
    params = mixer.make_params(x, y, s)
    assert isinstance(params, mixer.Params) and dataclasses.is_dataclass(params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.applied = False
    for f in dataclasses.fields(params):
        for t in _tensors_of(getattr(params, f.name)):
            assert t.device.type == "cpu", f.name
    first = mixer.apply(x, y, params, s)
    again = mixer.apply(x, y, params, s)  # the generator moved on in between: nothing is drawn in apply
    assert _same(first, again)
    assert _same(first, _call(_mixer(name, seed=3), name, x, y, sal))
    if name != "vanilla":  # the next draw is another one
        assert not _same(first, mixer.apply(x, y, mixer.make_params(x, y, s), s))
    with pytest.raises(TypeError, match="params must be"):
        mixer.apply(x, y, object(), s)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("soft", [False, True], ids=["int", "soft"])
def test_inputs_are_not_modified(name, soft):
    x, y, sal = _batch(5, soft=soft)
    x0, y0, s0 = x.clone(), y.clone(), sal.clone()
    out = _call(_mixer(name), name, x, y, sal)
    assert torch.equal(x, x0) and torch.equal(y, y0) and torch.equal(sal, s0)
    assert out.images.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_name_the_argument(name):
    mixer = _mixer(name)
    x, y, sal = _batch(3)
    with pytest.raises(ValueError, match="images"):
        _call(mixer, name, x[0], y, sal)
    with pytest.raises(ValueError, match="targets"):
        _call(mixer, name, x, y[:2], sal)
    with pytest.raises(ValueError, match="targets"):
        _call(mixer, name, x, torch.tensor([0, 1, K]), sal)
    if get_mixer_class(name).needs_gradient_saliency:
        with pytest.raises(ValueError, match="saliency"):
            mixer(x, y)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_is_preserved(name):
    x, y, sal = _batch(4)
    x = x.contiguous(memory_format=torch.channels_last)
    out = _call(_mixer(name), name, x, y, sal)
    assert out.images.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", NAMES)
def test_bad_values_are_refused_with_the_argument_named(name):
    mixer = _mixer(name)
    x, y, sal = _batch(3)
    with pytest.raises(ValueError, match=r"targets must have shape \(B,\)"):  # 0-d: a clear error, not IndexError
        _call(mixer, name, x, torch.tensor(2), sal)
    bad_images = x.clone()
    bad_images[1, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="images must hold finite values.*got 1 non-finite"):
        _call(mixer, name, bad_images, y, sal)
    bad_images[1, 0, 2, 3] = float("inf")
    with pytest.raises(ValueError, match="images must hold finite values"):
        _call(mixer, name, bad_images, y, sal)
    soft = torch.nn.functional.one_hot(y, K).float()
    for row in ([2.0] + [0.0] * (K - 1), [0.5] + [0.0] * (K - 1), [0.0] * K, [1.5, -0.5] + [0.0] * (K - 2),
                [float("nan")] + [0.0] * (K - 1)):
        bad = soft.clone()
        bad[2] = torch.tensor(row)
        with pytest.raises(ValueError, match=r"targets of shape \(B, K\) must be soft labels.*got row 2"):
            _call(mixer, name, x, bad, sal)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 5\].*got values in \[-1, "):
        _call(mixer, name, x, torch.tensor([0, -1, 2]), sal)


@pytest.mark.parametrize("name", sorted(n for n in NAMES if n in ("mixup", "manifold_mixup", "cutmix")))
@pytest.mark.parametrize("alpha", [1e-300, 1e308, float("nan"), float("inf"), 1e-4, 2e3])
def test_degenerate_alpha_is_refused(name, alpha):
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.001, 1000\]"):
        create_mixer(name, num_classes=K, alpha=alpha)


@pytest.mark.parametrize("name", NAMES)
def test_none_options_are_refused_at_construction(name):
    """``alpha=None`` / ``prob=None`` is a mistake, refused with the option named (it used to be accepted,
    then an AttributeError at the first call)."""
    import inspect

    params = inspect.signature(get_mixer_class(name)).parameters
    keys = [k for k in ("alpha", "prob", "mixup_alpha") if k in params]
    if name in NEEDS_GCO:
        pytest.importorskip("gco")
    for key in keys:
        with pytest.raises(ValueError, match=f"^{key} must be .* got None"):
            create_mixer(name, num_classes=K, **{key: None})
