#!/usr/bin/env bash
# Builds every fuzz target and runs each one for a short while.
#
# Usage: ./smoke.sh [SECONDS] [TARGET...]
#   SECONDS  how long to run each target (default 10)
#   TARGET   which targets to run (default: all of them, as `cargo fuzz list` prints them)
#
# Environment:
#   FUZZ_TOOLCHAIN  the rustup toolchain to use (default: nightly)
#   FUZZ_RSS_MB     libFuzzer's -rss_limit_mb (default: 2048)
#
# Each target starts from corpus/<target> (created if missing, git-ignored) plus the committed
# seeds/<target>; new inputs go to corpus/<target>, crashes to artifacts/<target>. The script
# exits non-zero if any target crashes, leaks, times out or runs out of memory.

set -euo pipefail

cd "$(dirname "$0")"

seconds="${1:-10}"
if [[ $# -gt 0 ]]; then
    shift
fi
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "smoke.sh: SECONDS must be a positive integer, got '$seconds'" >&2
    exit 2
fi

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
rss_mb="${FUZZ_RSS_MB:-2048}"

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

cargo "+$toolchain" fuzz build

logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT

failed=()
summary=()
for target in "${targets[@]}"; do
    echo "==> $target: ${seconds}s"
    mkdir -p "corpus/$target"
    log="$logdir/$target.log"
    if cargo "+$toolchain" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -print_final_stats=1 2>&1 | tee "$log"; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
    fi
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
    summary+=("$(printf '%-18s %-7s %s' "$target" "$status" "${done_line:-(no DONE line)}")")
done

echo
echo "==> summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "smoke.sh: crashed: ${failed[*]} (see artifacts/<target>/)" >&2
    exit 1
fi
