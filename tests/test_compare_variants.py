"""Method variants in comparisons: a registry method with other settings under its own name, validated
before any work, in the run folders and in the report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagemix.compare import ComparisonConfig, check_plan, plan_runs, run_comparison
from sagemix.report import collect_runs, load_run
from sagemix.report.tables import clean_table

TINY = {"epochs": 1, "batch_size": 32, "train_limit": 64, "test_limit": 32, "milestones": [], "device": "cpu",
        "progress": False, "threads": 1}
VARIANTS = {"sage_exhaustive": {"method": "sage", "method_kwargs": {"rand_pos": None}},
            "sage_no_rearrangement": {"method": "sage", "method_kwargs.rand_pos": 0}}


def _cfg(tmp_path: Path, **kw) -> dict:
    d = {"recipe": "offline", "out": str(tmp_path / "cmp"), "seeds": [0, 1],
         "methods": ["vanilla", "sage", "sage_exhaustive", "sage_no_rearrangement"], "variants": VARIANTS,
         "overrides": dict(TINY), "report": {"plots": False}}
    d.update(kw)
    return d


def test_plan_names_variant_runs_and_trains_the_registry_method(tmp_path: Path) -> None:
    cfg = ComparisonConfig.from_dict(_cfg(tmp_path))
    specs = {(s.method, s.seed): s for s in plan_runs(cfg)}
    ex = specs[("sage_exhaustive", 1)]
    assert ex.run_dir == Path(cfg.out) / "smallnet-sage_exhaustive-s1"
    assert ex.overrides["method"] == "sage" and ex.overrides["name"] == "sage_exhaustive"
    assert ex.overrides["method_kwargs"] == {"rand_pos": None}
    nr = specs[("sage_no_rearrangement", 0)]
    assert nr.overrides["method_kwargs.rand_pos"] == 0 and nr.overrides["method"] == "sage"
    assert "name" not in specs[("sage", 0)].overrides and specs[("sage", 0)].overrides["method"] == "sage"
    from sagemix.train import load_config

    assert load_config(cfg.recipe, overrides=nr.overrides).mixer_kwargs()["rand_pos"] == 0
    assert load_config(cfg.recipe, overrides=ex.overrides).mixer_kwargs()["rand_pos"] is None
    check_plan(cfg)  # valid


@pytest.mark.parametrize("change, match", [
    ({"methods": ["vanilla", "sagex"], "variants": {}}, r"unknown method\(s\) \['sagex'\]"),
    ({"variants": {**VARIANTS, "mine": {"method": "nope"}}}, "not listed in methods"),
    ({"methods": ["mine"], "variants": {"mine": {"method": "nope"}}}, r"variants.mine'.method must be a registry"),
    ({"methods": ["mixup"], "variants": {"mixup": {"method": "sage"}}}, "is a registry method"),
    ({"methods": ["a b"], "variants": {"a b": {"method": "sage"}}}, "letters, digits"),
    ({"methods": ["v"], "variants": {"v": {"method": "sage", "seed": 3}}}, "must not set 'seed'"),
    ({"methods": ["v"], "variants": {"v": {"method": "sage", "colour": 3}}}, "unknown config key 'colour'"),
    ({"methods": ["v"], "variants": {"v": ["sage"]}}, "must be an object"),
    ({"overrides": {"name": "x"}}, "must not set 'name'"),
])
def test_variant_errors(tmp_path: Path, change: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        ComparisonConfig.from_dict(_cfg(tmp_path, **change))


def test_misspelt_mixer_option_fails_before_any_work(tmp_path: Path) -> None:
    bad = {**VARIANTS, "sage_exhaustive": {"method": "sage", "method_kwargs.rand_poss": None}}
    cfg = ComparisonConfig.from_dict(_cfg(tmp_path, variants=bad))
    calls = []
    for dry in (False, True):
        with pytest.raises(ValueError, match=r"sage_exhaustive.*sage has no option 'rand_poss'; its options are .*rand_pos"):
            run_comparison(cfg, dry_run=dry, train_fn=lambda c, resume: calls.append(c), report=False,
                           log=lambda s: None)
    assert calls == [] and not Path(cfg.out).exists()


def test_cli_refuses_an_unknown_method_at_once_also_with_dry_run(tmp_path: Path, capsys) -> None:
    from sagemix.cli import main

    path = tmp_path / "c.json"
    path.write_text(json.dumps(_cfg(tmp_path, methods=["vanilla", "sage_exhastive"], variants={})))
    for extra in ([], ["--dry-run"]):
        assert main(["compare", "--config", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert "unknown method(s) ['sage_exhastive']" in err and "variants" in err
    assert not (tmp_path / "cmp").exists()


@pytest.mark.slow
def test_a_trained_variant_is_labelled_in_its_folder_and_the_report(tmp_path: Path) -> None:
    cfg = ComparisonConfig.from_dict(_cfg(tmp_path, seeds=[0], methods=["sage", "sage_no_rearrangement"],
                                          variants={"sage_no_rearrangement": VARIANTS["sage_no_rearrangement"]}))
    res = run_comparison(cfg, report=False, log=lambda s: None)
    assert not res["failed"], res["failed"]
    run = load_run(Path(cfg.out) / "smallnet-sage_no_rearrangement-s0")
    assert run.method == "sage_no_rearrangement" and run.base_method == "sage"
    assert json.loads((run.path / "config.json").read_text())["method_kwargs"]["rand_pos"] == 0
    plain = load_run(Path(cfg.out) / "smallnet-sage-s0")
    assert plain.method == plain.base_method == "sage"
    table = clean_table(collect_runs([cfg.out]))
    assert [r[1] for r in table.raw] == ["sage", "sage_no_rearrangement"]


@pytest.mark.parametrize("name", ["evidence_comparison.json", "evidence_comparison_half.json", "evidence_fmnist.json",
                                  "evidence_offline.json", "evidence_fmnist_e200.json",
                                  "evidence_fmnist_e200_confirm.json", "evidence_offline_e200.json"])
def test_shipped_evidence_comparison_config_is_valid(name: str) -> None:
    from sagemix.compare import load_comparison
    from sagemix.train import load_config

    cfg = load_comparison(Path(__file__).resolve().parents[1] / "configs" / name)
    assert len(cfg.methods) == 10 and len(cfg.seeds) >= 5
    assert set(cfg.variants) == {"sage_no_rearrangement", "sage_exhaustive"}
    specs = plan_runs(cfg)
    assert len(specs) == 10 * len(cfg.seeds)
    check_plan(cfg, specs[:10])
    kw = {s.method: load_config(cfg.recipe, overrides=s.overrides) for s in specs[:10]}
    assert kw["sage_no_rearrangement"].mixer_kwargs()["rand_pos"] == 0
    assert kw["sage_exhaustive"].mixer_kwargs()["rand_pos"] is None
    assert kw["sage"].mixer_kwargs().get("rand_pos", 0.01) == 0.01
    # the data are fixed across seeds: the same data_seed and subset for every run
    assert len({(c.data_seed, c.train_limit, c.test_limit) for c in kw.values()}) == 1
    assert {load_config(cfg.recipe, overrides=s.overrides).data_seed for s in specs} == {0}


@pytest.mark.parametrize("grid, protocol", [("evidence_fmnist_grid.json", "evidence_fmnist.json"),
                                            ("evidence_offline_grid.json", "evidence_offline.json"),
                                            ("evidence_fmnist_e200_grid.json", "evidence_fmnist_e200.json"),
                                            ("evidence_offline_e200_grid.json", "evidence_offline_e200.json")])
def test_shipped_gate_grid_is_its_protocol_at_other_lr_and_weight_decay(grid: str, protocol: str) -> None:
    """The gate's 'vanilla is tuned' check compares the protocol with its grid: every grid run must be the
    protocol's vanilla run with only lr and weight decay changed, each at a setting the protocol does not use."""
    from sagemix.compare import load_comparison
    from sagemix.train import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    g, p = load_comparison(root / grid), load_comparison(root / protocol)
    base = load_config(p.recipe, overrides=next(s for s in plan_runs(p) if s.method == "vanilla").overrides)
    settings = set()
    for spec in plan_runs(g):
        run = load_config(g.recipe, overrides=spec.overrides)
        assert run.method == "vanilla"
        settings.add((run.lr, run.weight_decay))
        changed = {k for k, v in vars(run).items() if v != getattr(base, k) and k != "seed"}
        assert changed <= {"lr", "weight_decay", "out", "run_dir", "name"}, changed
    assert (base.lr, base.weight_decay) not in settings and len(settings) >= 3  # >= 4 with the protocol's own
