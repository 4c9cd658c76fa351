#!/usr/bin/env bash
# Cold-start training on one CUDA GPU: a smoke fit, then benchmarks/train.py at 1M and 10M.
#
# Run from the repository root (kgrec need not be installed; PYTHONPATH=$PWD is set here):
#
#     OUT=/some/folder bash benchmarks/gpu_train.sh
#
# Everything lands in "$OUT":
#   nvidia-smi.txt                  nvidia-smi once, at the start
#   smoke_mini.ok                   written when the mini-batch part of the smoke passed
#   smoke.json / smoke.err          20k interactions, 1 epoch on cuda: mini-batch fit + transform +
#                                   scores (must pass, else the script stops), then the same with
#                                   full batch (recorded, not required); epoch-0 metrics beside
#                                   the CPU reference values
#   train_1m.json / train_1m.err    benchmarks/train.py --device cuda --batch-mode mini --epochs 1
#   train_10m.json / train_10m.err  the same at 10M, --reference train_1m.json (when it exists)
#   gpu_samples.csv                 GPU memory / utilisation every 5 s during the two benchmarks
#   gpu_train.log                   what ran, exit codes, seconds (124 = timed out)
#
# Time: at most BUDGET_S seconds in all (default 540), each step under `timeout`. The 10M run
# gets what is left (about 3-4 minutes). On a CPU machine its graph build alone took 4-5
# minutes, so it is not expected to finish an epoch here: its .err log (timestamps, and with
# --log-steps a line every 50 training steps) and gpu_samples.csv show how far it got.
set -u

: "${OUT:?set OUT to an output folder}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-540}
T0=$(date +%s)

log() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/gpu_train.log"; }
# seconds a step may take: $1, or less so that the whole script stays within BUDGET
cap() {
    local want=$1 left
    left=$(( BUDGET - ($(date +%s) - T0) - 10 ))
    (( left < want )) && want=$left
    echo "$want"
}

log "start: budget ${BUDGET}s, python $PY, repo $PWD"
timeout 30 nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
log "nvidia-smi rc=$?"

# -- 1. smoke: 20k interactions, 1 epoch, on cuda ------------------------------------------------
export OUT
rm -f "$OUT/smoke_mini.ok"
t=$(cap 120)
log "smoke (timeout ${t}s)"
timeout -k 5 "$t" "$PY" -u - > "$OUT/smoke.json" 2> "$OUT/smoke.err" <<'EOF'
import json, os, sys, time, traceback

import numpy as np
import torch
import torch_geometric

sys.path.insert(0, "benchmarks")
from train import synthetic_tables  # noqa: E402

from kgrec.coldstart import ColdStartModel, ModelConfig  # noqa: E402
from kgrec.encoders import HashingEncoder  # noqa: E402
from kgrec.graph.build import build_graph  # noqa: E402
from kgrec.graph.export import to_hetero_data  # noqa: E402

# epoch-0 metrics of the same fit on the CPU (the dev venv's torch 2.15); on the GPU they differ
# a little (float summation order, GNN dropout drawn by the CUDA generator), not by much
CPU_REF = {"mini": {"loss": 1.5393, "val_auc": 0.8580, "val_auc_cold": 0.8120},
           "full": {"loss": 1.5397, "val_auc": 0.8596, "val_auc_cold": 0.8128}}

