"""The loader half of the scale benchmark: folder generation, the report and ``sagemix bench --scale``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from sagemix.data.synthetic import make_jpeg_folder
from sagemix.bench.loader import (loader_report_markdown, loader_scale_report, measure_decode_limit, measure_loader,
                                  measure_loader_vs_decode, prepare_jpeg_folder)


def test_loader_measurements(tmp_path: Path) -> None:
    root = make_jpeg_folder(tmp_path / "j", 7, (10, 12), classes=3, seed=2)
    lim = measure_decode_limit(root, n=5, image_size=8)
    run = measure_loader(root, workers=0, batch_size=2, steps=4, image_size=8, warmup=1)
    assert lim["images"] == 5 and lim["images_per_s"] > 0
    with pytest.raises(ValueError, match="steps must be an int >= rounds=5, got 3"):
        measure_loader_vs_decode(root, workers=1, steps=3)
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        measure_loader_vs_decode(root, workers=0)
    assert run["images"] == 2 + 2 + 1 + 2 and run["images_per_s"] > 0  # batches 2-4 of epoch 0, then 1 of epoch 1


def test_prepare_jpeg_folder_slices_and_reuse(tmp_path: Path) -> None:
    info = prepare_jpeg_folder(tmp_path / "f", 12, size=16, classes=3, processes=2)
    files = sorted(p.relative_to(tmp_path / "f").as_posix() for p in (tmp_path / "f").glob("class_*/*.jpg"))
    assert len(files) == 12 and info["processes"] == 2 and not info["reused"]
    assert files[:2] == ["class_000/000000.jpg", "class_000/000003.jpg"] and "class_002/000011.jpg" in files
    assert prepare_jpeg_folder(tmp_path / "f", 12, size=16, classes=3, processes=2)["reused"]
    with pytest.raises(ValueError, match="n must be an int >= classes=3, got 2"):
        prepare_jpeg_folder(tmp_path / "g", 2, classes=3)
    with pytest.raises(ValueError, match="start must be an int >= 0, got -1"):
        make_jpeg_folder(tmp_path / "h", 2, classes=1, start=-1)


@pytest.mark.slow  # a fresh Python process per RSS measurement
def test_loader_scale_report_small(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    r = loader_scale_report(tmp_path, n_small=24, n_large=48, size=32, image_size=16, classes=4, workers=1,
                            batch_size=4, steps=3, decode_n=8, rounds=3)
    assert [g["files"] for g in r["generate"]] == [24, 48]
    assert [row["files"] for row in r["rss"]] == [24, 48]
    assert r["decode_limit"]["limit_images_per_s"] == pytest.approx(r["decode_limit"]["images_per_s"])
    assert r["loader"]["images"] == 12 and r["loader_fraction"] > 0  # 3 rounds of 1 batch of 4
    assert torch.get_num_threads() == threads  # the loader's own thread count was restored
    assert r["loader"]["main_threads"] == max(1, (os.cpu_count() or 1) - 1)
    assert r["decode_limit"]["images"] == 3 * 8 and len(r["loader"]["per_round"]) == 3
    assert r["loader_fraction"] == pytest.approx(r["loader"]["images_per_s"] / r["decode_limit"]["limit_images_per_s"])
    assert r["rss_growth_mb"] == pytest.approx(r["rss"][1]["main_peak_rss_mb"] - r["rss"][0]["main_peak_rss_mb"])
    assert set(r["passed"]) == {"loader_fraction_of_decode_limit", "rss_growth_mb"}
    md = loader_report_markdown(r)
    assert "| RSS growth |" in md and "of the limit | >= 85% |" in md


def test_bench_scale_cli_search_and_mixers_parts(tmp_path: Path, capsys) -> None:
    from sagemix.cli import main

    out = tmp_path / "scale"
    assert main(["bench", "--scale", "--scale-parts", "search", "mixers", "--scale-sizes", "8", "16",
                 "--scale-batch", "4", "--methods", "mixup", "sage", "--threads", "1", "--no-progress",
                 "--out", str(out)]) == 0
    res = json.loads((out / "scale.json").read_text())
    assert [r["size"] for r in res["search"]] == [8, 16] and "loader" not in res
    assert all(r["c2f_ge_random"] == 1.0 for r in res["search"])  # coarse-to-fine never below the random search
    assert sorted((r["method"], r["size"]) for r in res["mixers"]) == [("mixup", 8), ("mixup", 16), ("sage", 8),
                                                                      ("sage", 16)]
    md = (out / "scale.md").read_text()
    assert "## SAGE's shift searches" in md and "| sage | 16 | 0 |" in md and "pixels x4" in md
    capsys.readouterr()
    assert main(["bench", "--scale", "--scale-parts", "search", "--scale-sizes", "1", "--no-progress"]) != 0
    assert "--scale-sizes must be integers >= 2, got [1]" in capsys.readouterr().err
    assert main(["bench", "--scale", "--scale-parts", "mixers", "--methods", "nope", "--no-progress"]) != 0
    assert "--methods" in capsys.readouterr().err and not (tmp_path / "nope").exists()
