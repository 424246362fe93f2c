#!/usr/bin/env bash
# Steps of a session on the GPU host (no network; TensorRT from ../shared/gpu's rig).
# Run from the repo root there:  bash bench/host.sh STEP [STEP ...]
# The host's python3 (torch) exports models and data; TensorRT work runs under the
# rig's python3.10. Generated files live in $WORK (kept while the host stays warm);
# results worth keeping are written to $RESULTS, and `collect` copies them to $OUT,
# which the device tool brings back (it is emptied before every command).
#
# A whole session, with the host kept busy between calls (bench/session.md has the plan):
#   bash bench/host.sh start-bg nvsmi data torch   # first call: torch needs no TensorRT, so it compiles while the parts are sent
#   bash bench/host.sh install && bash bench/host.sh start-bg plugins layouts
#   (or, the same text every session: bash bench/host.sh install && bash bench/host.sh planned, which runs
#    bench/plans/<card>.sh, the pipeline written for that card before the session)
#   bash bench/host.sh wait 540                 # repeat: waits, prints progress, collects
#
# Settings (environment): WORK (/root/work), RESULTS ($WORK/results), TUNE_S (tuning
# budget in seconds, both models, default 600), TUNE_ARGS (extra `search tune` args),
# MODELS and PLAN_TRIALS (the ablation / sensitivity steps), BASE / PRECISION_PLANS / ALLOW_INT8 / MAX_OPT (study and
# the precision steps: the plans' seed or trial:N, the plans in queue order, INT8 mixes, the builder level cap),
# PRECISION_LAYOUT (precision-table: per_batch, or one layout exactly such as per_batch[1,4,16]),
# GPU_SLUG (default: from nvidia-smi, e.g. h200), STUDY_DB (a study.db to resume from, copied into $WORK once), IMPORT_JSON (the committed
# study export whose studies the caches step imports when study.db lacks them; default
# bench/results/study-$MODELS-$HARNESS-$GPU_SLUG.json), TRT_PYTHON (instead of the rig's python3.10), TAG (freeze/reproduce file names), OWN_TRIALS / OWN_HARNESS (own-workload), RERUN_TAG / RERUN_NOTE,
# WORKERS (study: tune --workers-per-gpu), AB_WORKERS / AB_S / AB_STUDY (workers-ab: the worker counts, "3 1", seconds of each, main = in the model's own study),
# TORCH_VARIANTS (torch: bench/torch_baselines.py --variants), MODELS_TORCH (torch: its models, one process each), TORCH_WAIT_S (layouts: how long its timings wait for the torch compiles), TABLES=0 (study: no precision table / front), TRIAL_TIMEOUT_S (study: seconds per trial, 400; the encoder's FP16 builds need more), SEEDS (study: tune --seeds), ONLY (cache-builds, layouts: variant labels of bench/layouts.py), LAYOUT_CONFIGS (layouts: LABEL=PATH frozen configs measured beside the suite), CACHE_DEADLINE_S (cache-builds: seconds before no build starts).
set -uo pipefail
WORK=${WORK:-/root/work}
RESULTS=${RESULTS:-$WORK/results}
OUT=${OUT:-/tmp/out}
TUNE_S=${TUNE_S:-600}
TUNE_ARGS=${TUNE_ARGS:-}
# the card this host has ('NVIDIA H100 80GB HBM3' -> h100): a plain device call may land on an H100 or an H200
GPU_SLUG=${GPU_SLUG:-$(python3 -c "import sys; sys.path.insert(0, '$(cd "$(dirname "$0")/.." && pwd)'); from search.toolkit import gpu_slug; print(gpu_slug(sys.argv[1]))" \
  "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" 2>/dev/null || echo unknown)}
PLUGIN_LIB=${PLUGIN_LIB:-$WORK/plugins/libwenet_trt_plugins.so}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK" "$RESULTS" "$OUT"
export PYTHONUNBUFFERED=1

# TRT_PYTHON: an interpreter to use instead of the rig's (the CPU tests run steps with their own)
trt() { if [ -n "${TRT_PYTHON:-}" ]; then "$TRT_PYTHON" "$@"; else (. /root/rig/env.sh && python3.10 "$@"); fi; }