out = {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
       "cuda_available": torch.cuda.is_available(),
       "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
print(json.dumps(out), file=sys.stderr, flush=True)
if not torch.cuda.is_available():
    print(json.dumps(out, indent=1))
    sys.exit(1)
graph = to_hetero_data(build_graph(synthetic_tables(20000, 0)))
for mode in ("mini", "full"):
    t = time.perf_counter()
    try:
        torch.cuda.reset_peak_memory_stats()
        model = ColdStartModel(ModelConfig(batch_mode=mode, epochs=1, patience=1),
                               text_encoder=HashingEncoder(dim=64), device="cuda",
                               num_threads=4)  # a small graph: more threads only contend
        model.fit(graph)
        fit_s = time.perf_counter() - t
        emb = model.transform(graph)
        sub = model.transform(graph, user_ids=list(graph.node_ids["User"][:5]),
                              item_ids=list(graph.node_ids["Item"][:7]))
        proba = model.predict_proba(emb, np.arange(10), np.arange(10))
        matrix = model.score_matrix(emb, np.arange(4), np.arange(6))
        retrieval = model.retrieval_scores(emb, np.arange(4), np.arange(6))
        finite = bool(torch.isfinite(emb.user).all() and torch.isfinite(emb.item).all()
                      and torch.isfinite(sub.user).all() and np.isfinite(proba).all()
                      and np.isfinite(matrix).all() and np.isfinite(retrieval).all())
        epoch0 = model.history_[0]
        out[mode] = {
            "ok": finite, "fit_seconds": fit_s, "seconds": time.perf_counter() - t,
            "module_device": str(next(model.encoder_.parameters()).device),
            "embedding_device": str(emb.user.device),
            "peak_gpu_gb": torch.cuda.max_memory_allocated() / 1024**3,
            "epoch0": epoch0, "cpu_reference": CPU_REF[mode],
            "delta_to_cpu": {k: epoch0[k] - v for k, v in CPU_REF[mode].items()},
            "calibration": {k: model.calibration_.get(k) for k in ("a", "b", "ece")},
            "regimes": sorted(model.calibration_.get("regimes", {}))}
    except Exception:  # noqa: BLE001 -- recorded for the report
        out[mode] = {"ok": False, "seconds": time.perf_counter() - t,
                     "error": traceback.format_exc()}
    print(json.dumps({mode: out[mode]}, default=float), file=sys.stderr, flush=True)
    if mode == "mini" and out[mode]["ok"]:  # the benchmarks need only this part
        open(os.path.join(os.environ["OUT"], "smoke_mini.ok"), "w").close()
print(json.dumps(out, indent=1, default=float))
sys.exit(0 if out["mini"]["ok"] else 1)
EOF
rc=$?
log "smoke rc=$rc"
if [[ ! -e "$OUT/smoke_mini.ok" ]]; then
    log "smoke failed: skipping the benchmarks (see smoke.err)"
    exit 1
fi

# GPU memory and utilisation while the benchmarks run (stopped on exit)
nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -l 5 \
    > "$OUT/gpu_samples.csv" 2>&1 &
SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null' EXIT

# -- 2. 1M interactions, mini-batch, 1 epoch -----------------------------------------------------
t=$(cap 210)
(( t < 30 )) && { log "no time left for the benchmarks"; exit 1; }
log "train 1M (timeout ${t}s)"
timeout -k 5 "$t" "$PY" -u benchmarks/train.py --device cuda --batch-mode mini --epochs 1 \
    --interactions 1000000 --log-steps > "$OUT/train_1m.json" 2> "$OUT/train_1m.err"
log "train 1M rc=$?"

# -- 3. 10M interactions, against the 1M run -----------------------------------------------------
ref=()
if "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))["s_per_epoch"]' \
        "$OUT/train_1m.json" 2>/dev/null; then
    ref=(--reference "$OUT/train_1m.json")
fi
t=$(cap 600)
if (( t >= 30 )); then
    log "train 10M (timeout ${t}s) ${ref[*]+${ref[*]}}"
    timeout -k 5 "$t" "$PY" -u benchmarks/train.py --device cuda --batch-mode mini --epochs 1 \
        --interactions 10000000 --log-steps ${ref[@]+"${ref[@]}"} \
        > "$OUT/train_10m.json" 2> "$OUT/train_10m.err"
    log "train 10M rc=$?"
else
    log "train 10M skipped: ${t}s left"
fi
log "done"
