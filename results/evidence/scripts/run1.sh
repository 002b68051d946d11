#!/bin/bash
# usage: run1.sh NAME [sagemix train args...]  -- one training, 1 thread, CPU time recorded
name=$1; shift
mkdir -p runs/$name
OMP_NUM_THREADS=1 /usr/bin/time -f "%e wall_s %U user_s %S sys_s" -o runs/$name/time.txt \
  sagemix train offline --no-progress --device cpu --set threads=1 --out runs/$name --overwrite "$@" > runs/$name/log.txt 2>&1
