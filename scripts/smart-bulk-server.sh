#!/usr/bin/env bash
# Runs the SMART reference Bulk Data server (smart-on-fhir/bulk-data-server) on 127.0.0.1 and
# `haven export` against it, including the server's simulated failures.
#
# Usage: scripts/smart-bulk-server.sh [SCENARIO...]
#   Scenarios (default: all, in this order):
#     basic       Patient export, GET kick-off, _type
#     post        Group export (BlueCrossBlueShield), POST kick-off with a Parameters body
#     transient   {"err":"transient_error"}: the first status poll is a 500 with a transient outcome
#     deleted     {"del":10} with _since: deleted[] files of DELETE Bundles, saved under deleted/
#     paged       {"page":5000,"opp":2} + allowPartialManifests + organizeOutputBy=Patient:
#                 manifest pages followed through link next
#     file-errors {"err":"some_file_generation_failed"}: error[] files saved under error/
#     resume      kill -9 during the downloads, then the same command again: no new kick-off
#     secured     {"secure":true}: an anonymous kick-off gets 401; then, for ES384 and RS384, a key
#                 from `haven keys generate` registered at /auth/register and `haven export
#                 --client-id --key` with SMART Backend Services; the manifest requires tokens
#     rate-limit  61 quick status requests block 127.0.0.1 for 5 minutes; the export's polls get
#                 429 with an absolute epoch Retry-After and wait it out (takes ~5 minutes)
#
# Environment:
#   WORK                   scratch folder (default ${TMPDIR:-/tmp}/haven-smart-bulk); sources,
#                          node_modules, the server's database and the exports go there
#   PORT                   server port (default 9443)
#   BULK_DATA_SERVER_GIT   git URL or local path of bulk-data-server (default: GitHub)
#   BULK_DATA_SERVER_REV   commit (default 5df455a, v2.1.1)
#   FHIR_FILTER_GIT        git URL or local path of fhir-filter (default: GitHub)
#   FHIR_FILTER_REV        commit (default d6c18d9)
#   HAVEN                  haven binary (default: built with cargo into the usual target dir)
#
# Needs git, Node.js 20 with npm (the npm registry is the only other network source), a C
# compiler for sqlite3, curl. Nothing of the server is kept in this repository: it is cloned into
# WORK and started from there (see shared/docs/bulk-data.md §6 for the workarounds applied).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-${TMPDIR:-/tmp}/haven-smart-bulk}
PORT=${PORT:-9443}
SERVER_GIT=${BULK_DATA_SERVER_GIT:-https://github.com/smart-on-fhir/bulk-data-server.git}
SERVER_REV=${BULK_DATA_SERVER_REV:-5df455a}
FILTER_GIT=${FHIR_FILTER_GIT:-https://github.com/smart-on-fhir/fhir-filter.git}
FILTER_REV=${FHIR_FILTER_REV:-d6c18d9}
BASE="http://127.0.0.1:$PORT"

if [ $# -eq 0 ]; then
    set -- basic post transient deleted paged file-errors resume secured rate-limit
fi

log() { printf '== %s\n' "$*" >&2; }

mkdir -p "$WORK"
cd "$WORK"

# --- sources -------------------------------------------------------------------------------------
# Checks out REV of URL into DIR, without the server's committed database (it is regenerated).
checkout() {
    local url=$1 rev=$2 dir=$3
    if [ ! -d "$dir/.git" ]; then
        log "cloning $url"
        git clone -q --no-checkout "$url" "$dir"
        git -C "$dir" checkout -q "$rev" -- . ':(exclude)database.r4.db'
    fi
}
checkout "$FILTER_GIT" "$FILTER_REV" fhir-filter
checkout "$SERVER_GIT" "$SERVER_REV" bulk-data-server

# --- install -------------------------------------------------------------------------------------
cd bulk-data-server
if [ ! -d node_modules ]; then
    log "installing the server's npm packages (about 3 minutes; sqlite3 builds from source)"
    # fhir-filter from the local checkout instead of a GitHub download; allow sqlite3's build.
    node -e '
        const fs = require("fs");
        const pkg = JSON.parse(fs.readFileSync("package.json"));
        pkg.dependencies["fhir-filter"] = "file:../fhir-filter";
        pkg.allowScripts = { sqlite3: true };
        fs.writeFileSync("package.json", JSON.stringify(pkg, null, 2));
        const lock = JSON.parse(fs.readFileSync("package-lock.json"));
        for (const key of Object.keys(lock.packages || {})) {
            if (key.endsWith("node_modules/fhir-filter")) delete lock.packages[key];
        }
        if (lock.packages && lock.packages[""]) lock.packages[""].dependencies["fhir-filter"] = "file:../fhir-filter";
        fs.writeFileSync("package-lock.json", JSON.stringify(lock, null, 2));
    '
    npm_config_nodedir=/usr npm install --no-audit --no-fund >"$WORK/npm-install.log" 2>&1 \
        || { tail -30 "$WORK/npm-install.log" >&2; exit 1; }
fi
if [ ! -s database.r4.db ]; then
    log "generating the server's database (about 2 minutes)"
    npx ts-node ./data/import.ts -d ./data/fhir/ >"$WORK/import.log" 2>&1 \
        || { tail -30 "$WORK/import.log" >&2; exit 1; }
fi

# --- haven ---------------------------------------------------------------------------------------
if [ -z "${HAVEN:-}" ]; then
    log "building haven"
    (cd "$ROOT" && cargo build -q -p haven)
    HAVEN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/haven"
fi

# --- server --------------------------------------------------------------------------------------
mkdir -p jobs
log "starting the server on $BASE"
PORT=$PORT NODE_ENV=development BASE_URL=$BASE setsid npx ts-node --transpile-only . \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill -- -"$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 120); do
    curl -sf -o /dev/null "$BASE/fhir/metadata" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -30 "$WORK/server.log" >&2; exit 1; }
    sleep 0.5
done
curl -sf -o /dev/null "$BASE/fhir/metadata" || { log "the server did not start"; exit 1; }

# --- scenarios -----------------------------------------------------------------------------------
# The base URL with a simulation segment (base64url JSON) before /fhir.
sim() { printf '%s/%s/fhir' "$BASE" "$(printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '=')"; }

OUT="$WORK/exports"
rm -rf "$OUT"
mkdir -p "$OUT"
declare -a RESULTS=()

# run NAME SERVER ARGS...: haven export into $OUT/NAME; prints haven's output.
run() {
    local name=$1 server=$2
    shift 2
    log "scenario $name: haven export --server $server $*"
    timeout 900 "$HAVEN" export --server "$server" "$@" "$OUT/$name"
}

check() {
    local name=$1
    shift
    if "$@"; then RESULTS+=("PASS  $name"); else RESULTS+=("FAIL  $name"); fi
}

has_files() { compgen -G "$1" >/dev/null; }

for scenario in "$@"; do
    case $scenario in
    basic)
        check basic run basic "$BASE/fhir" --patient --type Patient,Condition,Observation
        ;;
    post)
        check post run post "$BASE/fhir" --group BlueCrossBlueShield --type Patient,Immunization --post
        ;;
    transient)
        check transient run transient "$(sim '{"err":"transient_error"}')" --patient --type Patient
        ;;
    deleted)
        run deleted "$(sim '{"del":10}')" --patient --type Condition --since 2010-01-01T00:00:00Z \
            && check deleted has_files "$OUT/deleted/deleted/*.ndjson" || check deleted false
        ;;
    paged)
        run paged "$(sim '{"page":5000,"opp":2}')" --patient \
            --param allowPartialManifests=true --param organizeOutputBy=Patient \
            && check paged test -f "$OUT/paged/manifest.001.json" || check paged false
        ;;
    file-errors)
        run file-errors "$(sim '{"err":"some_file_generation_failed"}')" --patient --type Patient,Condition \
            && check file-errors has_files "$OUT/file-errors/error/*.ndjson" || check file-errors false
        ;;
    resume)
        server=$(sim '{"page":2000}')
        log "scenario resume: starting, to be killed with SIGKILL once a file is complete"
        "$HAVEN" export --server "$server" --patient --parallel 1 "$OUT/resume" 2>"$WORK/resume-first.log" &
        first=$!
        for _ in $(seq 1500); do
            [ -s "$OUT/resume/.haven-export/finished.ndjson" ] && break
            kill -0 "$first" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$first" 2>/dev/null || true
        wait "$first" 2>/dev/null || true
        log "killed after $(wc -l <"$OUT/resume/.haven-export/finished.ndjson" 2>/dev/null || echo 0) finished files"
        run resume "$server" --patient --parallel 1 2>&1 | tee "$WORK/resume-second.log" >&2
        check resume grep -q '(resumed)' "$WORK/resume-second.log"
        ;;
    secured)
        server=$(sim '{"secure":true}')
        status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/fhir+json' \
            -H 'Prefer: respond-async' "$server/Patient/\$export")
        log "scenario secured: an anonymous kick-off answers $status"
        check secured-anonymous test "$status" = 401
        for alg in ES384 RS384; do
            keys="$WORK/keys-$alg"
            rm -rf "$keys"
            "$HAVEN" keys generate --alg "$alg" --out "$keys" >&2
            client=$(curl -sf -X POST --data-urlencode "jwks@$keys/jwks.json" "$BASE/auth/register")
            run "secured-$alg" "$server" --patient --type Patient,Condition,Observation \
                --client-id "$client" --key "$keys/private-key.pem" \
                --scope "system/Patient.rs system/Condition.rs system/Observation.rs" \
                && check "secured-$alg" node -e '
                    const m = JSON.parse(require("fs").readFileSync(process.argv[1]));
                    process.exit(m.requiresAccessToken === true && m.output.length > 0 ? 0 : 1);
                ' "$OUT/secured-$alg/manifest.json" || check "secured-$alg" false
        done
        ;;
    rate-limit)
        log "scenario rate-limit: 61 status requests to get 127.0.0.1 blocked for 5 minutes"
        for _ in $(seq 61); do curl -s -o /dev/null "$BASE/fhir/bulkstatus/none"; done
        curl -s -D - -o /dev/null "$BASE/fhir/bulkstatus/none" | grep -i '^retry-after' >&2 || true
        check rate-limit run rate-limit "$BASE/fhir" --patient --type Patient
        ;;
    *)
        log "unknown scenario $scenario"
        exit 2
        ;;
    esac
done

log "results"
printf '%s\n' "${RESULTS[@]}"
! printf '%s\n' "${RESULTS[@]}" | grep -q '^FAIL'
