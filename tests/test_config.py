"""TrainConfig validation, recipes and CLI-style overrides."""
from __future__ import annotations

import json

import pytest

from sagemix.train.config import (RUN_DEFINING_KEYS, TrainConfig, apply_overrides, config_hash, list_recipes,
                                  load_config, load_recipe, parse_overrides)

PAPER_SAGE = {  # SAGE spec section 1-2: reference settings per model
    "cifar10_preactresnet18_sage": ("cifar10", "preactresnet18", 0.7, 0.6),
    "cifar100_preactresnet18_sage": ("cifar100", "preactresnet18", 0.7, 0.5),
    "cifar100_wrn16_8_sage": ("cifar100", "wrn16_8", 0.5, 0.7),
    "cifar100_resnext29_sage": ("cifar100", "resnext29_4_24", 0.5, 0.7),
}


def test_defaults_are_the_shared_protocol():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.nesterov, c.weight_decay) == (300, 100, 0.2, 0.9, True, 1e-4)
    assert c.milestones == [100, 200] and c.gamma == 0.1 and c.loss == "soft_ce"


@pytest.mark.parametrize("name", sorted(PAPER_SAGE))
def test_paper_recipes(name):
    dataset, model, ratio, upper = PAPER_SAGE[name]
    c = load_config(name)
    assert (c.dataset, c.model, c.method) == (dataset, model, "sage")
    kw = c.mixer_kwargs()
    assert kw["update_ratio"] == ratio and kw["upper_lambda"] == upper and kw["saliency_reduce"] == "mean_abs"
    assert (c.epochs, c.lr, c.batch_size, c.milestones, c.weight_decay, c.loss) == \
        (300, 0.2, 100, [100, 200], 1e-4, "bce_softmax")
    assert c.description


def test_every_bundled_recipe_loads_and_creates_its_mixer():
    from sagemix import create_mixer, list_mixers

    names = list_recipes()
    assert set(PAPER_SAGE) <= set(names) and "offline" in names
    for name in names:
        c = load_config(name)
        if c.method in list_mixers():
            create_mixer(c.method, num_classes=10, **c.mixer_kwargs())  # options accepted by the mixer


def test_protocol_recipe_with_method_override_gets_method_defaults():
    c = load_config("cifar100_wrn16_8", overrides={"method": "sage"})
    assert c.mixer_kwargs()["update_ratio"] == 0.5
    c2 = load_config("cifar100_wrn16_8", overrides={"method": "cutout"})
    assert c2.mixer_kwargs() == {"size": 8}
    c3 = load_config("cifar100_wrn16_8", overrides={"method": "mixup"})
    assert c3.mixer_kwargs() == {}  # the mixer's own defaults (baselines spec)


def test_parse_overrides_types_and_dotted_keys():
    o = parse_overrides(["lr=0.05", "epochs=3", "nesterov=false", "milestones=[1, 2]", "method=mixup",
                         "method_kwargs.update_ratio=0.5", "data_dir=/tmp/x=y", "out=null"])
    assert o == {"lr": 0.05, "epochs": 3, "nesterov": False, "milestones": [1, 2], "method": "mixup",
                 "method_kwargs.update_ratio": 0.5, "data_dir": "/tmp/x=y", "out": None}
    c = load_config("cifar10_preactresnet18_sage", overrides=o)
    assert c.method == "mixup" and c.lr == 0.05 and c.milestones == [1, 2] and c.method_kwargs == {"update_ratio": 0.5}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


def test_override_errors_name_the_key():
    with pytest.raises(ValueError, match="'learning_rate'"):
        apply_overrides({}, {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="'lr' is not a dict"):
        apply_overrides({}, {"lr.x": 1})


@pytest.mark.parametrize("key,value,match", [
    ("epochs", 0, "'epochs'.*>= 1.*0"),
    ("epochs", 2.5, "'epochs'"),
    ("batch_size", True, "'batch_size'"),
    ("lr", -0.1, "'lr'.*-0.1"),
    ("lr", float("nan"), "'lr'"),
    ("loss", "mse", "'loss'.*soft_ce"),
    ("amp", "fp8", "'amp'.*'fp8'"),
    ("device", "tpu", "'device'.*'tpu'"),
    ("milestones", [200, 100], "'milestones'.*increasing"),
    ("milestones", [0], "'milestones'"),
    ("weight_decay", -1, "'weight_decay'"),
    ("seed", -1, "'seed'"),
])
def test_validation_errors(key, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{key: value})


@pytest.mark.parametrize("key,value", [("method", 3), ("method_kwargs", [1]), ("nesterov", "yes"), ("out", 5)])
def test_type_errors(key, value):
    with pytest.raises(TypeError, match=repr(key)):
        TrainConfig(**{key: value})


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        TrainConfig(momentum=0.0)
    assert TrainConfig(momentum=0.0, nesterov=False).momentum == 0.0


def test_unknown_key_in_dict():
    with pytest.raises(ValueError, match="unknown config key.*'bogus'"):
        TrainConfig.from_dict({"bogus": 1})


def test_roundtrip_and_hash():
    c = load_config("cifar100_preactresnet18_sage")
    d = json.loads(json.dumps(c.to_dict()))
    assert TrainConfig.from_dict(d) == c
    h = config_hash(c)
    # not run-defining: epochs, paths, device, logging
    assert config_hash(c.replace(epochs=5, out="/tmp/elsewhere", device="cpu", progress=False, eval_every=3)) == h
    for key, value in [("lr", 0.1), ("seed", 1), ("method", "mixup"), ("batch_size", 64), ("loss", "soft_ce")]:
        assert key in RUN_DEFINING_KEYS
        assert config_hash(c.replace(**{key: value})) != h, key
    # the resolved mixer options count, however they were given
    same = c.replace(method_defaults={}, method_kwargs=c.mixer_kwargs())
    assert config_hash(same) == h
    assert config_hash(c.replace(method_kwargs={"upper_lambda": 0.9})) != h


def test_unknown_recipe_and_recipe_file(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        load_recipe("nope")
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"method": "mixup", "epochs": 7, "description": "mine"}))
    c = load_config(str(f))
    assert (c.method, c.epochs) == ("mixup", 7)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_recipe(str(bad))


def test_run_dir_default_and_explicit():
    assert str(TrainConfig(method="sage", model="smallnet", dataset="offline", seed=3).run_dir()) == \
        "runs/offline-smallnet-sage-s3"
    assert str(TrainConfig(out="x/y").run_dir()) == "x/y"
