#!/usr/bin/env bash
# The next session's pipeline on an H100 (`bash bench/host.sh planned` runs it after install; bench/session.md).
# Issue 10: the decoder serving study resumes from .carry/h100/ (12 waiting trials, then TPE) toward 40 COMPLETE;
# issue 11: then the precision table on trial 11's own buckets, against its strict-FP32 and TF32 twins (47-48).
# About 22 minutes with the tail; the waiting trials run first, about 0.8 COMPLETE a minute with two workers.
SEED_TRIALS=0 PRECISION_PLANS=none ALLOW_INT8=1 INT8_TRIALS=3 MODELS=decoder HARNESS=serving TAG=decoder-serving \
  TUNE_S=780 TRIAL_TIMEOUT_S=600 TUNE_ARGS="--allow-int8 --max-opt-level 4" WORKERS=2 TABLES=0 \
  BASE=trial:11 PRECISION_LAYOUT="per_batch[1,4,16]" MAX_OPT=4 \
  bash bench/host.sh start-bg caches plugins study precision-table freeze
