#!/usr/bin/env bash
# GPU check of the CIFAR-10 ResNet-18 recipes (configs/cifar10-*-resnet18.yaml): a few epochs of
# each on the accelerator, with seconds per epoch, images/s, mean GPU utilisation and memory
# (nvidia-smi sampled every 0.5 s during the run) and the projected time to the recipes' 1000
# epochs. Budget: under 10 minutes on one H100/H200 (8 recipes x EPOCHS epochs of 50,000 images,
# plus one prepare of CIFAR-10).
#
#   make setup && benchmarks/gpu_check.sh [EPOCHS=2] [RECIPES="simclr byol ..."]
#
# Prints one row per recipe and the command that reproduces it; raw histories stay under
# build/gpu-check/. Exits non-zero when no CUDA device is visible (it is a GPU check);
# ALLOW_CPU=1 LIMIT_BATCHES=2 runs its logic on a CPU (a smoke test of the script, no figures).
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-2}
RECIPES=${RECIPES:-$(ls configs/cifar10-*-resnet18.yaml | sed 's|configs/cifar10-||; s|-resnet18.yaml||' | tr '\n' ' ')}
PY=${PY:-.venv/bin/python}
CSL=${CSL:-.venv/bin/csl}
ROOT=${ROOT:-build/gpu-check}
ZIP=${ZIP:-$(cd .. && pwd)/shared/datasets/cifar10-jpeg.zip}

ALLOW_CPU=${ALLOW_CPU:-0} $PY - <<'EOF'
import os, sys, torch
if not torch.cuda.is_available() and os.environ["ALLOW_CPU"] != "1":
    sys.exit("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a machine "
             "with an accelerator")
print(f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU (ALLOW_CPU=1)'}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
echo "command: EPOCHS=$EPOCHS RECIPES=\"$RECIPES\" benchmarks/gpu_check.sh   (commit $(git rev-parse --short HEAD))"
mkdir -p "$ROOT"
printf '%-10s %7s %9s %10s %9s %9s %14s %8s\n' recipe epochs "s/epoch" "images/s" "GPU util" "GPU mem" "1000 epochs" loss
for r in $RECIPES; do
  cfg=configs/cifar10-$r-resnet18.yaml
  # the recipe as the project's params, CIFAR-10 from the absolute path, EPOCHS epochs (the
  # cosine schedule then spans them: the step time is what is measured)
  $PY - "$cfg" "$ROOT/params.yaml" "$ZIP" "$EPOCHS" "${LIMIT_BATCHES:-}" <<'EOF'
import sys, yaml
cfg, out, zip_, epochs, limit = sys.argv[1:]
p = yaml.safe_load(open(cfg))
p["data"]["source"] = zip_
for m in p["methods"].values():
    m["train"]["epochs"] = int(epochs)
    m["train"]["progress_bar"] = False
    m["train"]["limit_train_batches"] = int(limit) if limit else None
    m.setdefault("schedule", {})["warmup_epochs"] = min(1, int(epochs))
yaml.safe_dump(p, open(out, "w"), sort_keys=False)
EOF
  [ -f "$ROOT/data/prepared/meta.json" ] || $CSL --project "$ROOT" prepare > "$ROOT/prepare.log" 2>&1
  variant=$r-resnet18
  rm -rf "$ROOT/checkpoints/$variant"
  smi=
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 > "$ROOT/$r.smi" &
    smi=$!
  else
    echo "0, 0" > "$ROOT/$r.smi"
  fi
  if ! $CSL --project "$ROOT" pretrain --variant "$variant" > "$ROOT/$r.log" 2>&1; then
    [ -z "$smi" ] || kill $smi 2>/dev/null || true
    echo "$r: csl pretrain failed; the last lines of $ROOT/$r.log:"; tail -20 "$ROOT/$r.log"; exit 1
  fi
  [ -z "$smi" ] || kill $smi 2>/dev/null || true
  $PY - "$ROOT/runs/$variant/pretrain/history.json" "$ROOT/$r.smi" "$r" "$ROOT/data/prepared/meta.json" <<'EOF'
import json, sys
hist, smi, name = json.load(open(sys.argv[1])), open(sys.argv[2]).read().split("\n"), sys.argv[3]
n_train = json.load(open(sys.argv[4]))["num_train"]
rows = [[float(x) for x in line.split(",")] for line in smi if line.strip() and "," in line]
util = sum(r[0] for r in rows) / max(1, len(rows))
mem = max((r[1] for r in rows), default=0.0) / 1024
last = hist[-1]  # the first epoch carries the warm-up (cuDNN autotuning, allocator)
epoch_s = n_train / last["images_per_s"]  # a whole epoch at the measured rate (LIMIT_BATCHES runs part of one)
hours = epoch_s * 1000 / 3600
print(f"{name:<10} {len(hist):>7} {epoch_s:>9.1f} {last['images_per_s']:>10.0f} {util:>8.0f}% "
      f"{mem:>7.1f}GB {hours:>12.1f} h {last['loss']:>8.4f}")
EOF
done
