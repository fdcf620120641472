#!/usr/bin/env bash
# scripts/parity/hf/run_reference.sh ARGS...: run Hugging Face's run_classification.py (vendored
# verbatim next to this file) with ARGS, fully offline on the CPU, from any working directory.
#
#   - Python: $BERTFIT_PYTHON (scripts/env.sh is sourced when it is not set).
#   - HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE=1: nothing is fetched.
#   - HF_HOME and HF_DATASETS_CACHE: a fresh temporary folder per run (removed at exit), so two
#     runs never share a datasets cache (a cached map() of other data would be reused silently).
#     Set RC_REFERENCE_CACHE=DIR to use DIR instead (kept; the caller owns it).
#   - PYTHONPATH starts with this folder: `import evaluate` gets the scikit-learn stand-in.
#   - CUDA_VISIBLE_DEVICES="" (the CPU, as bertfit's parity tests compare on the CPU); set
#     RC_REFERENCE_GPU=1 to leave CUDA_VISIBLE_DEVICES as it is.
#   - TOKENIZERS_PARALLELISM=false, progress bars of datasets/hub off, no telemetry.
#   - RC_REFERENCE_LIST_DTYPE=1 adds compat_list_dtype/ (a sitecustomize) to PYTHONPATH: with
#     datasets 5.x the script's multi-label path fails (`List` has no `.dtype`); see FACTS.md.
# ARGS are passed unchanged (add --disable_tqdm true yourself for quiet logs: it is a script flag).
# The exit status is the script's.
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
if [[ -z ${BERTFIT_PYTHON:-} ]]; then
    # shellcheck source=scripts/env.sh
    source "$HERE/../../env.sh"
fi

if [[ -n ${RC_REFERENCE_CACHE:-} ]]; then
    cache=$RC_REFERENCE_CACHE
    mkdir -p -- "$cache"
else
    cache=$(mktemp -d -- "${TMPDIR:-/tmp}/rc-reference.XXXXXX")
    trap 'rm -rf -- "$cache"' EXIT
fi

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME="$cache/hf_home" HF_DATASETS_CACHE="$cache/datasets"
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1
export TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
[[ ${RC_REFERENCE_LIST_DTYPE:-0} != 1 ]] || PYTHONPATH="$HERE/compat_list_dtype:$PYTHONPATH"
[[ ${RC_REFERENCE_GPU:-0} == 1 ]] || export CUDA_VISIBLE_DEVICES=""

# Not exec: the EXIT trap removes the temporary cache afterwards.
status=0
"$BERTFIT_PYTHON" "$HERE/run_classification.py" "$@" || status=$?
exit "$status"
