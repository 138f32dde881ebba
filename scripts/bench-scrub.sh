#!/usr/bin/env bash
# What the free-text dictionary of `scrub` costs at scale: for each PATIENTS count (default
# 10000 and 100000), `haven synth` data de-identified with `safe-harbor` (scrubbing free text,
# with the first pass that collects the run's identifiers) and, as the baseline measured in the
# same run, with `safe-harbor-strict` (free text removed, no dictionary). Prints the dictionary's
# size as `haven deid` reports it, both runs' peak memory (from /usr/bin/time) and wall time, and
# the ratios. Only the Patient, Practitioner, Organization and Location files are kept for the
# runs: they are what the dictionary is built from, so the figures are the dictionary's, not the
# clinical data's.
#
# Usage: scripts/bench-scrub.sh [PATIENTS ...]      (default: 10000 100000)
# HAVEN=path/to/haven uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 100000)
if [ -n "${HAVEN:-}" ]; then
  haven="$HAVEN"
else
  cargo build --release -q -p haven
  haven="${CARGO_TARGET_DIR:-$(pwd)/target}/release/haven"
fi
[ -x /usr/bin/time ] || { echo "bench-scrub.sh needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HAVEN_CRYPTO_HASH_KEY=bench-hash-key HAVEN_DATE_SHIFT_KEY=bench-shift-key

run() { # preset input output log -> "seconds peak-kB"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$4.rss" "$haven" deid --preset "$1" "$2" "$3" 2>"$4"
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc -l) $(cat "$4.rss")"
}

for patients in "${counts[@]}"; do
  rm -rf "$work"/*
  "$haven" synth --patients "$patients" --seed 7 --out "$work/all" 2>/dev/null
  mkdir "$work/in"
  for t in Patient Practitioner Organization Location; do
    mv "$work/all/$t.ndjson" "$work/in/" 2>/dev/null || true
  done
  rm -rf "$work/all"
  resources=$(cat "$work"/in/*.ndjson | wc -l)
  read -r strict_s strict_kb < <(run safe-harbor-strict "$work/in" "$work/strict" "$work/strict.log")
  read -r scrub_s scrub_kb < <(run safe-harbor "$work/in" "$work/scrub" "$work/scrub.log")
  dictionary=$(sed -n 's/^haven: scrub: //p' "$work/scrub.log")
  values=$(echo "$dictionary" | awk '{print $1}')
  echo "$patients patients ($resources people and places resources):"
  echo "  dictionary: $dictionary"
  printf '  safe-harbor-strict (baseline): %6.1f s, peak %7.1f MB\n' "$strict_s" "$(echo "$strict_kb / 1024" | bc -l)"
  printf '  safe-harbor (scrub):           %6.1f s, peak %7.1f MB  (%.2fx the time, +%.1f MB, %.0f bytes per value)\n' \
    "$scrub_s" "$(echo "$scrub_kb / 1024" | bc -l)" "$(echo "$scrub_s / $strict_s" | bc -l)" \
    "$(echo "($scrub_kb - $strict_kb) / 1024" | bc -l)" "$(echo "($scrub_kb - $strict_kb) * 1024 / $values" | bc -l)"
done
