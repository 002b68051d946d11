"""The second first-use pass (issue 22): wording, early refusals, one-line errors for damaged inputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI entry point in-process: (exit status, stdout, stderr)."""
    from sagemix.cli import main as cli_main

    try:
        rc = cli_main(list(args))
    except SystemExit as e:
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(rc: int, err: str) -> str:
    """The single error line of a refused command (exit status 2, no traceback)."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0], err
    return lines[0]


# -- wording --------------------------------------------------------------------------------------------
def test_recipe_kinds_close_their_parentheses() -> None:
    from sagemix.commands.list import collect

    for r in collect("recipes"):
        kind = r["description"].split(":")[0]
        assert kind.count("(") == kind.count(")"), r
    rows = {r["name"]: r["description"] for r in collect("recipes")}
    assert rows["imagenet_resnet50"].startswith("ImageNet-1k: imagenet / tv_resnet50")


def test_train_help_points_at_the_flags_where_they_are(capsys) -> None:
    rc, out, _ = main(capsys, "train", "--help")
    assert rc == 0
    # the epilog comes after the option list: the flags are above it
    assert out.index("--method") < out.index("the flags above") and "the flags below" not in out


def test_unknown_method_gets_a_suggestion(capsys) -> None:
    from sagemix.mixers import create_mixer

    with pytest.raises(ValueError, match=r"unknown mixer 'sagee' \(did you mean 'sage'\?\)"):
        create_mixer("sagee", num_classes=3)
    with pytest.raises(ValueError) as e:
        create_mixer("zzzz", num_classes=3)
    assert "did you mean" not in str(e.value) and "expected one of" in str(e.value)  # nothing close: no guess
    rc, _, err = main(capsys, "train", "offline", "--method", "cut-mx", "--show-config")
    assert "did you mean 'cutmix'?" in one_line_error(rc, err)
    rc, _, err = main(capsys, "bench", "--methods", "mixupp")
    assert "did you mean 'mixup'?" in one_line_error(rc, err)


def test_a_short_run_names_its_median_window(tmp_path) -> None:
    from sagemix.train import TrainConfig, Trainer

    lines: list[str] = []
    cfg = TrainConfig(method="vanilla", model="smallnet", dataset="offline", epochs=2, milestones=[1], batch_size=16,
                      train_limit=32, test_limit=32, device="cpu", progress=False, threads=1, out=str(tmp_path / "r"),
                      model_kwargs={"width": 4})
    trainer = Trainer(cfg, log=lines.append)
    try:
        trainer.fit()
    finally:
        trainer.close()
    done = [ln for ln in lines if ln.startswith("done:")]
    assert len(done) == 1 and "median of the last 2 epochs" in done[0] and "last 10" not in done[0], lines


# -- seeds beyond torch's range ----------------------------------------------------------------------------
def test_a_seed_beyond_torchs_range_is_refused_in_one_line(capsys, tmp_path) -> None:
    from sagemix.compare import load_comparison
    from sagemix.train import TrainConfig

    huge = str(2**70)
    rc, out, err = main(capsys, "train", "offline", "--seed", huge, "--out", str(tmp_path / "r"), "--no-progress")
    line = one_line_error(rc, err)
    assert "'seed'" in line and "2**64 - 1" in line and huge in line and "Overflow" not in line
    assert not (tmp_path / "r").exists()  # refused before any work
    assert TrainConfig(seed=2**64 - 1).seed == 2**64 - 1  # the largest seed torch takes is accepted
    with pytest.raises(ValueError, match="data_seed.*2\\*\\*64 - 1"):
        TrainConfig(data_seed=2**64)
    for argv in (["bench", "--seed", huge], ["demo", "--seed", huge], ["show", "--seed", huge],
                 ["compare", "--config", "x.json", "--seeds", huge]):
        rc, _, err = main(capsys, *argv)
        assert rc == 2 and "2**64 - 1" in err and "Traceback" not in err, (argv, err)
    (tmp_path / "c.json").write_text(json.dumps({"recipe": "offline", "out": "o", "methods": ["vanilla"],
                                                 "seeds": [2**70]}))
    with pytest.raises(ValueError, match="'seeds'.*2\\*\\*64 - 1"):
        load_comparison(tmp_path / "c.json")
