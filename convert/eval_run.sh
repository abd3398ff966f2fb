#!/usr/bin/env bash
# convert/eval_run.sh RUN: export a training run's model (int8) and measure it as users run it, for
# convert/EXPERIMENTS.md: `make evaluate` on the export (FER2013 val under both FER+ rules and the original
# labels, and KDEF's tune and held-out subjects under every capture condition). Writes RUN/export/ and
# RUN/eval/*.json (the printed tables in RUN/eval/evaluate.txt); then
# `.venv/bin/python convert/compare_runs.py RUN [RUN ...]` puts runs side by side.
set -euo pipefail
RUN=$(cd "$1" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
W=$($PY -c 'import json,sys,os; print(os.path.dirname(json.load(open(sys.argv[1]+"/args.json"))["train"][0]))' "$RUN")
mkdir -p "$RUN/export" "$RUN/eval"
$PY -m convert export "$RUN/model.keras" --out-dir "$RUN/export" --rep "$W/fer_train.npz" --rep "$W/kdef.npz" --rep-count 500 \
    --run "$RUN" --variants int8 > "$RUN/eval/export.log" 2>&1 || { tail -5 "$RUN/eval/export.log"; exit 1; }
make --no-print-directory evaluate MODEL="$RUN/export/dfer-int8.tflite" EVAL_OUT="$RUN/eval" SUBJECTS="tune heldout" \
    > "$RUN/eval/evaluate.txt" 2>&1 || { tail -5 "$RUN/eval/evaluate.txt"; exit 1; }
echo "done: $RUN/eval"
