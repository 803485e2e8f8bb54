#!/usr/bin/env bash
# The whole suite: unit and command tests in parallel, then the integration tests (real sshd, rsync,
# Apache on loopback) one file at a time. Installs what it needs first.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-tools.sh --lab || exit 1
[[ -d node_modules ]] || npm ci --no-audit --no-fund || exit 1
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
jest=(node --experimental-vm-modules node_modules/jest/bin/jest.js)

"${jest[@]}" --selectProjects unit commands --json --outputFile="$results/fast.json" "$@"
fast=$?
"${jest[@]}" --selectProjects integration --runInBand --json --outputFile="$results/integration.json" "$@"
integration=$?

node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) { failed++; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests + r.numRuntimeErrorTestSuites;
  }
  console.log(`${passed} passed, ${failed} failed`);
' "$results/fast.json" "$results/integration.json"
((fast == 0 && integration == 0))
