"""The second first-use pass (issue 22): wording, early refusals, one-line errors for damaged inputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_first_use import main  # the CLI in-process: (exit status, stdout, stderr)


def one_line_error(rc: int, err: str, *, progress: str | None = None) -> str:
    """The single error line of a refused command (exit status 2, no traceback); ``progress``: the start of
    a progress line allowed before it."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not (progress and ln.startswith(progress))]
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


def tiny_config(out: Path, **kw):
    from sagemix.train import TrainConfig

    return TrainConfig(**{"method": "vanilla", "model": "smallnet", "dataset": "offline", "epochs": 2,
                          "milestones": [1], "batch_size": 16, "train_limit": 32, "test_limit": 32, "device": "cpu",
                          "progress": False, "threads": 1, "out": str(out), "model_kwargs": {"width": 4}, **kw})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """A finished 2-epoch run folder of a tiny smallnet, and the lines its trainer printed."""
    from sagemix.train import Trainer

    out = tmp_path_factory.mktemp("runs") / "tiny"
    lines: list[str] = []
    trainer = Trainer(tiny_config(out), log=lines.append)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return out, lines


def test_a_short_run_names_its_median_window(tiny_run) -> None:
    _, lines = tiny_run
    done = [ln for ln in lines if ln.startswith("done:")]
    assert len(done) == 1 and "median of the last 2 epochs" in done[0] and "last 10" not in done[0], lines


# -- an --out that is a file ---------------------------------------------------------------------------------
def test_out_that_is_a_file_is_one_line_in_every_command(capsys, tmp_path, tiny_run) -> None:
    run_dir, _ = tiny_run
    f = tmp_path / "afile"
    f.write_text("keep me")
    for argv in (["train", "offline", "--out", str(f), "--no-progress"],
                 ["train", "offline", "--resume", "--out", str(f), "--no-progress"],
                 ["eval", str(run_dir), "--out", str(f)],
                 ["eval", str(run_dir), "--out", str(f / "sub")],
                 ["report", str(run_dir), "--out", str(f), "--no-plots"],
                 ["show", "--out", str(f)], ["bench", "--out", str(f)], ["demo", "--out", str(f)]):
        rc, out, err = main(capsys, *argv)
        line = one_line_error(rc, err)
        assert str(f) in line and ("file" in line), (argv, line)
        assert "training" not in out
    assert f.read_text() == "keep me"
    from sagemix.report import collect_runs, write_report

    with pytest.raises(ValueError, match="report folder .* it is a file, not a folder"):
        write_report(collect_runs([run_dir]), f, plots=False)


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


# -- compare: the evaluation's extra and --out checked before any training ------------------------------------
@pytest.fixture
def no_corruptions_extra(monkeypatch):
    """Simulate an install without the corruptions extra (OpenCV): its import check fails."""
    import sagemix.evaluate.corruptions.common as common

    def missing() -> None:
        raise ImportError('the corruptions need OpenCV: pip install "sagemix[corruptions]"')

    monkeypatch.setattr(common, "require_extras", missing)


def _comparison(tmp_path: Path, **eval_block) -> Path:
    cfg = {"recipe": "offline", "out": str(tmp_path / "cmp"), "methods": ["vanilla"], "seeds": [0],
           "overrides": {"epochs": 1, "train_limit": 32, "test_limit": 32, "model_kwargs": {"width": 4},
                         "device": "cpu"},
           "eval": {"enabled": True, **eval_block}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    return path


def test_compare_refuses_a_missing_eval_extra_before_training(no_corruptions_extra, capsys, tmp_path,
                                                               monkeypatch) -> None:
    from sagemix import train as train_pkg

    monkeypatch.setattr(train_pkg, "train", lambda *a, **k: pytest.fail("trained before the check"))
    cfg = _comparison(tmp_path, args=["--device", "cpu", "--corruptions"])
    for extra in ([], ["--dry-run"]):
        rc, out, err = main(capsys, "compare", "--config", str(cfg), "--threads", "1", *extra)
        line = one_line_error(rc, err)
        assert "sagemix[corruptions]" in line and "--no-eval" in line and "vanilla" in line, line
    assert not (tmp_path / "cmp" / "smallnet-vanilla-s0").exists()
    # without the corruption evaluation nothing needs the extra: the dry run shows the plan
    rc, out, err = main(capsys, "compare", "--config", str(_comparison(tmp_path, args=["--device", "cpu"])),
                        "--dry-run")
    assert rc == 0 and "smallnet-vanilla-s0" in out, err
    rc, out, err = main(capsys, "compare", "--config", str(cfg), "--dry-run", "--no-eval")
    assert rc == 0, err


def test_compare_out_that_is_a_file_is_refused_also_in_a_dry_run(capsys, tmp_path) -> None:
    cfg = _comparison(tmp_path, args=["--device", "cpu"])
    f = tmp_path / "afile"
    f.write_text("x")
    for extra in (["--dry-run"], []):
        rc, out, err = main(capsys, "compare", "--config", str(cfg), "--out", str(f), *extra)
        line = one_line_error(rc, err)
        assert "--out" in line and str(f) in line and "is a file" in line


# -- damaged or missing data -----------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_a_truncated_cifar_archive_is_one_line_naming_it(capsys, tmp_path, keep) -> None:
    from test_data_cifar import _make_cifar10, _tar

    from sagemix.data import load_dataset

    _make_cifar10(tmp_path / "src" / "cifar-10-batches-py", per_batch=40)
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    _tar(tmp_path / "src" / "cifar-10-batches-py", archive)
    raw = archive.read_bytes()
    archive.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ValueError, match=r"CIFAR archive .*cifar-10-python\.tar\.gz.* damaged or truncated"):
        load_dataset("cifar10", root=str(archive.parent))
    rc, _, err = main(capsys, "train", "cifar10_preactresnet18", "--data-dir", str(archive.parent), "--out",
                      str(tmp_path / "r"), "--no-progress")
    line = one_line_error(rc, err)
    assert str(archive) in line and "download it again" in line


