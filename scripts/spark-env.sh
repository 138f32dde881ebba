#!/usr/bin/env bash
# Builds the haven-spark wheel (abi3, manylinux2014, with maturin and zig) and prepares the
# Pythons its tests run in: PySpark 4.3 (classic and Connect) and Sail. Installs the wheel into a
# clean virtual environment first and de-identifies a line there. Prints the variables the
# tests read (`cargo test -p haven --test spark_engines`).
#
#   scripts/spark-env.sh [CACHE]     CACHE defaults to /var/cache/haven-ci
#
# The virtual environments are kept in CACHE and rebuilt only when their pins change; the wheel
# is rebuilt every time (incrementally, in CACHE/wheel-target).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${1:-/var/cache/haven-ci}
mkdir -p "$CACHE"

# venv DIR PIN...: a virtual environment holding exactly these pins.
venv() {
  local dir=$1
  shift
  if [ "$(cat "$dir/.pins" 2>/dev/null)" != "$*" ]; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$*" >"$dir/.pins"
  fi
}

BUILD_PINS=("maturin==1.16.0" "ziglang==0.17.1")
# mapInArrow needs pandas on classic Spark; Sail 0.7 speaks to the 4.2 client only.
SPARK_PINS=("pyspark[connect]==4.3.0" "pandas==2.3.3" "pyarrow==26.0.1" "pytest==9.2.0")
SAIL_PINS=("pysail==0.7.2" "pyspark-client==4.2.0" "pandas==2.3.3" "pyarrow==26.0.1" "pytest==9.2.0" "deltalake==1.6.6")
venv "$CACHE/build-venv" "${BUILD_PINS[@]}"
venv "$CACHE/spark-venv" "${SPARK_PINS[@]}"
venv "$CACHE/sail-venv" "${SAIL_PINS[@]}"

# Spark 4 runs on Java 17 or 21.
if ! command -v java >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
fi

WHEELS="$CACHE/wheels"
rm -rf "$WHEELS"
(
  cd python
  PATH="$CACHE/build-venv/bin:$PATH" CARGO_TARGET_DIR="$CACHE/wheel-target" \
    maturin build --release --locked --zig --compatibility manylinux2014 \
    --interpreter "$CACHE/build-venv/bin/python" --out "$WHEELS" >&2
)
WHEEL=$(ls "$WHEELS"/haven_spark-*-cp39-abi3-manylinux*2014*.whl)
# The extension must need no newer glibc than manylinux2014's 2.17.
python3 - "$WHEEL" "$WHEELS/_deid.so" <<'EOF'
import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
name = next(n for n in wheel.namelist() if n.startswith("haven_spark/_deid") and n.endswith(".so"))
open(sys.argv[2], "wb").write(wheel.read(name))
EOF
NEWEST_GLIBC=$(objdump -T "$WHEELS/_deid.so" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
rm -f "$WHEELS/_deid.so"
echo "wheel: $(basename "$WHEEL") (newest symbol: $NEWEST_GLIBC)" >&2
case "$NEWEST_GLIBC" in
  GLIBC_2.1[0-7] | GLIBC_2.[0-9] | GLIBC_2.[0-9].*) ;;
  *) echo "the wheel needs $NEWEST_GLIBC, newer than manylinux2014's GLIBC_2.17" >&2; exit 1 ;;
esac

# A clean virtual environment: the wheel and its one dependency (pyarrow), nothing else.
CLEAN=$(mktemp -d)
trap 'rm -rf "$CLEAN"' EXIT
python3 -m venv "$CLEAN/venv"
"$CLEAN/venv/bin/pip" install --quiet --disable-pip-version-check "$WHEEL"
"$CLEAN/venv/bin/python" - <<'EOF' >&2
import pyarrow as pa
import haven_spark
engine = haven_spark.Engine(haven_spark.preset("safe-harbor"), {"cryptoHashKey": "k", "dateShiftKey": "d"})
row = engine.deidentify(pa.array(['{"resourceType":"Patient","id":"1","name":[{"family":"Doe"}]}'])).to_pylist()[0]
assert row["error"] is None and "Doe" not in row["resource"], row
print("clean install:", haven_spark.__version__, "de-identified a Patient, key id", engine.key_id)
EOF

for python in "$CACHE/spark-venv/bin/python" "$CACHE/sail-venv/bin/python"; do
  "$python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
done
echo "HAVEN_SPARK_WHEEL=$WHEEL"
echo "HAVEN_SPARK_PYTHON=$CACHE/spark-venv/bin/python"
echo "HAVEN_SAIL_PYTHON=$CACHE/sail-venv/bin/python"
