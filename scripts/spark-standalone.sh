#!/usr/bin/env bash
# haven-spark on a Spark standalone mini-cluster: one master and two workers (one core, 1 GB
# each) on 127.0.0.1, started from the pip-installed PySpark with spark-class. De-identifies
# PATIENTS synthetic patients with the safe-harbor preset from a driver in client mode, checks
# that the executors ran in two worker processes and that the sorted output is `haven deid`'s,
# byte for byte, then stops the cluster. Optional (about 2-3 minutes); not part of CI.
#
# Usage: scripts/spark-standalone.sh [PATIENTS]     (default 200)
# HAVEN=path/to/haven uses that binary instead of building it; HAVEN_SPARK_PYTHON names the
# Python with PySpark and the wheel (default: the one scripts/spark-env.sh prepares).
set -euo pipefail
cd "$(dirname "$0")/.."
patients="${1:-200}"
if [ -n "${HAVEN:-}" ]; then
  haven="$HAVEN"
else
  cargo build -q -p haven
  haven="${CARGO_TARGET_DIR:-$(pwd)/target}/debug/haven"
fi
python="${HAVEN_SPARK_PYTHON:-/var/cache/haven-ci/spark-venv/bin/python}"
export SPARK_HOME
SPARK_HOME=$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$python" SPARK_NO_DAEMONIZE=1
export HAVEN_CRYPTO_HASH_KEY=cluster-hash-key HAVEN_DATE_SHIFT_KEY=cluster-shift-key
work="$(mktemp -d)"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

port=$(free_port)
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 \
  --port "$port" --webui-port "$(free_port)" >"$work/master.log" 2>&1 &
pids+=($!)
for n in 1 2; do
  SPARK_WORKER_DIR="$work/worker-$n" "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
    --host 127.0.0.1 --cores 1 --memory 1g --webui-port "$(free_port)" \
    "spark://127.0.0.1:$port" >"$work/worker-$n.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 120); do
  [ "$(grep -c 'Registering worker' "$work/master.log" 2>/dev/null)" = 2 ] && break
  sleep 1
done
grep -q 'Registering worker' "$work/master.log" || { cat "$work/master.log" >&2; exit 1; }
echo "cluster: master spark://127.0.0.1:$port with 2 workers"

"$haven" synth --patients "$patients" --seed 2 --out "$work/in" 2>/dev/null
rm -rf "$work/in/_truth"
"$haven" deid "$work/in" "$work/cli" 2>/dev/null
rm -f "$work/cli/_haven_deid_summary.json"

"$python" - "spark://127.0.0.1:$port" "$work" <<'EOF'
import os, sys, time
from pyspark.sql import SparkSession
import haven_spark
master, work = sys.argv[1:3]
started = time.time()
spark = (SparkSession.builder.master(master).config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.executor.memory", "1g").config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.files.maxPartitionBytes", str(4 << 20)).getOrCreate())
keys = {"cryptoHashKey": os.environ["HAVEN_CRYPTO_HASH_KEY"], "dateShiftKey": os.environ["HAVEN_DATE_SHIFT_KEY"]}
report = haven_spark.deidentify(spark, f"{work}/in", f"{work}/spark", keys=keys, preset="safe-harbor")
executors = spark.sparkContext._jsc.sc().getExecutorIds().size()
print(f"de-identified {sum(report.resources.values())} resources in {time.time() - started:.1f} s "
      f"with {executors} executors")
assert executors == 2, executors
spark.stop()
EOF

sorted() { find "$1" -type f ! -name '.*' ! -name '_*' -print0 | xargs -0 cat | LC_ALL=C sort; }
if cmp -s <(sorted "$work/cli") <(sorted "$work/spark"); then
  echo "the cluster's sorted output equals haven deid's, byte for byte"
else
  echo "the cluster's output differs from haven deid's" >&2
  exit 1
fi
