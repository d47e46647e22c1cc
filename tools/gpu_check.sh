#!/usr/bin/env bash
# GPU check (issue 8): `bench perf` at the paper preset for every registered method, a 300-iteration MT run at the
# paper preset with bf16 autocast on and off, and our MT step against the straightforward reference loop.
# Writes <out>/summary.json (plus each step's JSON and log). About 3-6 minutes on one H100; every step has its own
# timeout and a failed step is recorded in the summary instead of stopping the others.
#
#   tools/gpu_check.sh [OUT_DIR]        # default: $OUT, else ./gpu-check-<date>
#   PYTHON=/path/to/python tools/gpu_check.sh
# To try the script itself on a CPU: PRESET=smoke MT_ITERS=6 LA_SIZE=48,40,24 tools/gpu_check.sh /tmp/x
set -euo pipefail
PRESET="${PRESET:-paper}"
MT_ITERS="${MT_ITERS:-300}"
LA_SIZE="${LA_SIZE:-190,142,88}"

OUT_DIR="${1:-${OUT:-gpu-check-$(date +%Y%m%d-%H%M%S)}}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export SSLBENCH_CACHE="${SSLBENCH_CACHE:-$WORK/cache}"
cd "$(dirname "$0")/.."

if ! "$PY" -c "import sslbench.benchmark.perf.timing, torch" 2>"$OUT_DIR/import.log"; then
    echo "error: $PY cannot import sslbench and torch (pip install -e . first); see $OUT_DIR/import.log" >&2
    exit 2
fi

STATUS="$OUT_DIR/steps.tsv"
: >"$STATUS"
# step NAME SECONDS CMD...: run with a timeout, stdout to NAME.json, stderr to NAME.log, record rc and seconds.
step() {
    local name="$1" limit="$2"
    shift 2
    local t0 rc=0
    t0=$(date +%s)
    echo "== $name (limit ${limit}s)" >&2
    timeout --kill-after=10 "$limit" "$@" >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.log" || rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$STATUS"
    [ "$rc" -eq 0 ] || echo "   $name failed (rc $rc; 124 = timeout): see $OUT_DIR/$name.log" >&2
}

step environment 60 "$PY" -c '
import json, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available(),
                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))'

# An LA-sized synthetic dataset (12 cases of 190x142x88, the median real crop), so the sliding-window timing
# covers as many windows as a real test volume; the built-in default volumes are smaller than the paper patch.
step la_size_data 240 "$PY" -c "
from sslbench.datasets.synthetic import generate
generate('$WORK/la-size', cases=12, seed=0, size=($LA_SIZE), n_train=10)
print('{}')"

# The DAE only needs to exist for lrep's step to be timed: a short pre-training keeps the check short.
LREP_SET=()
if "$PY" -c "import sslbench.methods; from sslbench.methods.registry import get_method; get_method('lrep')" \
    2>/dev/null; then
    LREP_SET=(--set lrep.dae_iterations=200)
fi
step perf_paper 330 "$PY" -m sslbench.benchmark.cli.perf --preset "$PRESET" --methods all --iters 20 --warmup 5 \
    --eval-volumes 2 --reference-rounds 1 --data "$WORK/la-size" --json --save "$OUT_DIR/perf_paper.partial.json" \
    ${LREP_SET[@]+"${LREP_SET[@]}"}

step reference_paper 150 "$PY" -m sslbench.benchmark.cli.perf --vs-reference --preset "$PRESET" --iters 10 \
    --repeats 4 --data "$WORK/la-size" --json

# MT and UA-MT with each network captured as CUDA graphs (torch.compile mode reduce-overhead; compilation is in
# the untimed warm-up steps, and cached under $SSLBENCH_CACHE/compile).
step mt_cuda_graphs 300 "$PY" -m sslbench.benchmark.cli.perf --preset "$PRESET" --methods mt,uamt --iters 20 \
    --warmup 10 --eval-volumes 0 --reference-rounds 0 --data "$WORK/la-size" --json \
    --set train.compile=true --set train.compile_mode=reduce-overhead

