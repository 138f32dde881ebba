#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh [CARGO TEST ARGUMENTS...]
#
# Installs into a cache folder (HAVEN_CACHE, default ~/.cache/haven; CI uses
# /var/cache/haven-ci), skipping what is already there:
#   - from apt: PostgreSQL, Node.js and npm, Chromium and chromedriver, a Java runtime for
#     Spark, binutils (the wheel's glibc check); root is needed for these, through sudo when
#     this script is not run as root;
#   - Azurite from npm, in CACHE/npm;
#   - moto and the Python readers (pyarrow, DuckDB, deltalake), in the virtual environment
#     CACHE/venv;
#   - the haven-spark wheel with PySpark and Sail (scripts/spark-env.sh), and whatever every
#     other scripts/*-env.sh provides: each is run with CACHE and prints NAME=VALUE lines,
#     which are exported.
# Then exports the HAVEN_* variables the tests read and runs
# `cargo test --workspace --locked` with the arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${HAVEN_CACHE:-$HOME/.cache/haven}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

say() { printf '\n=== test.sh: %s (%s)\n' "$*" "$(date -u +%H:%M:%S)" >&2; }

# as_root COMMAND...: runs a command as root, through sudo when this script is not root.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    echo "test.sh: installing system packages needs root; running through sudo: $*" >&2
    sudo "$@"
  else
    echo "test.sh: installing system packages needs root, and sudo is not available." >&2
    echo "  Run as root, or install them yourself: apt-get install $APT_WANTED" >&2
    exit 1
  fi
}

# Debian packages, each with a file that shows it is installed.
APT_PACKAGES=(
  "postgresql:/usr/lib/postgresql/*/bin/initdb"
  "nodejs:/usr/bin/node"
  "npm:/usr/bin/npm"
  "chromium:/usr/bin/chromium"
  "chromium-driver:/usr/bin/chromedriver"
  "openjdk-17-jre-headless:/usr/bin/java"
  "binutils:/usr/bin/objdump"
  "python3-venv:/usr/lib/python3*/ensurepip/__init__.py"
)
APT_WANTED=""
for entry in "${APT_PACKAGES[@]}"; do
  package=${entry%%:*}
  marker=${entry#*:}
  # A Java or venv-capable Python already on PATH will do.
  case "$package" in
    openjdk-17-jre-headless) command -v java >/dev/null && continue ;;
    python3-venv) python3 -c 'import ensurepip, venv' 2>/dev/null && continue ;;
  esac
  compgen -G "$marker" >/dev/null || APT_WANTED="$APT_WANTED $package"
done
if [ -n "$APT_WANTED" ]; then
  say "apt:$APT_WANTED"
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_WANTED
fi

say "Azurite (npm)"
# Azurite 3.35.0 is the last release that runs on Node.js 20.
AZURITE_PIN="azurite@3.35.0"
NPM_PREFIX="$CACHE/npm"
if [ "$(cat "$NPM_PREFIX/.pins" 2>/dev/null)" != "$AZURITE_PIN" ]; then
  rm -rf "$NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error "$AZURITE_PIN"
  echo "$AZURITE_PIN" >"$NPM_PREFIX/.pins"
fi
export HAVEN_AZURITE="$NPM_PREFIX/node_modules/.bin/azurite-blob"
"$HAVEN_AZURITE" --version >&2

say "moto and the Python readers (venv)"
PY_PINS=("pyarrow==26.0.1" "duckdb==2.0.1" "deltalake==1.6.6" "moto[server]==5.2.5")
VENV="$CACHE/venv"
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "${PY_PINS[*]}" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}"
  echo "${PY_PINS[*]}" >"$VENV/.pins"
fi
export HAVEN_PYTHON="$VENV/bin/python"
export HAVEN_MOTO_SERVER="$VENV/bin/moto_server"
"$HAVEN_PYTHON" -c "import pyarrow, duckdb, deltalake, moto; print('pyarrow', pyarrow.__version__, 'duckdb', duckdb.__version__, 'deltalake', deltalake.__version__, 'moto', moto.__version__)" >&2

export HAVEN_CHROMEDRIVER=/usr/bin/chromedriver HAVEN_CHROMIUM=/usr/bin/chromium
export HAVEN_TEST_ARTIFACTS="$CACHE/artifacts/dashboard-screenshots"

# Every provisioning script prints NAME=VALUE lines to export (its progress goes to stderr).
for script in scripts/*-env.sh; do
  say "$script"
  output=$("$script" "$CACHE")
  while IFS= read -r line; do
    case "$line" in
      [A-Z_]*=*)
        echo "test.sh: $line" >&2
        export "${line?}"
        ;;
    esac
  done <<<"$output"
done

say "cargo test --workspace --locked $*"
exec cargo test --workspace --locked "$@"
