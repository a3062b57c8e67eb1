#!/usr/bin/env bash
# Build, test and package the VS Code extension: prompt-lsp-<version>.vsix in this folder.
# Needs Node >= 20 and npm; reaches only the npm registry (or nothing, with a warm npm cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() { printf '\n== %s\n' "$*"; }

step "npm ci"
npm ci --no-audit --no-fund

step "compile (tsc --noEmit, esbuild bundle)"
npm run compile

step "test (unit + grammar)"
test_log="$(mktemp)"
trap 'rm -f "$test_log"' EXIT
npm test 2>&1 | tee "$test_log"
unit_passed="$(sed -n 's/^ℹ pass \([0-9][0-9]*\)$/\1/p' "$test_log" | tail -1)"
grammar_passed="$(grep -c '^✓ tests/grammar/' "$test_log" || true)"

step "package"
rm -f ./*.vsix
npm run package

version="$(node -p "require('./package.json').version")"
vsix="prompt-lsp-${version}.vsix"
test -f "$vsix" || { echo "missing $vsix" >&2; exit 1; }

step "check $vsix"
listing="$(node -e '
  // List the archive with vsce`s own unzip dependency, so no unzip binary is needed.
  const yauzl = require("yauzl");
  yauzl.open(process.argv[1], { lazyEntries: true }, (err, zip) => {
    if (err) { console.error(err.message); process.exit(1); }
    zip.on("entry", (e) => { console.log(e.fileName); zip.readEntry(); });
    zip.on("end", () => zip.close());
    zip.readEntry();
  });
' "$vsix")"
echo "$listing"
for required in \
  extension/package.json \
  extension/out/extension.js \
  extension/syntaxes/prompt.tmLanguage.json \
  extension/language-configuration.json \
  extension/readme.md \
  extension/LICENSE.txt; do
  grep -qix "$required" <<<"$listing" || { echo "$vsix lacks $required" >&2; exit 1; }
done
if grep -E '^extension/(node_modules|src|tests)/' <<<"$listing" >/dev/null; then
  echo "$vsix holds files it should not (node_modules, src or tests)" >&2
  exit 1
fi
echo "OK: $vsix"
echo "vscode: $(( ${unit_passed:-0} + ${grammar_passed:-0} )) passed, 0 failed"
