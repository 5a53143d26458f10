#!/usr/bin/env bash
# The API reference: Doxygen over the public headers (docs/Doxyfile), HTML into
# ${1:-build/api-docs}/html. A public entity without documentation fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh doxygen
out=$(realpath -m "${1:-build/api-docs}")
mkdir -p "$out"
COOP_DOCS_OUT="$out" doxygen docs/Doxyfile
echo "api-docs: $out/html/index.html"
