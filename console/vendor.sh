#!/usr/bin/env bash
# The console's front-end libraries, copied from node_modules (installed by `npm ci` from
# the committed package-lock.json) into static/vendor/, which is committed and shipped
# as package data: nobody who installs or runs Courier runs npm, and the page loads
# nothing from a CDN.
#
#   bash console/vendor.sh          npm ci when node_modules is missing, then copy
#   bash console/vendor.sh --check  exit 1 when static/vendor is not what the lock gives
#
# The files are the packages' own ES module builds, unchanged except for one line:
# hooks.mjs imports "preact" by its bare name, which a browser resolves only through
# an import map (an inline script the page's Content-Security-Policy refuses), so it
# is pointed at the file beside it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
check=0
[ "${1:-}" = "--check" ] && check=1

if [ ! -d node_modules/preact ] || [ ! -d node_modules/htm ] || [ ! -d node_modules/uplot ]; then
  npm ci --no-audit --no-fund >&2
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
nm=node_modules
cp "$nm/preact/dist/preact.mjs" "$out/preact.mjs"
sed 's/from"preact"/from".\/preact.mjs"/' "$nm/preact/hooks/dist/hooks.mjs" >"$out/hooks.mjs"
cp "$nm/htm/dist/htm.mjs" "$out/htm.mjs"
cp "$nm/uplot/dist/uPlot.esm.js" "$out/uPlot.esm.js"
cp "$nm/uplot/dist/uPlot.min.css" "$out/uPlot.min.css"
for p in preact htm uplot; do
  cp "$nm/$p/LICENSE" "$out/$p.LICENSE"
done
node -e '
  const names = ["preact", "htm", "uplot"];
  const lines = names.map((n) => `${n} ${require(`./node_modules/${n}/package.json`).version}`);
  process.stdout.write(lines.join("\n") + "\n");
' >"$out/VERSIONS.txt"
grep -q 'from"./preact.mjs"' "$out/hooks.mjs" || { echo "vendor.sh: hooks.mjs no longer imports preact as expected" >&2; exit 1; }

if [ "$check" = 1 ]; then
  if diff -r "$out" static/vendor >/dev/null; then
    echo "vendor.sh: static/vendor matches package-lock.json" >&2
    exit 0
  fi
  echo "vendor.sh: static/vendor differs from what package-lock.json gives; run bash console/vendor.sh" >&2
  diff -rq "$out" static/vendor >&2 || true
  exit 1
fi
rm -rf static/vendor
mkdir -p static/vendor
cp "$out"/* static/vendor/
echo "vendor.sh: static/vendor written ($(tr '\n' ' ' <"$out/VERSIONS.txt"))" >&2
