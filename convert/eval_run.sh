#!/usr/bin/env bash
# convert/eval_run.sh RUN: export a training run's model (int8) and measure it as users run it, for
# convert/EXPERIMENTS.md: FER2013 val under both FER+ rules and the original labels, and KDEF's tune and
# held-out subjects under every capture condition. Writes RUN/export/ and RUN/eval/*.json|txt; then
# `.venv/bin/python convert/compare_runs.py RUN [RUN ...]` puts runs side by side.
# Needs `make evaluate` to have linked the KDEF split (~/.cache/dfer-edge/cache/kdef-split) once.
set -euo pipefail
RUN=$(cd "$1" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
W=$($PY -c 'import json,sys,os; print(os.path.dirname(json.load(open(sys.argv[1]+"/args.json"))["train"][0]))' "$RUN")
S=${DFER_HOME:-$HOME/.cache/dfer-edge}/cache/kdef-split
D=${DATA:-../shared/data}
mkdir -p "$RUN/export" "$RUN/eval"
$PY -m convert export "$RUN/model.keras" --out-dir "$RUN/export" --rep "$W/fer_train.npz" --rep "$W/kdef.npz" --rep-count 500 \
    --run "$RUN" --variants int8 > "$RUN/eval/export.log" 2>&1 || { tail -5 "$RUN/eval/export.log"; exit 1; }
M=$RUN/export/dfer-int8.tflite
.venv/bin/dfer-edge evaluate "$D/fer2013/val" --crops --votes "$D/fer2013/ferplus_votes.csv" --workers 2 --no-progress \
    --model "$M" --json "$RUN/eval/fer-val.json" > "$RUN/eval/fer-val.txt" 2>&1
.venv/bin/dfer-edge evaluate "$S/tune" --condition all --workers 2 --no-progress --model "$M" \
    --json "$RUN/eval/kdef-tune.json" > "$RUN/eval/kdef-tune.txt" 2>&1
.venv/bin/dfer-edge evaluate "$S/heldout" --condition all --workers 2 --no-progress --model "$M" \
    --json "$RUN/eval/kdef-heldout.json" > "$RUN/eval/kdef-heldout.txt" 2>&1
echo "done: $RUN/eval"
