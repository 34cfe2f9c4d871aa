#!/usr/bin/env bash
# The prepared GPU check, for any machine with an NVIDIA GPU, its driver, Python 3.11, Java 17 and
# cmake 3.x (and the network, for the first set-up): an environment with TensorFlow's GPU build
# (.venv-gpu; Horovod built with gloo as in .venv), then the GPU tier (tests/gpu): the training job
# with one Horovod worker on the GPU, against the same worker on the CPU.
#
#   bash scripts/gpu_check.sh            # the log also goes to $OUT/gpu_check.log when OUT is set
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GPU_VENV:-.venv-gpu}"
LOG="${OUT:-.}/gpu_check.log"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOG"
TRAIN_STACK=gpu bash scripts/setup_env.sh "$VENV" 2>&1 | tail -3 | tee -a "$LOG"
[ -f .cache/jars/.resolved ] || { "$VENV/bin/python" scripts/resolve_jars.py .cache/jars && touch .cache/jars/.resolved; }
"$VENV/bin/python" -c "import tensorflow as tf; print('tensorflow', tf.__version__, 'GPUs:', tf.config.list_physical_devices('GPU'))" \
  2>&1 | grep -v "^20..-" | tee -a "$LOG"
REC_GPU_CHECK=1 "$VENV/bin/python" -m pytest tests/gpu -p no:cacheprovider -rA 2>&1 | tee -a "$LOG"
