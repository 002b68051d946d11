"""The first use of the CLI: threads, progress, early refusals, missing extras, wording, own images (issue 14)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from sagemix.commands import _common


def main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI entry point in-process."""
    from sagemix.cli import main as cli_main

    try:
        rc = cli_main(list(args))
    except SystemExit as e:
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5))


# -- threads and progress --------------------------------------------------------------------------
def test_auto_threads_one_on_a_busy_machine() -> None:
    assert _common.auto_threads(load=3.0, cpus=2) == 1  # two other jobs on two cores
    assert _common.auto_threads(load=1.5, cpus=2) == 1
    assert _common.auto_threads(load=0.2, cpus=2) == 0  # quiet: torch's default
    assert _common.auto_threads(load=0.0, cpus=1) == 1
    assert _common.auto_threads(load=6.0, cpus=16) == 0


def test_parse_and_apply_threads() -> None:
    assert _common.parse_threads("auto") == "auto" and _common.parse_threads("2") == 2
    for bad in ("-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="auto"):
            _common.parse_threads(bad)
    before = torch.get_num_threads()
    try:
        assert _common.apply_threads(1) == 1 and torch.get_num_threads() == 1
        assert _common.apply_threads(0) == 1  # 0 leaves the count alone
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="--threads"):
        _common.apply_threads(-2)


@pytest.mark.parametrize("command", ["train", "eval", "demo", "show", "bench", "compare"])
def test_every_computing_command_has_threads(capsys, command) -> None:
    rc, out, _ = main(capsys, command, "--help")
    assert rc == 0 and "--threads" in out


def test_progress_default_follows_the_terminal(monkeypatch) -> None:
    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr("sys.stderr", Tty(False))
    assert _common.progress_enabled(None) is False and _common.progress_enabled(True) is True
    monkeypatch.setattr("sys.stderr", Tty(True))
    assert _common.progress_enabled(None) is True and _common.progress_enabled(False) is False


def test_train_resolves_threads_and_progress(capsys) -> None:
    rc, out, _ = main(capsys, "train", "offline", "--threads", "1", "--show-config")
    cfg = json.loads(out)
    assert rc == 0 and cfg["threads"] == 1 and cfg["progress"] is False  # not a terminal under pytest
    rc, out, _ = main(capsys, "train", "offline", "--set", "threads=2", "--show-config")
    assert json.loads(out)["threads"] == 2  # --set wins over auto


# -- refused before any work -------------------------------------------------------------------------
def _unwritable(tmp_path: Path) -> str:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return str(blocker / "sub")  # a folder below a file can never be made


def test_check_out_dir(tmp_path: Path) -> None:
    assert _common.check_out_dir(tmp_path / "new" / "dir").is_dir()
    with pytest.raises(ValueError, match="--out .* not a writable folder"):
        _common.check_out_dir(_unwritable(tmp_path))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _common.check_out_dir(tmp_path / "f")


@pytest.mark.parametrize("argv", [
    ["show", "--out", "{bad}"],
    ["bench", "--model", "smallnet", "--out", "{bad}"],
    ["demo", "--quick", "--out", "{bad}"],
    ["show", "--methods", "nosuch"],
    ["bench", "--methods", "nosuch"],
    ["bench", "--mixer-kwargs", '{"mixup": {"alpha": -1}}'],
    ["bench", "--mixer-kwargs", '{"mixup": {"nosuch": 1}}'],
    ["train", "offline", "--set", "method_kwargs.nosuch=1", "--show-config"],
])
def test_refused_at_once(capsys, tmp_path, argv) -> None:
    argv = [a.replace("{bad}", _unwritable(tmp_path)) for a in argv]
    rc, out, err = main(capsys, *argv)
    assert rc == 2 and "error:" in err, err
    assert "training" not in out and "wrote" not in out  # no work was done
    assert "Traceback" not in err


def test_unknown_mixer_option_lists_the_valid_ones(capsys) -> None:
    rc, _, err = main(capsys, "train", "offline", "--method", "mixup", "--set", "method_kwargs.alfa=1",
                      "--show-config")
    assert rc == 2 and "'alfa'" in err and "alpha" in err and "unexpected keyword" not in err


