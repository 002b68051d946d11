"""The script of tests/test_lightning.py's DDP test: a real ``lightning.Trainer(strategy="ddp")`` on 2 CPU
processes (Lightning starts rank 1 by running this script again). Each rank writes ``<out>/rank<r>.json``:
the relative difference between the first step's all-reduced gradients and the mean of both ranks'
single-process ``MixStep`` gradients, its parameters at the end and its mixer generator state.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from sagemix.mixers import create_mixer
from sagemix.train.distributed import param_digest


def main(out: Path) -> None:
    # imported here: pytest --doctest-modules imports this file, also where Lightning is not installed
    import lightning as L

    from sagemix.integrations.lightning import MixLightningModule
    from test_lightning import K, _GradProbe, _data, _max_rel, _model, _reference_grads

    class _Recorder(L.Callback):
        """The sample indices of this rank's first batch (the dataset's third field)."""

        first = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if self.first is None:
                self.first = batch[2].tolist()

    x, y = _data(32)
    model = _model()
    dataset = torch.utils.data.TensorDataset(x, y, torch.arange(32))
    # Lightning gives each rank a DistributedSampler (shuffled for training, seed 0): both ranks' first batches
    shards = [list(DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=0))[:4] for r in range(2)]
    want = [sum(g) / 2 for g in zip(*(_reference_grads(model, [(x[i], y[i])], "sage", rank=r)
                                      for r, i in enumerate(shards)))]
    probe, recorder = _GradProbe(), _Recorder()
    module = MixLightningModule(model, create_mixer("sage", num_classes=K))
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=out, save_last=True)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=3, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[probe, recorder, ckpt])
    trainer.fit(module, torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False))
    rank = trainer.global_rank
    seen = {"world_size": trainer.world_size, "rel_to_mean_of_single_process": _max_rel(probe.grads, want),
            "first_batch_as_expected": recorder.first == shards[rank], "steps": trainer.global_step,
            "params": param_digest(module.model, buffers=False), "generator_state": module.mixer.generator.get_state().tolist()}
    (out / f"rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
