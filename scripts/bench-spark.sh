#!/usr/bin/env bash
# Throughput of the same de-identification on every engine: PATIENTS synthetic patients with the
# safe-harbor preset through `haven deid` on every core (the baseline), then haven-spark on
# PySpark local[2], Spark Connect local[2] and Sail, each writing NDJSON partitioned by type.
# Prints wall seconds (session start included, and the job alone), resources/s and the ratio of
# each engine's job throughput to the baseline's, all measured in this run, and checks that
# every engine's sorted output is the CLI's, byte for byte.
#
# Usage: scripts/bench-spark.sh [PATIENTS]      (default 10000)
# HAVEN=path/to/haven uses that binary instead of building the release one; HAVEN_SPARK_PYTHON
# and HAVEN_SAIL_PYTHON name the Pythons (default: those scripts/spark-env.sh prepares).
set -euo pipefail
cd "$(dirname "$0")/.."
patients="${1:-10000}"
if [ -n "${HAVEN:-}" ]; then
  haven="$HAVEN"
else
  cargo build --release -q -p haven
  haven="${CARGO_TARGET_DIR:-$(pwd)/target}/release/haven"
fi
spark_python="${HAVEN_SPARK_PYTHON:-/var/cache/haven-ci/spark-venv/bin/python}"
sail_python="${HAVEN_SAIL_PYTHON:-/var/cache/haven-ci/sail-venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HAVEN_CRYPTO_HASH_KEY=bench-hash-key HAVEN_DATE_SHIFT_KEY=bench-shift-key
export SPARK_LOCAL_IP=127.0.0.1

"$haven" synth --patients "$patients" --seed 1 --out "$work/in" 2>/dev/null
rm -rf "$work/in/_truth"
resources=$(cat "$work"/in/*.ndjson | wc -l)
bytes=$(cat "$work"/in/*.ndjson | wc -c)
echo "safe-harbor, $patients synthetic patients: $resources resources, $((bytes / 1000000)) MB, $(nproc) cores"

sorted() { # folder -> one sorted file of every data line under it
  find "$1" -type f ! -name '.*' ! -name '_*' ! -path '*/_*' -print0 | xargs -0 cat | LC_ALL=C sort >"$1.sorted"
}
row() { # name wall-seconds job-seconds baseline-job-seconds
  printf '  %-34s %7.2f s wall %7.2f s job %9.0f resources/s  %5.2fx the baseline\n' "$1" "$2" "$3" \
    "$(echo "$resources / $3" | bc -l)" "$(echo "$4 / $3" | bc -l)"
}

start=$(date +%s.%N)
"$haven" deid "$work/in" "$work/cli" 2>/dev/null
base=$(echo "$(date +%s.%N) - $start" | bc -l)
rm -f "$work/cli/_haven_deid_summary.json"
sorted "$work/cli"
row "haven deid, every core (baseline)" "$base" "$base" "$base"

cat >"$work/run.py" <<'EOF'
import os, sys, time
started = time.time()
engine, source, output = sys.argv[1:4]
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
from pyspark.sql import SparkSession
import haven_spark
if engine == "sail":
    from pysail.spark import SparkConnectServer
    server = SparkConnectServer("127.0.0.1", 0)
    server.start()
    builder = SparkSession.builder.remote("sc://127.0.0.1:%d" % server.listening_address[1])
else:
    builder = SparkSession.builder.master("local[2]") if engine == "spark" else SparkSession.builder.remote("local[2]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.driver.memory", "2g")
spark = builder.getOrCreate()
job = time.time()
keys = {"cryptoHashKey": os.environ["HAVEN_CRYPTO_HASH_KEY"], "dateShiftKey": os.environ["HAVEN_DATE_SHIFT_KEY"]}
report = haven_spark.deidentify(spark, source, output, keys=keys, preset="safe-harbor", mode="overwrite")
done = time.time()
print(f"{done - started:.3f} {done - job:.3f} {sum(report.resources.values())}")
EOF

for engine in spark connect sail; do
  python="$spark_python"
  [ "$engine" = sail ] && python="$sail_python"
  read -r wall job written < <("$python" "$work/run.py" "$engine" "$work/in" "$work/$engine" 2>"$work/$engine.log" | tail -1)
  sorted "$work/$engine"
  if ! cmp -s "$work/cli.sorted" "$work/$engine.sorted"; then
    echo "  $engine: the output differs from haven deid's" >&2
    exit 1
  fi
  [ "$written" = "$resources" ] || { echo "  $engine wrote $written of $resources" >&2; exit 1; }
  row "haven-spark on $engine" "$wall" "$job" "$base"
done
echo "every engine's sorted output equals haven deid's, byte for byte"
