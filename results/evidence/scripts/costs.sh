#!/bin/bash
# Cost runs of the candidate protocol (3 epochs each: the per-epoch cost is what matters), then one timed eval.
P="--set train_limit=1000 --set test_limit=1000 --epochs 3 --set milestones=[50,75] --seed 0"
./run1.sh cost_vanilla $P --method vanilla
./run1.sh cost_sage $P --method sage
./run1.sh cost_sage_exh ${P/--epochs 3/--epochs 1} --method sage --set method_kwargs.rand_pos=null
./run1.sh cost_sage_zero $P --method sage --set method_kwargs.rand_pos=0.0002 --set method_kwargs.force_zero_shift=true
./run1.sh cost_comixup $P --method comixup
OMP_NUM_THREADS=1 /usr/bin/time -f "%e wall_s %U user_s %S sys_s" -o runs/cost_sage/eval_time.txt \
  sagemix eval runs/cost_sage --device cpu --limit 1000 --corruptions runs/corrupted-offline --adversarial fgsm --eps 8/255 \
  > runs/cost_sage/eval_log.txt 2>&1
OMP_NUM_THREADS=1 /usr/bin/time -f "%e wall_s %U user_s %S sys_s" -o runs/cost_vanilla/eval_time.txt \
  sagemix eval runs/cost_vanilla --device cpu --limit 1000 --corruptions runs/corrupted-offline --adversarial fgsm --eps 8/255 \
  > runs/cost_vanilla/eval_log.txt 2>&1
