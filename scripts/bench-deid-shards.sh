#!/usr/bin/env bash
# How `haven deid --shard I/N` scales from 1 to 2 processes: PATIENTS synthetic patients
# de-identified with the safe-harbor preset, every process on one worker thread (as one core of
# a cluster would run it): one unsharded run (the baseline), 1 shard, and 2 shards running at
# once, each sharded run followed by its --commit; then, for reference, one unsharded run on
# every core. Prints seconds, resources/s and the ratio of each run's throughput to the
# baseline's, all measured in this run, and checks that the sharded output is the unsharded one.
#
# Usage: scripts/bench-deid-shards.sh [PATIENTS]      (default 10000)
# HAVEN=path/to/haven uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
patients="${1:-10000}"
if [ -n "${HAVEN:-}" ]; then
  haven="$HAVEN"
else
  cargo build --release -q -p haven
  haven="${CARGO_TARGET_DIR:-$(pwd)/target}/release/haven"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HAVEN_CRYPTO_HASH_KEY=bench-hash-key HAVEN_DATE_SHIFT_KEY=bench-shift-key \
  HAVEN_ENCRYPT_KEY=0123456789abcdef0123456789abcdef

"$haven" synth --patients "$patients" --seed 1 --out "$work/in" 2>/dev/null
resources=$(cat "$work"/in/*.ndjson | wc -l)
echo "haven deid --preset safe-harbor, $patients synthetic patients ($resources resources), $(nproc) cores"

now() { date +%s.%N; }
row() { # name seconds baseline-seconds
  printf '  %-40s %7.2f s %9.0f resources/s  %5.2fx the baseline throughput\n' "$1" "$2" \
    "$(echo "$resources / $2" | bc -l)" "$(echo "$3 / $2" | bc -l)"
}

start=$(now)
"$haven" deid --threads 1 "$work/in" "$work/single" 2>/dev/null
base=$(echo "$(now) - $start" | bc -l)
row "unsharded, 1 thread (baseline)" "$base" "$base"

for shards in 1 2; do
  out="$work/sharded-$shards"
  start=$(now)
  pids=()
  for ((i = 0; i < shards; i++)); do
    "$haven" deid --threads 1 --shard "$i/$shards" "$work/in" "$out" 2>/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  "$haven" deid --commit "$out" --shard-count "$shards" 2>/dev/null
  seconds=$(echo "$(now) - $start" | bc -l)
  row "$shards shard(s) of 1 thread at once + commit" "$seconds" "$base"
  cmp -s <(cat "$work"/single/*.ndjson) <(cat "$out"/*.ndjson) \
    || { echo "  the sharded output differs from the unsharded output" >&2; exit 1; }
done
start=$(now)
"$haven" deid "$work/in" "$work/all-cores" 2>/dev/null
row "unsharded, every core (reference)" "$(echo "$(now) - $start" | bc -l)" "$base"