def test_download_without_network_is_only_the_good_message(capsys, tmp_path, monkeypatch) -> None:
    import urllib.error

    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    rc, out, err = main(capsys, "train", "cifar10_preactresnet18", "--data-dir", str(tmp_path / "none"),
                        "--download", "--out", str(tmp_path / "r"), "--no-progress")
    line = one_line_error(rc, err)
    assert "could not download cifar10" in line and "Without network access, copy cifar-10-python.tar.gz" in line
    assert "--data-dir" in line and "root=" not in line
    from sagemix.data import load_dataset

    with pytest.raises(RuntimeError, match="could not download cifar10"):  # still a RuntimeError for the API
        load_dataset("cifar10", root=str(tmp_path / "none"), download=True)


# -- --resume with a damaged config.json ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["folder", "binary", "garbage"])
def test_resume_with_a_damaged_config_is_one_line_naming_it(capsys, tmp_path, tiny_run, damage) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    config = run / "config.json"
    config.unlink()
    if damage == "folder":
        config.mkdir()
    else:
        config.write_bytes(b"\x80\xff\x00binary" if damage == "binary" else b"{not json")
    rc, out, err = main(capsys, "train", "--resume", "--out", str(run), "--no-progress", "--threads", "1")
    line = one_line_error(rc, err)
    assert str(config) in line, line
    assert {"folder": "is a folder", "binary": "not UTF-8", "garbage": "not valid JSON"}[damage] in line
    assert "codec" not in line and "resumed" not in out


def test_resume_without_config_json_warns_and_goes_on(capsys, tmp_path, tiny_run) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    (run / "config.json").unlink()
    rc, out, err = main(capsys, "train", "--resume", "--out", str(run), "--no-progress", "--threads", "1",
                        "--epochs", "3")
    assert rc == 0, err
    warning = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warning) == 1 and "config.json" in warning[0] and "checkpoint.pt" in warning[0], err
    assert "epoch 3/3" in out and json.loads((run / "config.json").read_text())["epochs"] == 3


# -- a damaged record of a generated corrupted set --------------------------------------------------------------
@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_garbage_corruptions_record_is_one_line_naming_it(capsys, tmp_path, tiny_run, garbage) -> None:
    import numpy as np

    pytest.importorskip("cv2")
    from sagemix.evaluate.corruptions import generate_corrupted

    out = tmp_path / "c"
    out.mkdir()
    (out / "sagemix_corruptions.json").write_bytes(garbage)
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"sagemix_corruptions\.json.*delete"):
        generate_corrupted(images, np.arange(4), out, corruptions=["gaussian_noise"], progress=False)
    eval_out = tmp_path / "eval"
    record = eval_out / "corrupted-offline-seed0-n8" / "sagemix_corruptions.json"
    record.parent.mkdir(parents=True)
    record.write_bytes(garbage)
    rc, _, err = main(capsys, "eval", str(tiny_run[0]), "--out", str(eval_out), "--limit", "8", "--corruptions",
                      "--corruption-names", "gaussian_noise", "--device", "cpu")
    line = one_line_error(rc, err, progress="generating the corrupted test set in")
    assert str(record) in line and "JSONDecodeError" not in line


# -- an unusable SAGEMIX_CACHE ---------------------------------------------------------------------------------
def _break_disk(monkeypatch, code: int) -> None:
    """Every fsync fails with ``code`` (a read-only or full disk, which root's permissions cannot simulate)."""
    import os

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)


@pytest.mark.parametrize("case", ["file", "under_file", "read_only", "full"])
def test_an_unusable_cache_is_a_warning_naming_the_variable(tmp_path, monkeypatch, case) -> None:
    import errno
    import warnings

    from sagemix.data import load_dataset
    from sagemix.utils import folder_write_error

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cache = {"file": blocker, "under_file": blocker / "sub"}.get(case, tmp_path / "cache")
    monkeypatch.setenv("SAGEMIX_CACHE", str(cache))
    reason = {"file": "it is a file, not a folder", "under_file": "a part of the path is a file",
              "read_only": "the file system is read-only", "full": "no space left on the disk"}[case]
    if case in ("read_only", "full"):
        _break_disk(monkeypatch, errno.EROFS if case == "read_only" else errno.ENOSPC)
    assert folder_write_error(cache) is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset("offline", n_train=20, n_test=10)
    msgs = [str(w.message) for w in caught]
    assert len(data.labels) == 20 and data.info["cache"] is None  # generated in memory, not kept
    assert msgs and all(f"SAGEMIX_CACHE={str(cache)!r} cannot be written ({reason}" in m for m in msgs), msgs
    assert all("\n" not in m and "--out" not in m for m in msgs)
    assert blocker.read_text() == "x"
