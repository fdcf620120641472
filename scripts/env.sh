# shellcheck shell=bash
# scripts/env.sh: the environment every bertfit script works in. Source it (bash):
#
#     source scripts/env.sh
#
# Only exports variables; creates nothing, prints nothing, leaves shell options alone
# (safe under `set -euo pipefail`). Each variable below keeps a value that is already set,
# so e.g. `BERTFIT_CACHE=/tmp/bfcache BERTFIT_VENV=$HOME/.cache/bertfit/venv scripts/setup.sh`
# reuses an existing venv with a fresh asset cache.
#
#   BERTFIT_ROOT           the repository root (the folder above scripts/); always derived from
#                          this file's location, so it names the checkout you sourced
#   BERTFIT_CACHE          $HOME/.cache/bertfit      everything downloaded or built lives here,
#                                                    never in the repository
#   BERTFIT_VENV           $BERTFIT_CACHE/venv       Python venv (scripts/requirements.lock)
#   BERTFIT_PYTHON         $BERTFIT_VENV/bin/python
#   BERTFIT_ASSETS         $BERTFIT_CACHE/assets     all-MiniLM-L6-v2/, raw/, data/
#   CARGO_TARGET_DIR       $BERTFIT_CACHE/target     kept between runs: torch-sys is slow to build
#   LIBTORCH_USE_PYTORCH   1                         torch-sys links the venv's torch
#   HF_HUB_OFFLINE         1                         the hub is unreachable: never try it
#   TOKENIZERS_PARALLELISM false
# and PATH gets $BERTFIT_VENV/bin in front (once), so `python` is the venv's python, which
# torch-sys asks for torch's location when LIBTORCH_USE_PYTORCH=1.

BERTFIT_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]:-$0}")/.." && pwd -P)"
export BERTFIT_ROOT

export BERTFIT_CACHE="${BERTFIT_CACHE:-${HOME:?HOME is not set}/.cache/bertfit}"
export BERTFIT_VENV="${BERTFIT_VENV:-$BERTFIT_CACHE/venv}"
export BERTFIT_PYTHON="${BERTFIT_PYTHON:-$BERTFIT_VENV/bin/python}"
export BERTFIT_ASSETS="${BERTFIT_ASSETS:-$BERTFIT_CACHE/assets}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BERTFIT_CACHE/target}"
export LIBTORCH_USE_PYTORCH="${LIBTORCH_USE_PYTORCH:-1}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

case ":${PATH:-}:" in
    ":$BERTFIT_VENV/bin:"*) ;;  # already first: sourcing twice changes nothing
    *) export PATH="$BERTFIT_VENV/bin${PATH:+:$PATH}" ;;
esac
