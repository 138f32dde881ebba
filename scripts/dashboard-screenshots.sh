#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png (one per dashboard page) by running the browser test
# against a server with demo data. Needs chromium and chromium-driver (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
HAVEN_UPDATE_SCREENSHOTS=1 cargo test -p dashboard --test browser -- --nocapture
ls -l docs/screenshots
