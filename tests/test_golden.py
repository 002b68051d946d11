"""No behaviour change where none is intended: fixed-seed outputs regenerate bit-identically.

The golden files under tests/golden/ were written by tests/golden/make_golden.py from the code as it
was; the tests here regenerate all of them once, in a process whose CPU kernels are pinned to AVX2
(``make_golden.PINNED_ENV``: an AVX-512 machine's kernels differ in the last bits), and assert exact
equality (``torch.equal``, equal JSON, equal text). Regenerate them only when a behaviour change is
intended (see make_golden.py).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sagemix.mixers import list_mixers

_spec = importlib.util.spec_from_file_location("make_golden", Path(__file__).parent / "golden" / "make_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every golden file made again from the code under test, in a pinned-kernel process."""
    folder = tmp_path_factory.mktemp("golden")
    res = golden.run_pinned(folder)
    if res.returncode == 3:  # the CPU cannot run the kernels the files were made with
        pytest.skip(res.stderr.strip())
    assert res.returncode == 0, res.stderr[-4000:]
    return folder


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
def test_mixer_outputs_are_unchanged(case: str, stored_mixers: dict, regenerated: Path) -> None:
    got = torch.load(regenerated / golden.MIXERS_FILE.name, weights_only=True)[case]
    _assert_same(got, stored_mixers[case], case)


def test_training_and_report_are_unchanged(regenerated: Path) -> None:
    want = json.loads(golden.TRAIN_FILE.read_text())
    assert json.loads((regenerated / golden.TRAIN_FILE.name).read_text()) == want
    texts = {p.name: p.read_text() for p in sorted((regenerated / golden.REPORT_DIR.name).iterdir())}
    stored = {p.name: p.read_text() for p in sorted(golden.REPORT_DIR.iterdir())}
    assert sorted(texts) == sorted(stored)
    for name, text in stored.items():
        assert texts[name] == text, name


def test_the_golden_process_pins_the_kernels() -> None:
    """Under the pinned variables torch and numpy run AVX2 code, on this machine whatever its CPU (the variables
    act only when set before the libraries start)."""
    import os
    import subprocess
    import sys

    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU has no AVX2 ({torch.backends.cpu.get_cpu_capability()})")
    # numpy's AVX-512 dispatch targets (X86_V4, AVX512_ICL, ...) must all be off
    umath = "numpy._core._multiarray_umath" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core._multiarray_umath"
    code = (f"import torch; from {umath} import __cpu_features__ as f, __cpu_dispatch__ as d; "
            "print(torch.backends.cpu.get_cpu_capability(), any(f.get(t) for t in d if t.startswith(('AVX512', "
            "'X86_V4'))))")
    res = subprocess.run([sys.executable, "-c", code], env={**os.environ, **golden.PINNED_ENV},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [golden.PINNED_CAPABILITY, "False"], res.stdout
