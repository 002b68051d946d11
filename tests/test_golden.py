"""No behaviour change where none is intended: fixed-seed outputs regenerate bit-identically.

The golden files under tests/golden/ were written by tests/golden/make_golden.py from the code as it
was; each test here regenerates one of them and asserts exact equality (``torch.equal``, equal JSON,
equal text). Regenerate them only when a behaviour change is intended (see make_golden.py).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from sagemix.mixers import list_mixers

_spec = importlib.util.spec_from_file_location("make_golden", Path(__file__).parent / "golden" / "make_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)  # type: ignore[union-attr]


def _assert_same(got, want, where: str) -> None:
    """Exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and torch.equal(got, want), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) >= set(want), f"{where}: keys {sorted(got)} vs {sorted(want)}"
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_same(a, b, f"{where}[{i}]")
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def test_every_registered_mixer_has_a_golden_case() -> None:
    assert {name for _, name, _ in golden.MIXER_CASES} == set(list_mixers())


@pytest.fixture(scope="module")
def stored_mixers() -> dict:
    return torch.load(golden.MIXERS_FILE, weights_only=True)


@pytest.mark.parametrize("case", [c for c, _, _ in golden.MIXER_CASES])
def test_mixer_outputs_are_unchanged(case: str, stored_mixers: dict, monkeypatch) -> None:
    monkeypatch.setattr(golden, "MIXER_CASES", [c for c in golden.MIXER_CASES if c[0] == case])
    got = golden.mixer_outputs()[case]
    _assert_same(got, stored_mixers[case], case)


def test_training_and_report_are_unchanged(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    got = golden.train_runs(runs)
    want = json.loads(golden.TRAIN_FILE.read_text())
    assert json.loads(json.dumps(got, sort_keys=True)) == want
    texts = golden.report_texts(runs, tmp_path / "report")
    stored = {p.name: p.read_text() for p in sorted(golden.REPORT_DIR.iterdir())}
    assert sorted(texts) == sorted(stored)
    for name, text in stored.items():
        assert texts[name] == text, name
