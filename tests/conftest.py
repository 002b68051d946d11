"""Fixtures shared by the test files."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def cpu_transfers(monkeypatch):
    """The shapes of the tensors moved with ``Tensor.cpu()`` while the test runs (a list that grows)."""
    calls: list[tuple[int, ...]] = []
    real = torch.Tensor.cpu

    def counting(self, *a, **k):
        calls.append(tuple(self.shape))
        return real(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "cpu", counting)
    return calls