resume_study() {   # [HARNESS]: a study of this model and harness $WORK/study.db lacks goes on from its committed export
  local h=${1:-${HARNESS:-contest}}
  local ex=${IMPORT_JSON:-bench/results/study-${MODELS:-decoder}-$h-$GPU_SLUG.json}
  [ -f "$ex" ] || { echo "no $ex: a study $WORK/study.db lacks starts new"; return 0; }
  # --if-missing: a carried database keeps its studies (the newer record, not checked again); only the missing
  # ones come in, their planned trials checked against the space they were planned in: the same flags as PS
  # and, once the plugins step built it, our plugin library (so the steps that tune call this again)
  local L=(); [ -f "$PLUGIN_LIB" ] && L=(--plugin-lib "$PLUGIN_LIB")
  trt -m search import "$ex" --work-dir "$WORK" --model "${MODELS:-decoder}" --harness "$h" \
    --max-opt-level "${MAX_OPT:-4}" ${ALLOW_INT8:+--allow-int8} "${L[@]}" --if-missing
}

wait_for() {   # wait_for FILE SECONDS: until FILE exists
  local t0=$SECONDS
  while [ ! -e "$1" ]; do
    [ $((SECONDS - t0)) -ge "$2" ] && { echo "gave up waiting for $1"; return 1; }
    sleep 3
  done
}