# 300 MT iterations at the paper preset on the synthetic default, bf16 autocast on (default) and off.
for amp in true false; do
    step "mt300_amp_$amp" 240 "$PY" -c "
import json, sslbench.methods
from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.trainer import train_run
cfg = build_config('mt', '8/72', 1337, '$PRESET', {'train.iterations': '$MT_ITERS', 'train.amp': '$amp'})
m = train_run(cfg, '$OUT_DIR/runs/mt300_amp_$amp', progress=False)
print(json.dumps(m))"
done

# Host synchronisations inside a training step (the stall the trainer avoids): CUDA's sync debug mode counts
# them over 5 steps of MT, UA-MT and DTC (whose SDF target is built on the GPU); 0 is the target. Then the exact
# torch EDT against SciPy and the meta-device step test, on this machine.
step cuda_sync 180 "$PY" -c "
import json, warnings, torch
from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.step import StepRunner
from sslbench.benchmark.training.trainer import Trainer
out = {}
for name in ('mt', 'uamt', 'dct'):
    if not torch.cuda.is_available():
        out[name] = None
        continue
    cfg = build_config(name, '8/72', 1337, '$PRESET', {'train.iterations': '20'}, '$WORK/la-size')
    trainer = Trainer(cfg, '$WORK/sync-' + name, progress=False)
    runner = StepRunner(trainer, trainer.build_method())
    batches = iter(trainer.loader(0, 20))
    runner(next(batches), 0)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        for step in range(1, 6):
            runner(next(batches), step)
        torch.cuda.set_sync_debug_mode(0)
    out[name] = sum('synchroniz' in str(w.message) for w in caught)
print(json.dumps(out))"
step exact_edt_and_meta_steps 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_edt.py tests/test_host_sync.py

"$PY" - "$OUT_DIR" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
summary = {"steps": {}}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    summary["steps"][name] = {"rc": int(rc), "seconds": int(seconds)}
    try:
        summary[name] = json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError):
        summary[name] = None
headline = {}
perf = summary.get("perf_paper") or {}
for row in perf.get("rows", []):
    if "error" not in row:
        headline[f"{row['method']}_ms_per_iter"] = round(row["ms_per_iter"], 2)
        headline[f"{row['method']}_eval_ms_per_volume"] = round(row.get("eval_ms_per_volume") or 0, 1)
for amp in ("true", "false"):
    m = summary.get(f"mt300_amp_{amp}") or {}
    if m:
        headline[f"mt300_amp_{amp}_dice"] = m.get("dice")
        headline[f"mt300_amp_{amp}_sec_per_iter"] = (m.get("cost") or {}).get("sec_per_iter_median")
graphs = summary.get("mt_cuda_graphs") or {}
for row in graphs.get("rows", []):
    if "error" not in row:
        headline[f"{row['method']}_cuda_graphs_ms_per_iter"] = round(row["ms_per_iter"], 2)
for row in perf.get("rows", []):
    if "error" not in row and row.get("vs_reference") is not None:
        headline[f"{row['method']}_vs_reference"] = round(row["vs_reference"], 3)
for name, count in (summary.get("cuda_sync") or {}).items():
    headline[f"{name}_host_syncs_in_5_steps"] = count
ref = summary.get("reference_paper") or {}
if ref:
    headline["ours_over_reference"] = ref["train"]["ratio"]
    headline["batched_over_one_window"] = ref["eval"]["ratio"]
# The speed issue's GPU targets (paper preset, one H200-class GPU): the best of the eager and CUDA-graph steps.
targets = {}
for method, limit in (("mt", 10.0), ("uamt", 20.0)):
    seen = [headline[k] for k in (f"{method}_ms_per_iter", f"{method}_cuda_graphs_ms_per_iter") if k in headline]
    targets[f"{method}_ms_per_iter<={limit:g}"] = {"best": min(seen), "met": min(seen) <= limit} if seen else None
total = sum(v["seconds"] for v in summary["steps"].values())
targets["gpu_check_seconds<=480"] = {"seconds": total, "met": total <= 480}
headline["targets"] = targets
summary["headline"] = headline
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(headline, indent=2))
EOF
echo "summary: $OUT_DIR/summary.json" >&2
