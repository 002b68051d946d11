"""Every method's step runs under torch.compile of the model without falling back to eager (issue 10 item 2).

Dynamo traces the model (the backend is ``"eager"``: the test is about tracing, not code
generation, and stays fast); a graph break or a recompilation per step would show in
``torch._dynamo.utils.counters``. Manifold Mixup is the interesting case: its mixing function runs
inside the model, with ``lam`` a tensor so that no step specialises the graph on a drawn value.
"""
from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from sagemix import MixStep, create_mixer, list_mixers
from sagemix.models import create_model

K = 5
NEEDS_GCO = {"puzzlemix", "comixup"}
OPTIONS = {"comixup": {"m_part": 2}}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "comixup" else n
                                  for n in list_mixers()])
def test_compiled_step_has_no_graph_breaks(name):
    if name in NEEDS_GCO:
        pytest.importorskip("gco")
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = torch.compile(create_model("smallnet", K, width=4), backend="eager")
    mixer = create_mixer(name, num_classes=K, generator=torch.Generator().manual_seed(0), **OPTIONS.get(name, {}))
    step = MixStep(model, mixer)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        out = step(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, K, (4,), generator=g))
        assert torch.isfinite(out.loss)
    try:
        assert dict(counters["graph_break"]) == {}
        # One graph per forward signature: train/eval clean pass, the mixed pass, and for Manifold
        # Mixup one per mixing layer (3 by default) -- never one per step.
        assert 1 <= counters["stats"]["unique_graphs"] <= 4
    finally:
        torch._dynamo.reset()
