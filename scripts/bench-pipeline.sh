#!/usr/bin/env bash
# End-to-end benchmark of the whole job, on the bundled Synthea data (92,114 resources) and on
# PATIENTS synthetic patients. Every figure is measured in this run, and compared with a floor
# measured in the same run:
#
#   load      `haven load` of the Synthea Bundles into SQLite
#   export    `haven export` alone against `haven serve` (the export floor)
#   deid      `haven deid --preset safe-harbor` folder to folder (the de-identification floor)
#   pipeline  `haven pipeline run` from the server, all formats (end to end), then from the
#             exported folder with one format at a time (ndjson, parquet, delta)
#   demo      `haven demo` end to end (load, serve, export, de-identify, land, validate)
#
# Usage: scripts/bench-pipeline.sh [PATIENTS]      (default 10000; 0 skips the synthetic part)
# HAVEN=path/to/haven uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
patients="${1:-10000}"
target="${CARGO_TARGET_DIR:-target}"
if [ -n "${HAVEN:-}" ]; then
  haven="$HAVEN"
else
  cargo build --release -q -p haven
  haven="$(pwd)/$target/release/haven"
  [ -x "$haven" ] || haven="$target/release/haven"
fi
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export HAVEN_HOME="$work/home" HAVEN_CRYPTO_HASH_KEY=bench-hash-key \
  HAVEN_DATE_SHIFT_KEY=bench-shift-key HAVEN_ENCRYPT_KEY=0123456789abcdef0123456789abcdef

# Runs a command; prints its wall time in seconds and its peak resident memory in MB.
timed() {
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/stdout" 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    return 1
  }
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc -l) $(($(tail -1 "$work/rss") / 1024))"
}
row() { # name seconds resources peak-MB floor-seconds
  printf '  %-44s %7.2f s %9.0f resources/s  peak %5d MB  %5.2fx the floor\n' "$1" "$2" \
    "$(echo "$3 / $2" | bc -l)" "$4" "$(echo "$2 / $5" | bc -l)"
}

echo "Synthea COVID-19, 120 patients (data/synthea-covid-120), $(nproc) cores"
read -r load_s load_mb < <(timed "$haven" load --db "$work/hub.db" data/synthea-covid-120)
resources=$(awk -F'\t' '{s += $2} END {print s}' "$work/stdout")
port=$((20000 + RANDOM % 20000))
"$haven" serve --db "$work/hub.db" --listen "127.0.0.1:$port" --export-to "$work/exports" \
  >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/fhir/metadata" >/dev/null && break
  sleep 0.1
done
url="http://127.0.0.1:$port/fhir"

read -r export_s export_mb < <(timed "$haven" export --server "$url" "$work/exported")
exported=$(cat "$work"/exported/[A-Z]*.ndjson | wc -l)
read -r deid_s deid_mb < <(timed "$haven" deid --preset safe-harbor "$work/exported" "$work/deid")
read -r e2e_s e2e_mb < <(timed "$haven" pipeline run --server "$url" --level system \
  --lake "$work/lake-all" --format ndjson,parquet,delta --work-dir "$work/pipeline-work")
cp "$work/stdout" "$work/e2e.json" 2>/dev/null || true
printf '  %-44s %7.2f s %9.0f resources/s  peak %5d MB\n' "load (SQLite, $resources resources)" \
  "$load_s" "$(echo "$resources / $load_s" | bc -l)" "$load_mb"
row "export floor: haven export ($exported)" "$export_s" "$exported" "$export_mb" "$export_s"
row "deid floor: haven deid safe-harbor" "$deid_s" "$exported" "$deid_mb" "$deid_s"
row "pipeline end to end (export+deid+3 formats)" "$e2e_s" "$exported" "$e2e_mb" "$export_s"
for format in ndjson parquet delta; do
  read -r s mb < <(timed "$haven" pipeline run --folder "$work/exported" \
    --lake "$work/lake-$format" --format "$format")
  row "pipeline from folder, deid + $format" "$s" "$exported" "$mb" "$deid_s"
done
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
read -r demo_s demo_mb < <(timed "$haven" demo --lake "$work/demo-lake")
row "haven demo (load, serve, export, land, validate)" "$demo_s" "$resources" "$demo_mb" "$e2e_s"
echo "  (floors: export rows compare with haven export; folder rows with haven deid;"
echo "   the demo row with the pipeline end to end)"

if [ "$patients" -gt 0 ]; then
  echo
  echo "haven synth, $patients patients"
  "$haven" synth --patients "$patients" --seed 1 --out "$work/synth" 2>/dev/null
  lines=$(cat "$work"/synth/*.ndjson | wc -l)
  read -r sdeid_s sdeid_mb < <(timed "$haven" deid --preset safe-harbor "$work/synth" "$work/synth-deid")
  row "deid floor: haven deid safe-harbor ($lines)" "$sdeid_s" "$lines" "$sdeid_mb" "$sdeid_s"
  for format in ndjson parquet delta ndjson,parquet,delta; do
    read -r s mb < <(timed "$haven" pipeline run --folder "$work/synth" \
      --lake "$work/synth-lake-${format//,/-}" --format "$format")
    row "pipeline from folder, deid + $format" "$s" "$lines" "$mb" "$sdeid_s"
  done
fi
