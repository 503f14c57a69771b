#!/usr/bin/env bash
# prunebench's one entry point for setup, benchmark and tests; `make` targets call it.
#   bash scripts/prunebench.sh setup   # virtual environment, packages, Fashion-MNIST (idempotent)
#   bash scripts/prunebench.sh bench   # setup, then the default quick benchmark (results/), one worker per core
#   bash scripts/prunebench.sh test    # setup, then flake8 + the test suite
#   bash scripts/prunebench.sh speed   # setup, then the harness-overhead benchmark
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
FMNIST_DIR=/usr/share/datasets/fashion-mnist

as_root() {  # run a command as root, or say what to run
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "prunebench: please run as root: $*" >&2; return 1
  fi
}

apt_install() {
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
      echo "prunebench: $PYTHON -m venv failed; installing python3-venv" >&2
      rm -rf "$VENV"
      apt_install python3-venv
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  # Reinstall only when the declared dependencies change.
  local stamp="$VENV/.prunebench-$(cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "prunebench: installing packages into $VENV (torch is large; a few minutes the first time)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev,ray,slurm]"
    rm -f "$VENV"/.prunebench-*
    touch "$stamp"
  fi
}

setup_data() {
  if [ -n "${PRUNEBENCH_DATA_ROOT:-}" ] || [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "prunebench: installing Fashion-MNIST (Debian package dataset-fashion-mnist)" >&2
    apt_install dataset-fashion-mnist || echo "prunebench: could not install Fashion-MNIST; pass --data-root DIR" >&2
  else
    echo "prunebench: no apt-get; Fashion-MNIST will be downloaded by torchvision when online" >&2
  fi
}

setup() { setup_venv; setup_data; }

case "${1:-}" in
  setup) setup ;;
  # bench is the plain CLI: on a CPU it packs one worker per core, one thread each (--executor auto),
  # so its runs are the ones a plain `python run_benchmarks.py` computes and reuses.
  bench) setup; shift; exec "$VENV/bin/python" run_benchmarks.py "$@" ;;
  test)  setup; "$VENV/bin/python" -m flake8; exec "$VENV/bin/python" -m pytest ;;
  speed) setup; shift; exec "$VENV/bin/python" -m benchmark.perf "$@" ;;
  *) echo "usage: bash scripts/prunebench.sh {setup|bench|test|speed} [args]" >&2; exit 2 ;;
esac
