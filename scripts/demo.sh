#!/usr/bin/env bash
# The README's first command: publish the bundled example cuts to three local demo difusores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-tools.sh
[[ -d node_modules ]] || npm ci --no-audit --no-fund
npm run build >/dev/null

demo="$PWD/demo"
rm -rf "$demo"
mkdir -p "$demo"
sed "s#@DEMO@#$demo#g" examples/difusores.yaml >"$demo/difusores.yaml"
export DIFUSION_REGISTRY="$demo/difusores.yaml"
# Election night, inside the legal window: the runs say that the clock was set.
export DIFUSION_NOW=2022-06-05T20:31:00-05:00
difusion() { node bin/run.js "$@"; }

echo "== validate the demo registry"
difusion validate
echo
echo "== publish the 20:15 cut"
difusion publish examples/cortes/20220605_2015_PREP_DGO
echo
echo "== cron mode: the newest cut (20:30), sharing unchanged files with the live one"
difusion publish --latest examples/cortes
echo
echo "== again: every difusor already has it"
difusion publish --latest examples/cortes
echo
for d in "$demo"/espejos/*; do
  printf '%s -> %s  ' "${d#"$PWD"/}" "$(readlink "$d/current")"
  (cd "$d/current" && sha256sum --quiet -c MANIFEST.sha256 && echo 'sha256sum -c: OK')
done
echo
echo "Look at: $demo/espejos/*/current (what Apache would serve), $demo/state/journal.jsonl (the bitácora)."
