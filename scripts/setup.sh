#!/usr/bin/env bash
# setup.sh: installs everything cifar-pipeline needs, idempotently and cached.
#
#   1. libtensorflow 2.18 (C API): either the install named by LIBTENSORFLOW_DIR
#      (official tarball layout: include/ + lib/), or the copy inside the
#      tensorflow-cpu==2.18.0 wheel, laid out as a prefix under .deps/libtensorflow.
#   2. A Python venv (.venv) with TensorFlow 2.18 + Keras 3: the reference used by
#      parity tests and benchmarks (never needed to run the Go pipeline).
#   3. bin/pipeline, built with an rpath so it runs without LD_LIBRARY_PATH.
#   0. First, the HDF5 C library (Debian's libhdf5-dev) that kerasfile uses through
#      gonum.org/v1/hdf5 for .keras and .weights.h5: apt-get install when missing.
#
# Usage: [TF_VARIANT=cpu|cuda] scripts/setup.sh [--no-python] [--no-build]
# Writes .deps/env.sh (shell source) with the cgo flags and paths for the
# chosen libtensorflow.
#
# TF_VARIANT=cuda (opt-in; ~2.3 GB download) additionally installs
# tensorflow[and-cuda]==2.18.0 into its own venv .venv-cuda (the CPU venv and
# prefix stay untouched), lays it out as .deps/libtensorflow-cuda, writes
# .deps/env-cuda.sh and builds bin/pipeline against it. The CUDA wheel finds
# cuDNN, cuBLAS, ... only through its RUNPATH $ORIGIN/../nvidia/*/lib, and the
# loader expands $ORIGIN to the directory of the path it opened, not of the
# symlink target: the prefix therefore has a sibling link
# PREFIX/nvidia -> site-packages/nvidia next to PREFIX/lib.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEPS="${DEPS_DIR:-$ROOT/.deps}"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements.txt"
WANT_PYTHON=1
WANT_BUILD=1
for a in "$@"; do
  case "$a" in
    --no-python) WANT_PYTHON=0 ;;
    --no-build) WANT_BUILD=0 ;;
    *) echo "setup: unknown flag $a (known: --no-python --no-build)" >&2; exit 2 ;;
  esac
done
TF_VARIANT="${TF_VARIANT:-cpu}"
[ -n "${LIBTENSORFLOW_DIR:-}" ] || [ "$TF_VARIANT" = cuda ] || WANT_PYTHON=1 # the CPU wheel is our libtensorflow source
case "$TF_VARIANT" in
  cpu) ;;
  cuda)
    [ -z "${LIBTENSORFLOW_DIR:-}" ] || { echo "setup: TF_VARIANT=cuda installs its own libtensorflow: unset LIBTENSORFLOW_DIR or TF_VARIANT" >&2; exit 2; } ;;
  *) echo "setup: TF_VARIANT=$TF_VARIANT is not one of cpu, cuda" >&2; exit 2 ;;
esac

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

mkdir -p "$DEPS"

# --- 0. HDF5 C library (headers + libhdf5) for kerasfile's .keras/.weights.h5 files.
if ! dpkg -s libhdf5-dev >/dev/null 2>&1; then
  command -v apt-get >/dev/null || die "the HDF5 C library is missing: install libhdf5-dev (Debian/Ubuntu) or your system's HDF5 development package, then rerun make setup"
  [ "$(id -u)" = 0 ] || die "libhdf5-dev is missing: run sudo apt-get install -y libhdf5-dev, then rerun make setup"
  say "installing libhdf5-dev (HDF5 C library for .keras/.weights.h5) ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libhdf5-dev >/dev/null; } \
    || die "apt-get install -y libhdf5-dev failed: check that Debian's package mirror is reachable, then rerun make setup"
fi

