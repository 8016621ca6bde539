#!/bin/bash
# The issue-7 ablation, one run at a time at the lowest priority: for each recipe, train with
# bench/train_cxr.py, then the shortcut report on its test split. Wall times go to OUT/<run>.times.
#   bench/defence_study.sh DATA OUT [SIZE] [EPOCHS] [RUN...]
# OUT must be outside the repository (the runs derive from research-licensed films).
set -u
data=$1; out=$2; size=${3:-71}; epochs=${4:-3}; shift $(( $# < 4 ? $# : 4 ))
declare -A flags=(
  [baseline]=""
  [harmonise]="--crop body --detail-size 224 --intensity equalize --temperature-scaling"
  [lung-blanking]="--outside-lung-blanking 0.5 --edge-blanking 0.5 --blur-noise 0.3 --temperature-scaling"
  [harmonise-blanking]="--crop body --detail-size 224 --intensity equalize --outside-lung-blanking 0.5 --edge-blanking 0.5 --blur-noise 0.3 --temperature-scaling"
  [counterfactual]="--counterfactual-augmentation --jpeg-augmentation --temperature-scaling"
  [combined]="--crop body --detail-size 224 --intensity equalize --counterfactual-augmentation --jpeg-augmentation --outside-lung-blanking 0.5 --edge-blanking 0.5 --blur-noise 0.3 --temperature-scaling"
)
runs=("$@"); [ ${#runs[@]} -eq 0 ] && runs=(baseline harmonise lung-blanking counterfactual harmonise-blanking combined)
cd "$(dirname "$0")/.."
mkdir -p "$out"
for run in "${runs[@]}"; do
  start=$(date +%s)
  # every switch is given explicitly (on or off), so the preset's defaults do not leak into the baseline
  nice -n 19 .venv/bin/python bench/train_cxr.py --data "$data" --out "$out/$run" --preset cpu-scratch --image-size "$size" \
    --epochs "$epochs" --gradcam-per-source 0 --crop none --detail-size 0 --intensity none --no-counterfactual-augmentation \
    --no-jpeg-augmentation --outside-lung-blanking 0 --edge-blanking 0 --blur-noise 0 --no-temperature-scaling ${flags[$run]} \
    > "$out/$run.train.log" 2>&1 || { echo "$run: training failed, see $out/$run.train.log"; continue; }
  mid=$(date +%s)
  nice -n 19 .venv/bin/python bench/shortcut_report.py --artifact "$out/$run/model.keras" --data "$data" --gradcam-limit 40 \
    --out "$out/$run/shortcuts.json" > "$out/$run.report.log" 2>&1
  printf 'train_seconds %s\nreport_seconds %s\n' $((mid - start)) $(( $(date +%s) - mid )) > "$out/$run.times"
done
