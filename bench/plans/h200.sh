#!/usr/bin/env bash
# The next session's pipeline on an H200 (`bash bench/host.sh planned` runs it after install; bench/session.md).
# Issue 11: the encoder's precision rows on the fast layout, in a new encoder serving study: its three per_batch
# seeds (4-9 minutes each cold), then the sensitivity plan on the TF32 seed, as far as the budget goes.
# Builder level 5 crashes TensorRT 8.6.0 on the H200 (README, Bug report): the level stays at most 4.
MAX_OPT=4 MODELS=encoder HARNESS=serving TAG=encoder-serving SEED_TRIALS=3 BASE=per_batch_tf32 \
  PRECISION_PLANS=sensitivity TUNE_S=360 TRIAL_TIMEOUT_S=600 TUNE_ARGS="--max-opt-level 4" TABLES=0 WORKERS=2 \
  bash bench/host.sh start-bg caches plugins study precision-table freeze
