"""SaliencyMix's OpenCV saliency on the worker pool: the same maps and mix as in process."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("cv2.saliency")

from sagemix.functional.pool import WorkerPool  # noqa: E402
from sagemix.functional.saliencymix import opencv_saliency, saliency_of_arrays  # noqa: E402
from sagemix.mixers.saliencymix import SaliencyMix  # noqa: E402


@pytest.mark.slow  # starts spawn worker processes (tens of seconds on a loaded 2-core machine)
def test_pool_gives_the_in_process_maps_and_mix():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 24, 24), dtype=torch.uint8, generator=g)
    ref = opencv_saliency(x)
    assert ref.shape == (5, 24, 24) and ref.dtype == torch.float32
    # BGR order and one array per image, as the detector sees them
    direct = saliency_of_arrays(x.flip(1).permute(0, 2, 3, 1).contiguous().numpy())
    assert torch.equal(ref, torch.from_numpy(direct))
    with WorkerPool(2) as pool:
        assert torch.equal(opencv_saliency(x, pool=pool), ref)
    images = torch.randn(6, 3, 16, 16, generator=g)
    labels = torch.arange(6) % 3
    a = SaliencyMix(prob=1.0, num_classes=3, generator=torch.Generator().manual_seed(1))
    b = SaliencyMix(prob=1.0, num_classes=3, num_workers=1, generator=torch.Generator().manual_seed(1))
    try:
        oa, ob = a(images, labels), b(images, labels)
        assert b.pool is not None and b.pool.started
        assert torch.equal(oa.images, ob.images) and torch.equal(oa.targets, ob.targets)
    finally:
        b.close()
    with pytest.raises(ValueError, match="num_workers"):
        SaliencyMix(num_classes=3, num_workers=-1)


def test_auto_workers_stay_in_process_for_small_images():
    from sagemix.mixers.saliencymix import AUTO_POOL_PIXELS

    mixer = SaliencyMix(prob=1.0, num_classes=3, generator=torch.Generator().manual_seed(0))
    try:
        assert mixer.auto_workers and 16 * 16 < AUTO_POOL_PIXELS
        mixer(torch.randn(4, 3, 16, 16), torch.arange(4) % 3)
        assert mixer.pool is None or not mixer.pool.started  # no process was started for 16 px
    finally:
        mixer.close()
    assert SaliencyMix(num_classes=3, num_workers=0).pool is None