def test_compare_refuses_unknown_methods_in_a_dry_run(capsys, tmp_path) -> None:
    cfg = {"recipe": "offline", "out": str(tmp_path / "cmp"), "methods": ["vanilla", "nosuch"], "seeds": [0]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    rc, _, err = main(capsys, "compare", "--config", str(tmp_path / "c.json"), "--dry-run")
    assert rc == 2 and "nosuch" in err and "expected" in err and "sage" in err
    cfg["methods"] = ["vanilla", "mixup"]
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    rc, _, err = main(capsys, "compare", "--config", str(tmp_path / "c.json"), "--dry-run", "--methods", "nosuch")
    assert rc == 2 and "--methods" in err


def test_cli_speaks_options_not_arguments() -> None:
    from sagemix.cli import cli_message

    msg = cli_message("CIFAR files not found under root='data': ... (or pass download=True with network access).")
    assert "--data-dir 'data'" in msg and "pass --download" in msg and "download=True" not in msg
    msg = cli_message("run folder 'x' already holds a checkpoint; pass resume=True (--resume) to continue it, "
                      "overwrite=True (--overwrite) to start over, or choose another folder (--out)")
    assert "resume=True" not in msg and "overwrite=True" not in msg and "pass --resume" in msg


# -- missing extras: skipped up front, said on the console and in the output -------------------------------
@pytest.fixture
def no_opencv(monkeypatch):
    import sagemix.extras as extras

    real = extras.import_extra

    def fake(method: str):
        if method == "saliencymix":
            raise ImportError("simulated: no cv2.saliency")
        return real(method)

    monkeypatch.setattr(extras, "import_extra", fake)


def test_missing_extras(no_opencv) -> None:
    from sagemix.extras import missing_extras

    missing = missing_extras(["mixup", "saliencymix", "sage"])
    assert list(missing) == ["saliencymix"] and 'pip install "sagemix[saliencymix]"' in missing["saliencymix"]


def test_bench_skips_a_missing_extra_up_front(no_opencv, monkeypatch) -> None:
    from sagemix.bench import bench_methods
    from sagemix.train import setup

    built = []
    real = setup.build_mixer
    monkeypatch.setattr(setup, "build_mixer", lambda n, **kw: built.append(n) or real(n, **kw))
    report = bench_methods(["mixup", "saliencymix"], model=tiny, num_classes=5, input_size=8, batch_size=4,
                           steps=1, warmup=0, progress=False, measure_parts=False, measure_memory=False)
    row = {m.method: m for m in report.methods}
    assert row["saliencymix"].error.startswith("skipped: needs OpenCV") and "saliencymix" not in built
    assert row["mixup"].error is None and "saliencymix: not measured (skipped" in report.to_markdown()


def test_bench_cli_says_it_skips(no_opencv, capsys, tmp_path) -> None:
    rc, out, err = main(capsys, "bench", "--methods", "mixup", "saliencymix", "--model", "smallnet", "--input-size",
                        "8", "--batch-size", "4", "--steps", "1", "--warmup", "0", "--no-parts", "--no-memory",
                        "--no-kernels", "--threads", "1", "--out", str(tmp_path / "b"))
    assert rc == 0, err
    assert "skipping saliencymix" in err and "OpenCV" in err
    saved = json.loads((tmp_path / "b" / "bench.json").read_text())
    sm = next(m for m in saved["methods"] if m["method"] == "saliencymix")
    assert sm["error"].startswith("skipped")


def test_figure_mixes_labels_a_missing_extra_without_calling_it(no_opencv, monkeypatch, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from sagemix import viz
    from sagemix.viz import figures

    called = []
    real = figures.mix_pair
    monkeypatch.setattr(figures, "mix_pair", lambda m, *a, **k: called.append(m) or real(m, *a, **k))
    g = torch.Generator().manual_seed(0)
    x = viz.normalize_uint8(torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8, generator=g),
                            (0.5,) * 3, (0.25,) * 3)
    path = viz.figure_mixes(x, torch.arange(6) % 3, model=tiny().eval(), mean=(0.5,) * 3, std=(0.25,) * 3,
                            path=tmp_path / "m.png", methods=("mixup", "saliencymix"), n_pairs=1,
                            layout=viz.Layout(cell=32))
    assert Path(path).is_file() and "mixup" in called and "saliencymix" not in called


# -- wording -----------------------------------------------------------------------------------------
def test_list_has_one_clean_line_per_entry() -> None:
    from sagemix.commands.list import KINDS, collect

    for kind in KINDS:
        rows = collect(kind)
        for r in rows:
            d = r["description"]
            assert d and "``" not in d and "Registry adapter" not in d and not d.endswith("..."), (kind, r)
            assert "\n" not in d and len(d) <= 120, (kind, r)
        descs = [r["description"] for r in rows]
        assert len(set(descs)) == len(descs), kind  # no two entries share a line (cifar10/cifar100 did)


# -- the demo's figure ----------------------------------------------------------------------------------
def test_demo_figure_columns_skip_self_pairs() -> None:
    from sagemix.commands.demo import pick_columns

    index = torch.tensor([0, 2, 1, 3, 5, 4, 6, 7])  # 0, 3, 6 and 7 paired with themselves
    assert pick_columns(index, 4) == [1, 2, 4, 5]
    assert pick_columns(index, 6) == [1, 2, 4, 5, 0, 3]  # self-pairs only when nothing else is left


# -- own images ----------------------------------------------------------------------------------------
def test_imagefolder_recipe(capsys) -> None:
    from sagemix.train.config import list_recipes, load_config

    assert "imagefolder" in list_recipes()
    cfg = load_config("imagefolder", overrides={"data_dir": "photos"})
    assert cfg.dataset == "imagefolder" and cfg.image_size == 64 and cfg.epochs < 300
    assert cfg.dataset_kwargs["test_fraction"] == 0.2
    rc, out, _ = main(capsys, "train", "--help")
    assert rc == 0 and "sagemix train imagefolder --data-dir" in out


def test_imagefolder_without_data_dir_names_the_option(capsys, tmp_path) -> None:
    rc, _, err = main(capsys, "train", "imagefolder", "--out", str(tmp_path / "r"), "--no-progress")
    assert rc == 2 and "--data-dir" in err and "root" not in err


@pytest.mark.slow
def test_show_marks_guessed_labels_on_own_images(capsys, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in ("cat", "dog"):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(2):
            px = torch.randint(0, 256, (20, 24, 3), dtype=torch.uint8, generator=g).numpy()
            Image.fromarray(px).save(tmp_path / "photos" / c / f"{i}.png")
    rc, out, err = main(capsys, "show", "--images", str(tmp_path / "photos"), "--train-steps", "0", "--figures",
                        "anatomy", "--cell", "32", "--pairs", "1", "--threads", "1", "--out", str(tmp_path / "f"))
    assert rc == 0, err
    assert "guesses (marked 'digit k?')" in out and (tmp_path / "f" / "sage_anatomy.png").is_file()


def test_demo_states_its_reproducibility(monkeypatch) -> None:
    from sagemix.commands import demo

    monkeypatch.setattr(demo, "EXPECTED_SPREAD", {})
    assert "repeats exactly" in demo.spread_note() and "6 points" in demo.spread_note()
    monkeypatch.setattr(demo, "EXPECTED_SPREAD", {"vanilla": 1.25, "sage": 2.0})
    note = demo.spread_note()
    assert "vanilla 1.2" in note and "sage 2.0" in note and "seeds 0, 1, 2" in note


def test_cli_process_sets_passive_openmp_before_torch(monkeypatch) -> None:
    import sys

    import sagemix

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delitem(sys.modules, "torch")  # as at the start of the process (restored afterwards)
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pytest"], raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    sagemix._quiet_openmp_for_cli()
    assert "OMP_WAIT_POLICY" not in os.environ  # library use: untouched
    monkeypatch.setattr(sys, "orig_argv", ["python", "-u", "-m", "sagemix", "demo"], raising=False)
    sagemix._quiet_openmp_for_cli()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice wins
    sagemix._quiet_openmp_for_cli()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
