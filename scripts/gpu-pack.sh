#!/usr/bin/env bash
# scripts/gpu-pack.sh: what a session lent a GPU carries there, built here, so that its few
# minutes of device time go to measuring, not building.
#
#   scripts/gpu-pack.sh
#
# Builds the release binary and the integration-test binary, strips them (symbols too) into .device/
# (ignored by git; 56 MB together on 2026-12-07, under the device tool's 64 MiB: --strip-debug alone
# left 63.8 MiB, too close; the script fails past the limit), copies MiniLM's vocab.txt beside
# them, and prints the one device command (carry .device):
#
#   GPU_CHECK_TESTS=.device/integration scripts/gpu-check.sh .device/bertfit .device/vocab.txt 300
#
# On the device machine the binaries load that machine's PyTorch 2.11 libraries (gpu-check.sh puts
# them on LD_LIBRARY_PATH).
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTFIT_ROOT"
mkdir -p .device
cargo build --release --locked --bins
# The test executable's path is on the line cargo prints for it: "Executable tests/main.rs (PATH)".
tests="$(cargo test --release --locked --test integration --no-run 2>&1 | sed -n 's/.*Executable tests\/main.rs (\(.*\))$/\1/p' | tail -1)"
[[ -x $tests ]] || { echo "gpu-pack.sh: could not find the integration test executable" >&2; exit 1; }
objcopy --strip-all "$CARGO_TARGET_DIR/release/bertfit" .device/bertfit
objcopy --strip-all "$tests" .device/integration
cp "$BERTFIT_ASSETS/all-MiniLM-L6-v2/vocab.txt" .device/vocab.txt
bytes=$(cat .device/* | wc -c)
echo "$((bytes / 1024 / 1024)) MiB in .device/ (the device tool carries at most 64 MiB)"
((bytes <= 64 * 1024 * 1024)) || { echo "gpu-pack.sh: .device/ is over the device tool's 64 MiB" >&2; exit 1; }
echo "device command (carry [\".device\"]):"
echo "  GPU_CHECK_TESTS=.device/integration scripts/gpu-check.sh .device/bertfit .device/vocab.txt 300"
