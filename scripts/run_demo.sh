#!/usr/bin/env bash
# The whole pipeline on real data, on the CPU, with no CIFAR-10 copy: scikit-learn's handwritten
# digits are written in the CIFAR-10 binary format, SKNet-50 is trained on them, and the
# checkpoint folder is evaluated on the held-out digits.
#
#   bash scripts/run_demo.sh [extra train.py flags...]
#
# Settings (environment variables; the defaults are the README's measured run):
#   DEMO_DIR          work folder (data, checkpoints, results)      default ./demo_output
#   DEMO_ARCH         sknet50 | sknet_tiny                           default sknet50
#   DEMO_STEM         cifar | imagenet                               default cifar
#   DEMO_IMAGE_SIZE   input size in pixels (docs/performance.md)     default 16
#   DEMO_EPOCHS       training epochs                                default 7
#   DEMO_BATCH        batch size                                     default 32
#   DEMO_LR           peak learning rate                             default 0.04
#   DEMO_TRAIN_COUNT  training digits to use, 0 = all 1,438          default 0
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Python never imports from the caller's folder (a yaml.py or pip.py there would run): PYTHONSAFEPATH
# drops the unsafe sys.path entry, and PYTHONPATH names the project instead.
export PYTHONSAFEPATH=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
DEMO_DIR="$(mkdir -p "${DEMO_DIR:-./demo_output}" && cd "${DEMO_DIR:-./demo_output}" && pwd)"
ARCH="${DEMO_ARCH:-sknet50}"
STEM="${DEMO_STEM:-cifar}"
IMAGE_SIZE="${DEMO_IMAGE_SIZE:-16}"
EPOCHS="${DEMO_EPOCHS:-7}"
BATCH="${DEMO_BATCH:-32}"
LR="${DEMO_LR:-0.04}"
TRAIN_COUNT="${DEMO_TRAIN_COUNT:-0}"
OUTPUT="$DEMO_DIR/checkpoints"
MODEL_FLAGS=(--device_target CPU --arch "$ARCH" --stem_type "$STEM" --image_size "$IMAGE_SIZE")

cd "$REPO"
start=$SECONDS
rm -rf "$OUTPUT"
python -m src.data.digits_demo "$DEMO_DIR/data" --train_count "$TRAIN_COUNT"
DATA="$DEMO_DIR/data/cifar-10-batches-bin"

# Digits must not be mirrored, so augmentation is off; in-training eval is off because the
# folder is evaluated below. zero_init_last (each unit starts as an identity) keeps this short,
# high-LR run of a 50-layer network from diverging in its first steps.
python train.py "${MODEL_FLAGS[@]}" --data_path "$DATA" --output_path "$OUTPUT" \
    --epoch_size "$EPOCHS" --batch_size "$BATCH" --lr_init 0.005 --lr_max "$LR" --lr_end 0.0 \
    --warmup_epochs 0.5 --lr_decay_mode cosine --augment false --eval_interval 0 --log_interval 10 \
    --keep_checkpoint_max 2 --zero_init_last true "$@"

python eval.py "${MODEL_FLAGS[@]}" --data_path "$DATA" --checkpoint_path "$OUTPUT" \
    --result_json "$DEMO_DIR/eval.json"

python - "$DEMO_DIR/eval.json" "$((SECONDS - start))" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))
best, last = results["best"], results["results"][-1]
print(f"demo: top-1 {last['top1']:.2%} on {last['images']} held-out digits with the last checkpoint "
      f"(best {best['top1']:.2%}); whole demo {int(sys.argv[2]) // 60} min {int(sys.argv[2]) % 60} s")
PY