# --- 1. Python venv with TensorFlow 2.18 (cached by a hash of requirements.txt).
PYTHON="${PYTHON:-python3}"
if [ "$WANT_PYTHON" = 1 ]; then
  command -v "$PYTHON" >/dev/null || die "python3 not found: install Python 3.9-3.12 (needed for the TensorFlow wheel), then rerun make setup"
  reqhash="$(sha256sum "$REQ" | cut -c1-16)"
  stamp="$VENV/.cifar-pipeline-$reqhash"
  if [ ! -f "$stamp" ]; then
    say "creating Python venv $VENV with $(grep -c '==' "$REQ") pinned packages (tensorflow-cpu 2.18.0, keras 3) ..."
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" \
      || die "pip install -r $REQ failed: check that PyPI is reachable, then rerun make setup"
    rm -f "$VENV"/.cifar-pipeline-*
    touch "$stamp"
  fi
fi

# --- 1b. TF_VARIANT=cuda: tensorflow[and-cuda] in its own venv (cached by a stamp).
if [ "$TF_VARIANT" = cuda ]; then
  CUDA_VENV="${CUDA_VENV:-$ROOT/.venv-cuda}"
  CUDA_PKG='tensorflow[and-cuda]==2.18.0'
  stamp="$CUDA_VENV/.cifar-pipeline-$(printf %s "$CUDA_PKG" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "installing $CUDA_PKG into $CUDA_VENV (about 2.3 GB: TensorFlow with CUDA kernels + nvidia-*-cu12 wheels) ..."
    [ -x "$CUDA_VENV/bin/python" ] || "$PYTHON" -m venv "$CUDA_VENV"
    "$CUDA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$CUDA_PKG" \
      || die "pip install $CUDA_PKG failed: check that PyPI is reachable and the disk has 3 GB free, then rerun TF_VARIANT=cuda make setup"
    rm -f "$CUDA_VENV"/.cifar-pipeline-*
    touch "$stamp"
  fi
  site="$("$CUDA_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  wheel="$site/tensorflow"
  [ -f "$wheel/libtensorflow_cc.so.2" ] || die "$wheel/libtensorflow_cc.so.2 missing: delete $CUDA_VENV and rerun TF_VARIANT=cuda make setup"
  [ -d "$site/nvidia" ] || die "$site/nvidia missing: the nvidia-*-cu12 wheels did not install; delete $CUDA_VENV and rerun TF_VARIANT=cuda make setup"
  TF_PREFIX="$DEPS/libtensorflow-cuda"
  if [ "$(readlink "$TF_PREFIX/nvidia" 2>/dev/null)" != "$site/nvidia" ] \
     || [ "$(readlink "$TF_PREFIX/lib/libtensorflow.so" 2>/dev/null)" != "$wheel/libtensorflow_cc.so.2" ]; then
    say "laying out libtensorflow prefix $TF_PREFIX from the CUDA wheel"
    rm -rf "$TF_PREFIX.tmp" && mkdir -p "$TF_PREFIX.tmp/lib"
    ln -s "$wheel/include" "$TF_PREFIX.tmp/include"
    ln -s "$wheel/libtensorflow_cc.so.2" "$TF_PREFIX.tmp/lib/libtensorflow_cc.so.2"
    ln -s "$wheel/libtensorflow_framework.so.2" "$TF_PREFIX.tmp/lib/libtensorflow_framework.so.2"
    ln -s "$wheel/libtensorflow_cc.so.2" "$TF_PREFIX.tmp/lib/libtensorflow.so"
    # The loader opens lib/libtensorflow_cc.so.2, so $ORIGIN is lib/ and the
    # wheel's RUNPATH $ORIGIN/../nvidia/<pkg>/lib means PREFIX/nvidia/<pkg>/lib.
    ln -s "$site/nvidia" "$TF_PREFIX.tmp/nvidia"
    rm -rf "$TF_PREFIX" && mv "$TF_PREFIX.tmp" "$TF_PREFIX"
  fi
fi

# --- 2. libtensorflow prefix.
if [ "$TF_VARIANT" = cuda ]; then
  : # laid out above
