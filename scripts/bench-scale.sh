#!/usr/bin/env bash
# Scale benchmark: generates N synthetic patients with `haven synth`, then times, on the same
# NDJSON files, (a) a pass that only parses and re-serializes (a configuration with no rules),
# (b) `haven deid --preset safe-harbor`, and (c) `jq -c .` (if installed); prints resources/s,
# MB/s, the ratios (b)/(a) and jq/(b), and the peak memory of each run, so that memory can be
# compared across sizes.
#
# Usage: scripts/bench-scale.sh [PATIENTS] [THREADS]     (defaults: 10000, all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
patients="${1:-10000}"
threads="${2:-$(nproc)}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p haven
haven="$target/release/haven"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HAVEN_CRYPTO_HASH_KEY=bench-hash-key HAVEN_DATE_SHIFT_KEY=bench-shift-key \
  HAVEN_ENCRYPT_KEY=0123456789abcdef0123456789abcdef

# Runs a command, prints its wall time in seconds and peak resident memory in MB.
timed() {
  local start end rss
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    return 1
  }
  end=$(date +%s.%N)
  rss=$(tail -1 "$work/rss")
  echo "$(echo "$end - $start" | bc -l) $(echo "$rss / 1024" | bc)"
}

read -r synth_s synth_mb < <(timed "$haven" synth --patients "$patients" --seed 1 \
  --threads "$threads" --out "$work/src")
lines=$(cat "$work"/src/*.ndjson | wc -l)
bytes=$(cat "$work"/src/*.ndjson | wc -c)
mb=$(echo "$bytes / 1000000" | bc -l)
printf 'data: %d patients, %d resources, %.0f MB of NDJSON (synth: %.1f s, %.0f patients/s, peak %d MB)\n' \
  "$patients" "$lines" "$mb" "$synth_s" "$(echo "$patients / $synth_s" | bc -l)" "$synth_mb"

echo '{"fhirVersion": "R4", "fhirPathRules": []}' >"$work/no-rules.json"
read -r floor_s floor_mb < <(timed "$haven" deid --config "$work/no-rules.json" --threads "$threads" \
  "$work/src" "$work/floor")
read -r deid_s deid_mb < <(timed "$haven" deid --preset safe-harbor --threads "$threads" \
  "$work/src" "$work/out")

row() { printf '%-34s %8.1f s %10.0f resources/s %7.1f MB/s  peak %5d MB\n' "$1" "$2" \
  "$(echo "$lines / $2" | bc -l)" "$(echo "$mb / $2" | bc -l)" "$3"; }
echo "threads: $threads"
row "(a) parse + re-serialize (no rules)" "$floor_s" "$floor_mb"
row "(b) safe-harbor" "$deid_s" "$deid_mb"
printf '(b)/(a): %.2fx\n' "$(echo "$deid_s / $floor_s" | bc -l)"
if command -v jq >/dev/null; then
  read -r jq_s jq_mb < <(timed sh -c "cat '$work'/src/*.ndjson | jq -c ." )
  row "(c) jq -c . (1 process)" "$jq_s" "$jq_mb"
  printf 'jq time / (b) time: %.2fx (above 1: Haven doing Safe Harbor is faster than jq doing nothing)\n' \
    "$(echo "$jq_s / $deid_s" | bc -l)"
else
  echo "(c) jq not installed: skipped"
fi