collect() {   # results + a consistent copy of the study database -> $OUT (8 files at most: tarred)
  (cd "$RESULTS" && shopt -s nullglob && f=(./*.json ./*.png ./*.log) && [ ${#f[@]} -gt 0 ] &&
     tar czf "$OUT/results.tgz" "${f[@]}")
  if [ -f "$WORK/study.db" ]; then
    python3 -c "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)" \
      "$WORK/study.db" "$OUT/study.db"
    echo "$GPU_SLUG" > "$OUT/gpu.txt"       # carried back beside study.db: the caches step checks it
  fi
  (cd "$WORK" && tar czf "$OUT/logs.tgz" --ignore-failed-read bg.log results/*.log results/*.txt configs \
     trials/*/*/eval.txt trials/*/*/result.json layouts/*.report.json layouts/*.stderr \
     plugins/*.report.json plugins/*.stderr 2>/dev/null)
  # timing caches outlive the host: carried back in as .carry/caches for the next session
  (cd "$WORK" && ls timing-*.cache >/dev/null 2>&1 && tar czf "$OUT/caches.tgz" timing-*.cache)
  ls "$OUT"
}

# the precision steps' shared `search` arguments (the serving study, the opt-level cap, INT8 when asked)
PS=(--work-dir "$WORK" --harness serving --max-opt-level "${MAX_OPT:-4}" ${ALLOW_INT8:+--allow-int8})

tagged() {   # tagged NAME: freeze/reproduce's result file, TAG naming the study (study-decoder-contest-h200.json)
  echo "$RESULTS/$1${TAG:+-$TAG}-$GPU_SLUG.json"
}

step() {
  local s=$1
  echo "=== $s $(date -u +%H:%M:%S)"
  case "$s" in
    nvsmi) nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv ;;
    install)  # the rig parts must already be in /root/rig/in
      bash "$REPO/.gpu/install.sh" 2>&1 | tail -3 ;;
    data)  # ONNX models (contest style) + test grid + calibration data, references on the GPU in FP32
      python3 -m workload export --out "$WORK/onnx" && touch "$WORK/onnx/.complete" &&
      python3 -m workload data --out "$WORK/data" --device cuda 2>&1 | tail -1 &&
      touch "$WORK/data/.complete" ;;
    layouts)  # issue 9's table: every layout x precision x harness, both models, with the torch rows
      # Builds run from this pipeline's private copy; the measurements from the live tree ($LIVE,
      # refreshed by every device call), so a runtime fix sent while the engines build still counts.
      wait_for "$WORK/onnx/.complete" 900 || return 1
      lay=(--work "$WORK" --out "$RESULTS" ${ONLY:+--only "$ONLY"} --torch-json "$RESULTS/torch-baselines-$GPU_SLUG.json"
           --torch-compiled-flag "$WORK/torch.compiled" --trt-done-flag "$WORK/trt.done" --torch-wait-s "${TORCH_WAIT_S:-240}")
      # LAYOUT_CONFIGS: frozen configs (LABEL=PATH, space-separated) measured beside the layouts, e.g. a study's best;
      # our plugin library (the plugins step) for the configs that use it
      for c in ${LAYOUT_CONFIGS:-}; do lay+=(--config "$c"); done
      [ -n "${LAYOUT_CONFIGS:-}" ] && [ -f "$PLUGIN_LIB" ] && lay+=(--plugin-lib "$PLUGIN_LIB")
      trt bench/layouts.py "${lay[@]}" --phase build --parallel "${PARALLEL:-4}" \
        --build-deadline-s "${BUILD_DEADLINE_S:-600}" --build-grace-s "${BUILD_GRACE_S:-100}" \
        > "$RESULTS/layouts.log" 2>&1
      (cd "${LIVE:-.}" && . /root/rig/env.sh && python3.10 bench/layouts.py "${lay[@]}" --phase measure) \
        >> "$RESULTS/layouts.log" 2>&1
      tail -40 "$RESULTS/layouts.log" ;;
    plugins)  # our plugin library (plugins/src) against the rig, then its GPU tests in the background
      SP=/root/.pyenv/versions/3.10.13/lib/python3.10/site-packages
      TRT_INCLUDE="$REPO/.gpu/tensorrt-include" TRT_LIB="$SP/tensorrt" OUT="$WORK/plugins" \
        bash plugins/build_plugins.sh 2>&1 | tail -3
      [ -f "$PLUGIN_LIB" ] || { echo "error: no $PLUGIN_LIB"; return 1; }
      [ "${PLUGIN_TESTS:-1}" = 1 ] || return 0       # PLUGIN_TESTS=0: the library only (tests ran before)
      # the tests hold the GPU lock as a build does, so no trial of a study started beside them measures meanwhile
      (. /root/rig/env.sh && WENET_TRT_PLUGIN_LIB="$PLUGIN_LIB" python3.10 -m search.gpu_share --work-dir "$WORK" -- \
         timeout 420 python3.10 -m pytest -q -m gpu tests/plugins -p no:cacheprovider \
         > "$RESULTS/plugins-gputests.log" 2>&1) &
      echo "plugin GPU tests started (results/plugins-gputests.log)" ;;
    plugin-bench)  # issue 12's table: the best contest configs with and without our plugins
      wait_for "$WORK/onnx/.complete" 900 || return 1
      [ -f "$PLUGIN_LIB" ] || { echo "error: no $PLUGIN_LIB (run the plugins step)"; return 1; }
      trt bench/layouts.py --suite plugins --work "$WORK" --out "$RESULTS" --plugin-lib "$PLUGIN_LIB" \
        --parallel "${PARALLEL:-5}" --build-deadline-s "${BUILD_DEADLINE_S:-420}" \
        --build-grace-s "${BUILD_GRACE_S:-150}" > "$RESULTS/plugins.log" 2>&1
      tail -14 "$RESULTS/plugins.log" ;;
    study)  # one model's study on one harness: seeds, a precision plan, then TPE, for TUNE_S seconds
      wait_for "$WORK/data/.complete" 600 || return 1
      resume_study || return 1
      S=(--work-dir "$WORK" --model "${MODELS:-decoder}" --harness "${HARNESS:-contest}")
      # a study the carried database lacks comes from its export (resume_study above, now with our plugin library)
      # P: our plugin library, for the plans and for tune (without it plans lacked its plugin parameters, which
      # the sampler then chose until tune pinned them, 2026-12-07)
      P=(); [ -f "$PLUGIN_LIB" ] && P=(--plugin-lib "$PLUGIN_LIB")
      L=("${P[@]}")
      # SEEDS: the seeds a new study enqueues (tune --seeds: all, none or labels; the encoder's FP16 ones cost minutes)
      [ -n "${SEEDS:-}" ] && L+=(--seeds "$SEEDS")
      # WORKERS: tuning processes on the GPU (tune --workers-per-gpu): builds overlap, measurements take turns;
      # two finished 1.49x the COMPLETE trials a minute of one on the H100, builds no slower (workers-ab-2v1-h100.json)
      L+=(--workers-per-gpu "${WORKERS:-2}")
      # the seeds first (a new study enqueues them when tune opens it), then the plans, then TPE
      [ "${SEED_TRIALS:-6}" -gt 0 ] && trt -m search tune "${S[@]}" "${L[@]}" --trials "${SEED_TRIALS:-6}" \
        --trial-timeout "${TRIAL_TIMEOUT_S:-400}" --no-progress 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      I=(${ALLOW_INT8:+--allow-int8})
      for p in ${PRECISION_PLANS:-rules}; do
        [ "$p" = none ] || trt -m search plan "${S[@]}" "${I[@]}" "${P[@]}" --plan "$p" --base "${BASE:-passes_fp32}"
      done
      # ALLOW_INT8=1: the waiting trials (the plans' INT8 variants) run with int8 allowed; TPE keeps its space
      [ -n "${ALLOW_INT8:-}" ] && trt -m search tune "${S[@]}" "${L[@]}" "${I[@]}" --trials "${INT8_TRIALS:-3}" \
        --trial-timeout "${TRIAL_TIMEOUT_S:-400}" --no-progress 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      # shellcheck disable=SC2086
      trt -m search tune "${S[@]}" "${L[@]}" --time-budget "$TUNE_S" --trial-timeout "${TRIAL_TIMEOUT_S:-400}" --no-progress $TUNE_ARGS \
        2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      # TABLES=0: no precision table or front (a random-sampler study beside the TPE one needs neither)
      if [ "${TABLES:-1}" != 0 ]; then
        trt -m search precision "${S[@]}" "${I[@]}" --base "${BASE:-passes_fp32}" --layout single \
          --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" --json "$RESULTS/precision-$GPU_SLUG.json"
        trt -m search pareto --work-dir "$WORK" --harness "${HARNESS:-contest}" --out "$RESULTS/pareto-$GPU_SLUG.png" \
          --json "$RESULTS/pareto-$GPU_SLUG.json" \
          --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
      fi ;;
    cache-builds)  # issue 10: cold vs warm timing cache per layout, each engine built twice, one build at a time
      wait_for "$WORK/data/.complete" 600 || return 1
      trt bench/cache_builds.py --work "$WORK" --out "$RESULTS" --models "${MODELS:-encoder,decoder}" \
        --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" ${ONLY:+--only "$ONLY"} \
        --deadline-s "${CACHE_DEADLINE_S:-540}" > "$RESULTS/cache-builds.log" 2>&1
      tail -12 "$RESULTS/cache-builds.log" ;;
    diag) trt bench/diag/trt_abort.py --json "$RESULTS/diag-trt86-$GPU_SLUG.json" ;;
    diag-all)  # issue 15's bug reproductions on this rig (cuDNN present): the graph cases, then the aborts again
      wait_for "$WORK/onnx/.complete" 900 || return 1
      trt bench/diag/trt86_graphs.py --work "$WORK" --json "$RESULTS/diag-graphs-$GPU_SLUG.json" \
        > "$RESULTS/diag-graphs.log" 2>&1; tail -12 "$RESULTS/diag-graphs.log" | cut -c1-240
      trt bench/diag/trt_abort.py --json "$RESULTS/diag-trt86-cudnn-$GPU_SLUG.json" | cut -c1-200 ;;
    own-workload)  # issue 14: the README's own-model example (examples/tinycnn) tuned for real, then rebuilt
      OW=$WORK/own; mkdir -p "$OW"; cp examples/tinycnn/tinycnn.yaml "$OW/"
      python3 examples/tinycnn/export_tinycnn.py --out "$OW/tinycnn.onnx" 2>&1 | tail -1
      W=(--workload "$OW/tinycnn.yaml"); T=(--work-dir "$OW/work" --harness "${OWN_HARNESS:-serving}")
      trt -m workload cases "${W[@]}" | tail -1
      trt -m search tune "${W[@]}" "${T[@]}" --trials "${OWN_TRIALS:-10}" --trial-timeout 300 --no-progress \
        2>&1 | tee -a "$RESULTS/own-workload.log" | grep -v '^\['
      trt -m search export "${W[@]}" --work-dir "$OW/work" --out "$RESULTS/own-workload-$GPU_SLUG.json"
      trt -m search freeze "${W[@]}" "${T[@]}" --out "$OW/configs"
      SP=/root/.pyenv/versions/3.10.13/lib/python3.10/site-packages
      (. /root/rig/env.sh && PYTHON=python3.10 WORK="$OW/work" CONFIG_DIR="$OW/configs" OUT_DIR="$OW/best" \
        BUILD_PLUGINS=off WORKLOAD="$OW/tinycnn.yaml" bash build.sh) >> "$RESULTS/own-workload.log" 2>&1
      trt evaluate.py "${W[@]}" --plan "$OW/best/tinycnn.plan" --no-cwd-plugins --no-progress \
        --harness "${OWN_HARNESS:-serving}" --json "$RESULTS/own-workload-eval-$GPU_SLUG.json" | tail -8
      # the naive baseline in the same run, then both as rows (../shared/conventions/results.md)
      trt -m engine build --baseline "${W[@]}" --onnx "$OW/tinycnn.onnx" --out "$OW/baseline/tinycnn.plan" \
        --report "$OW/baseline/tinycnn.report.json" --work-dir "$OW/work" --no-progress 2>&1 | tail -1
      trt evaluate.py "${W[@]}" --plan "$OW/baseline/tinycnn.plan" --no-cwd-plugins --no-progress \
        --harness "${OWN_HARNESS:-serving}" --json "$OW/eval-baseline.json" | tail -2
      trt bench/eval_rows.py "${W[@]}" --out "$RESULTS/own-workload-rows-$GPU_SLUG.json" \
        --run baseline "$OW/eval-baseline.json" baseline \
        --run tuned "$RESULTS/own-workload-eval-$GPU_SLUG.json" "$OW/configs/tinycnn.yaml" ;;
    layout-rerun)  # issue 14's check: two decoder layouts again, against the committed layouts file
      wait_for "$WORK/data/.complete" 900 || return 1
      trt bench/layouts.py --work "$WORK" --out "$WORK/rerun" --models decoder --only "naive fp32,per_batch fp32" \
        --parallel 2 > "$RESULTS/layout-rerun.log" 2>&1
      python3 bench/rerun_compare.py --rerun "$WORK/rerun/layouts-$GPU_SLUG.json" \
        --baseline bench/results/layouts-$GPU_SLUG.json --note "${RERUN_NOTE:-}" \
        --out "$RESULTS/layouts-rerun-${RERUN_TAG:-main}-$GPU_SLUG.json" ;;
    caches)  # timing caches and the study of an earlier session (carried in as .carry/) -> $WORK
      # .carry/<card>/ holds one card's study.db, gpu.txt and trials/ (bench/carry_back.sh puts them there), so
      # an H100 and an H200 study both wait for their card; a bare .carry/study.db is the older single-card form
      local carry=.carry; [ -d ".carry/$GPU_SLUG" ] && carry=".carry/$GPU_SLUG"
      for f in .carry/timing-*.cache; do
        [ -f "$f" ] || continue
        m=$(basename "$f" .cache); cp -n "$f" "$WORK/$m.cache"
        # a per-model cache of the first sessions (timing-<model>) seeds both harnesses' (search/toolkit.py
        # keys them by TensorRT and GPU on first use); newer names are per harness already
        case "$m" in timing-*-*) continue ;; esac
        for h in contest serving; do cp -n "$f" "$WORK/$m-$h.cache"; done
      done; ls -la "$WORK"/timing-*.cache 2>/dev/null
      # the trial directories of earlier sessions (result.json: per-output errors, the honoured verdict)
      # a study measured on another card would mix two GPUs' latencies in one objective: collect
      # writes the card's slug beside the database (gpu.txt), and a mismatch leaves the database (and the
      # trial folders, whose numbers are that study's) behind
      local carried_gpu; carried_gpu=$(cat "$carry/gpu.txt" 2>/dev/null || echo "$GPU_SLUG")
      if [ "$carried_gpu" != "$GPU_SLUG" ]; then
        echo "not resuming $carry/study.db: it was measured on $carried_gpu, this host is $GPU_SLUG"
      else
        [ -d "$carry/trials" ] && mkdir -p "$WORK/trials" && cp -rn "$carry/trials/." "$WORK/trials/"
        if [ -f "$carry/study.db" ] && [ ! -f "$WORK/study.db" ]; then
          cp "$carry/study.db" "$WORK/study.db" && chmod u+w "$WORK/study.db" && echo "resuming $carry/study.db"
        fi
      fi
      # a new machine here loses the ignored .carry/ (or it lacks this study): the committed export stands in
      resume_study || echo "(the steps that tune import it again once the plugins step built our library)" ;;
    diag-decoder) wait_for "$WORK/data/.complete" 600 || return 1
      trt bench/diag/decoder_batch1.py --work "$WORK" --json "$RESULTS/diag-decoder-batch1-$GPU_SLUG.json" ;;
    workers-ab)  # issue 10: trials per minute with AB_WORKERS tuning processes on the GPU (tune --workers-per-gpu)
      # Each count tunes its own new study (`<study>-w<N>`, seeds none, the engine cache off so no plan is reused)
      # for AB_S seconds; the multi-worker run goes first, so the timing cache it warms favours the single one.
      # AB_STUDY=main: both counts tune the model's own study instead, one run after the other (its trials count
      # toward the study; the file then splits it by tuning run, and TPE samples from the same history in both).
      wait_for "$WORK/data/.complete" 600 || return 1
      [ "${AB_STUDY:-}" = main ] && { resume_study "${HARNESS:-serving}" || return 1; }
      L=(); [ -f "$PLUGIN_LIB" ] && L=(--plugin-lib "$PLUGIN_LIB")
      # (a main study new on this card gets the harness's seeds: its first run tunes them)
      local main="wenet-${MODELS:-decoder}-${HARNESS:-serving}" names=() split=() seeds=(--seeds none) w n
      [ "${AB_STUDY:-}" = main ] && names=(--study "$main") && seeds=() &&
        split=(--last-runs "$(wc -w <<< "${AB_WORKERS:-3 1}")")
      for w in ${AB_WORKERS:-3 1}; do
        n="$main-w$w"; [ "${AB_STUDY:-}" = main ] && n=$main || names+=(--study "$n")
        # shellcheck disable=SC2086
        trt -m search tune --work-dir "$WORK" --model "${MODELS:-decoder}" --harness "${HARNESS:-serving}" "${L[@]}" \
          --study-name "$n" "${seeds[@]}" --seed 7 --plan-cache-gib 0 --workers-per-gpu "$w" --time-budget "${AB_S:-420}" \
          --trial-timeout "${TRIAL_TIMEOUT_S:-400}" --no-progress $TUNE_ARGS 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      done
      trt bench/study_throughput.py --storage "sqlite:///$WORK/study.db" "${names[@]}" "${split[@]}" \
        --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" --out "$RESULTS/workers-ab-$GPU_SLUG.json"
      [ "${AB_STUDY:-}" = main ] && trt -m search export --work-dir "$WORK" --harness "${HARNESS:-serving}" \
        --model "${MODELS:-decoder}" --out "$RESULTS/study-${MODELS:-decoder}-${HARNESS:-serving}-$GPU_SLUG.json"
      return 0 ;;
    smoke-tune)  # the study end to end on both harnesses: one seed trial each (decoder: fast builds)
      wait_for "$WORK/data/.complete" 600 || return 1
      for h in contest serving; do
        trt -m search tune --model "${MODELS:-decoder}" --harness "$h" --trials "${SMOKE_TRIALS:-1}" \
          --work-dir "$WORK" --trial-timeout 300 --no-progress 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      done
      trt -m search status --work-dir "$WORK"
      trt -m search export --work-dir "$WORK" --out "$RESULTS/smoke-study-$GPU_SLUG.json" ;;
    probe) trt -m engine probe --json "$RESULTS/probe.json" | grep -E '^(PASS|FAIL|SKIP)' | cut -c1-240 ;;
    gputests)  # every GPU test; a test that kills pytest (a TensorRT SIGSEGV) is named, deselected, the rest rerun
      [ -f "$PLUGIN_LIB" ] && export WENET_TRT_PLUGIN_LIB=$PLUGIN_LIB
      sel=(); t_end=$((SECONDS + ${GPUTESTS_S:-480})); : > "$RESULTS/gputests.log"
      for attempt in 1 2 3; do
        left=$((t_end - SECONDS)); [ "$left" -gt 30 ] || break
        timeout "$left" bash -c '. /root/rig/env.sh && python3.10 -m pytest -v -rfs -m gpu tests -p no:cacheprovider "$@"' \
          _ "${sel[@]}" >> "$RESULTS/gputests.log" 2>&1
        rc=$?; case $rc in 0|1|5) break ;; esac
        last=$(grep -oE '^tests/[^ ]+::[^ ]+' "$RESULTS/gputests.log" | tail -1)
        echo "CRASHED (rc $rc) in $last: deselected, rerunning the rest" | tee -a "$RESULTS/gputests.log"
        [ -n "$last" ] && sel+=(--deselect "$last")
      done
      grep -E '^(FAILED|ERROR|CRASHED)|(passed|failed) in' "$RESULTS/gputests.log" | tail -20 ;;
    baseline) trt bench/baseline.py --work "$WORK" --out "$RESULTS" ;;
    torch)  # compiles while the engines build, times after the TensorRT timings (flags from layouts); start it in
      # call 1: a max-autotune compile took 244 s on the H200 and the grid needs four (COMPILE_DEADLINE_S: no new one after)
      # One process per model (MODELS_TORCH) compiles side by side: four compiles in a row took 16 minutes, two
      # pairs side by side 8 (2026-12-07); they time one after the other (the decoder's barrier is the encoder's
      # end), then one file is merged.
      wait_for "$WORK/data/.complete" 900 || return 1
      local m barrier="$WORK/trt.done" parts=()
      for m in ${MODELS_TORCH:-encoder decoder}; do
        (python3 bench/torch_baselines.py --data "$WORK/data" --models "$m" --out "$RESULTS/torch-$m-$GPU_SLUG.json" \
           ${TORCH_VARIANTS:+--variants "$TORCH_VARIANTS"} --compile-deadline-s "${COMPILE_DEADLINE_S:-780}" \
           --compiled-flag "$WORK/torch.compiled.$m" --barrier "$barrier" --barrier-timeout-s 1500 \
           > "$RESULTS/torch-$m.log" 2>&1; touch "$WORK/torch.compiled.$m" "$WORK/torch.timed.$m") &  # also on a crash
        barrier="$WORK/torch.timed.$m"; parts+=("$RESULTS/torch-$m-$GPU_SLUG.json")
      done
      (for m in ${MODELS_TORCH:-encoder decoder}; do wait_for "$WORK/torch.compiled.$m" 3000; done
       touch "$WORK/torch.compiled") &
      wait
      python3 bench/torch_baselines.py --merge "${parts[@]}" --out "$RESULTS/torch-baselines-$GPU_SLUG.json"
      tail -n 2 "$RESULTS"/torch-*.log ;;
    tune)
      if [ -n "${STUDY_DB:-}" ] && [ -f "$STUDY_DB" ] && [ ! -f "$WORK/study.db" ]; then
        cp "$STUDY_DB" "$WORK/study.db"
        cp "$(dirname "$STUDY_DB")"/timing-*.cache "$WORK"/ 2>/dev/null
      fi
      # shellcheck disable=SC2086
      trt -m search tune --model both --work-dir "$WORK" --time-budget "$TUNE_S" --trial-timeout 600 \
        --no-progress $TUNE_ARGS 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\[' ;;
    ablation)   # issue 3's table: each candidate alone / all, FP32 and FP16, as planned trials of the study
      trt -m search plan --work-dir "$WORK" --model "${MODELS:-both}" --plan ablation
      trt -m search tune --model "${MODELS:-both}" --work-dir "$WORK" --trials "${PLAN_TRIALS:-30}" \
        --trial-timeout 600 --no-progress $TUNE_ARGS 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      trt -m search export --work-dir "$WORK" --out "$RESULTS/candidates-$GPU_SLUG.json" ;;
    precision-plans)  # enqueue the precision plans (PRECISION_PLANS, in that order) on the per_batch seed BASE
      # (per_batch, or per_batch_tf32, the faster FP32-class engine) in the serving study; a later tune runs them
      # (with our plugin library, once the plugins step built it: the rules' `+plugins` mixes are in the space)
      resume_study serving || return 1
      L=(); [ -f "$PLUGIN_LIB" ] && L=(--plugin-lib "$PLUGIN_LIB")
      for p in ${PRECISION_PLANS:-rules sensitivity bisect}; do
        trt -m search plan "${PS[@]}" "${L[@]}" --model "${MODELS:-both}" --plan "$p" --base "${BASE:-per_batch}"
      done ;;
    precision-table)  # the precision issue's table (best engine per class on per_batch) and the Pareto front
      # PRECISION_LAYOUT: `per_batch` (any buckets) or one layout exactly, e.g. "per_batch[1,4,16]" (trial 11's)
      trt -m search precision "${PS[@]}" --model "${MODELS:-both}" --base "${BASE:-per_batch}" \
        --layout "${PRECISION_LAYOUT:-per_batch}" \
        --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" --json "$RESULTS/precision-$GPU_SLUG.json"
      trt -m search pareto --work-dir "$WORK" --harness serving --out "$RESULTS/pareto-$GPU_SLUG.png" \
        --json "$RESULTS/pareto-$GPU_SLUG.json" \
        --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" ;;
    precision)  # the precision issue end to end: the plans, PLAN_TRIALS of them tuned, the table
      step precision-plans || return 1
      L=(); [ -f "$PLUGIN_LIB" ] && L=(--plugin-lib "$PLUGIN_LIB")
      trt -m search tune "${PS[@]}" "${L[@]}" --model "${MODELS:-both}" --trials "${PLAN_TRIALS:-15}" --trial-timeout 900 \
        --workers-per-gpu "${WORKERS:-2}" \
        --no-progress 2>&1 | tee -a "$RESULTS/tune.log" | grep -v '^\['
      step precision-table ;;
    freeze)  # the best trial of the $HARNESS study of each model present -> $WORK/configs
      trt -m search status --work-dir "$WORK"
      trt -m search freeze --work-dir "$WORK" --harness "${HARNESS:-contest}" --out "$WORK/configs"
      # the export of this harness (and MODELS, when given) only: a serving session's file holds no contest study
      trt -m search export --work-dir "$WORK" --harness "${HARNESS:-contest}" ${MODELS:+--model "$MODELS"} \
        --out "$(tagged study)" ;;
    build-eval)  # build.sh from $CONFIG_DIR (plans + our plugin library into $WORK/best), then evaluate.py
      # run inside the plan folder as the organisers do (it loads every *.so there) -> EVAL_JSON
      rm -rf "$WORK/best" && mkdir -p "$WORK/best"
      SP=/root/.pyenv/versions/3.10.13/lib/python3.10/site-packages
      ms=${MODELS:-decoder}
      wait_for "$WORK/data/.complete" 600 || return 1
      (. /root/rig/env.sh && PYTHON=python3.10 TORCH_PYTHON=python3 WORK="$WORK" CONFIG_DIR="${CONFIG_DIR:-$WORK/configs}" \
        OUT_DIR="$WORK/best" TRT_INCLUDE="$REPO/.gpu/tensorrt-include" TRT_LIB="$SP/tensorrt" \
        bash build.sh --models "$ms") > "$RESULTS/reproduce-build.log" 2>&1
      tail -3 "$RESULTS/reproduce-build.log"; ls "$WORK/best"
      (cd "$WORK/best" && . /root/rig/env.sh && python3.10 "$REPO/evaluate.py" --models "$ms" \
        --harness "${HARNESS:-contest}" --data "$WORK/data" --no-progress \
        --json "${EVAL_JSON:-$RESULTS/reproduce-eval-$GPU_SLUG.json}") | tail -16 ;;
    cross-eval)  # the plans build-eval rebuilt ($WORK/best) run by the other harness: a serving study's best in
      # the organisers' loop (profile 0 spans the grid when contest_profile is on), or a contest best served
      other=serving; [ "${HARNESS:-contest}" = serving ] && other=contest
      (cd "$WORK/best" && . /root/rig/env.sh && python3.10 "$REPO/evaluate.py" --models "${MODELS:-decoder}" \
        --harness "$other" --data "$WORK/data" --no-progress \
        --json "$RESULTS/reproduce-eval${TAG:+-$TAG}-$other-$GPU_SLUG.json") | tail -16 ;;
    reproduce)  # build-eval of the frozen configs, then the frozen trial vs the rebuilt plans per shape
      EVAL_JSON=$(tagged reproduce-eval) step build-eval
      python3 bench/reproduce.py --study-json "$(tagged study)" --configs "$WORK/configs" \
        --evaluate-json "$(tagged reproduce-eval)" --out "$(tagged reproduce)" ;;
    planned)  # the session's pipeline for this host's card, written before the session: bench/plans/<card>.sh
      # (PLAN_DIR to look elsewhere). The install call is then the same text every session (`bash bench/host.sh
      # install && bash bench/host.sh planned; sleep 5; bash bench/host.sh wait 540`), and no choice waits for the
      # card's name with the host idle: the fourteenth session lost a staged host to such a wait (2026-12-07)
      local plan="${PLAN_DIR:-$REPO/bench/plans}/$GPU_SLUG.sh"
      [ -f "$plan" ] || { echo "error: no session plan for this card ($plan)" >&2; return 1; }
      echo "plan: $plan"; bash "$plan" ;;
    await)  # let the pipelines started before this one finish (clean timings)
      while [ -n "$(bg_alive $$)" ]; do sleep 5; done ;;
    *) echo "unknown step $s" >&2; return 2 ;;
  esac
  echo "=== $s done $(date -u +%H:%M:%S)"
}

bg_alive() {   # pids of background pipelines still running (other than $1)
  for f in "$WORK"/bg.*.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f"); [ "$p" = "${1:-}" ] && continue
    kill -0 "$p" 2>/dev/null && echo "$p"
  done
}

case "${1:-}" in
  start-bg)   # run the steps in a new session from a private copy of the repo; returns at once
    shift
    n=$(date +%s%N); copy=/root/repo.$n
    mkdir -p "$copy" && cp -a "$REPO"/. "$copy"/
    (cd "$copy" && LIVE="$REPO" exec setsid nohup bash bench/host.sh "$@" >> "$WORK/bg.log" 2>&1 < /dev/null) &
    echo $! > "$WORK/bg.$n.pid"
    echo "started in the background (pid $!): $*" ;;
  wait)       # up to $2 seconds until every background pipeline ends, then collect
    limit=${2:-540}; t0=$SECONDS
    while [ -n "$(bg_alive)" ] && [ $((SECONDS - t0)) -lt "$limit" ]; do sleep 5; done
    grep -E '^(===|PASS|FAIL|SKIP|wenet-|encoder trial|decoder trial|error|   )' "$WORK/bg.log" | tail -40 | cut -c1-240
    for f in layouts torch plugins; do [ -f "$RESULTS/$f.log" ] && { echo "--- $f.log"; tail -n 14 "$RESULTS/$f.log" | cut -c1-200; }; done
    collect ;;
  collect) collect ;;
  *) for s in "$@"; do step "$s"; done ;;
esac