elif [ -n "${LIBTENSORFLOW_DIR:-}" ]; then
  TF_PREFIX="$(cd "$LIBTENSORFLOW_DIR" && pwd)" || die "LIBTENSORFLOW_DIR=$LIBTENSORFLOW_DIR does not exist"
  [ -f "$TF_PREFIX/include/tensorflow/c/c_api.h" ] \
    || die "LIBTENSORFLOW_DIR=$TF_PREFIX has no include/tensorflow/c/c_api.h (expected the official libtensorflow tarball layout include/ + lib/)"
  ls "$TF_PREFIX"/lib/libtensorflow.so* >/dev/null 2>&1 \
    || die "LIBTENSORFLOW_DIR=$TF_PREFIX has no lib/libtensorflow.so* (expected the official libtensorflow tarball layout include/ + lib/)"
  if [ ! -e "$TF_PREFIX/lib/libtensorflow.so" ]; then
    die "LIBTENSORFLOW_DIR=$TF_PREFIX/lib lacks the libtensorflow.so link: run ln -s libtensorflow.so.2 $TF_PREFIX/lib/libtensorflow.so"
  fi
  say "using libtensorflow from LIBTENSORFLOW_DIR=$TF_PREFIX"
else
  TF_PREFIX="$DEPS/libtensorflow"
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  wheel="$site/tensorflow"
  [ -f "$wheel/libtensorflow_cc.so.2" ] || die "$wheel/libtensorflow_cc.so.2 missing: delete .venv and rerun make setup"
  if [ "$(readlink "$TF_PREFIX/lib/libtensorflow.so" 2>/dev/null)" != "$wheel/libtensorflow_cc.so.2" ]; then
    say "laying out libtensorflow prefix $TF_PREFIX from the tensorflow-cpu wheel"
    rm -rf "$TF_PREFIX.tmp" && mkdir -p "$TF_PREFIX.tmp/lib"
    ln -s "$wheel/include" "$TF_PREFIX.tmp/include"
    ln -s "$wheel/libtensorflow_cc.so.2" "$TF_PREFIX.tmp/lib/libtensorflow_cc.so.2"
    ln -s "$wheel/libtensorflow_framework.so.2" "$TF_PREFIX.tmp/lib/libtensorflow_framework.so.2"
    ln -s "$wheel/libtensorflow_cc.so.2" "$TF_PREFIX.tmp/lib/libtensorflow.so"
    rm -rf "$TF_PREFIX" && mv "$TF_PREFIX.tmp" "$TF_PREFIX"
  fi
fi

# --- 3. Environment for cgo and the loader, written atomically.
ENVFILE="$DEPS/env.sh"
[ "$TF_VARIANT" = cuda ] && ENVFILE="$DEPS/env-cuda.sh"
cat > "$ENVFILE.tmp" <<ENV
# Generated by scripts/setup.sh; source it to use go build/test by hand.
export LIBTENSORFLOW_PREFIX="$TF_PREFIX"
export CGO_ENABLED=1
export CGO_CFLAGS="-I$TF_PREFIX/include"
export CGO_LDFLAGS="-L$TF_PREFIX/lib -Wl,-rpath,$TF_PREFIX/lib"
export LD_LIBRARY_PATH="$TF_PREFIX/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export TF_CPP_MIN_LOG_LEVEL="\${TF_CPP_MIN_LOG_LEVEL:-2}"
export PIPELINE_TF_VARIANT="$TF_VARIANT"
ENV
if [ -x "$VENV/bin/python" ]; then echo "export PIPELINE_PYTHON=\"$VENV/bin/python\"" >> "$ENVFILE.tmp"; fi
mv "$ENVFILE.tmp" "$ENVFILE"

# --- 4. Verify the library exports the C API we use.
lib="$(readlink -f "$TF_PREFIX/lib/libtensorflow.so")"
if command -v nm >/dev/null; then
  syms="$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//')"
  for sym in TF_NewSession TF_AddGradientsWithPrefix TF_Version; do
    grep -qx "$sym" <<<"$syms" || die "$lib does not export $sym: not a usable libtensorflow"
  done
fi

# --- 5. Build bin/pipeline.
if [ "$WANT_BUILD" = 1 ]; then
  # shellcheck disable=SC1091
  . "$ENVFILE"
  go build -o bin/pipeline ./pipeline/cmd/pipeline || die "go build failed (see above)"
fi
say "ready (libtensorflow: $TF_PREFIX, variant $TF_VARIANT, env $ENVFILE)"
