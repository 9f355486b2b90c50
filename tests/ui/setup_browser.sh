#!/usr/bin/env bash
# Installs what the browser test needs, once, from the project's own files:
#   - Debian's chromium (apt; only when /usr/bin/chromium is missing and we may use apt)
#   - npm's playwright-core, pinned in tests/ui/package.json, into build/ui-node (git-ignored)
# Idempotent: a second run only checks. Exit 3 = chromium cannot be installed here (the test then skips).
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE_DIR=build/ui-node

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "==> installing Debian chromium (sudo apt-get)"
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "chromium is not installed and apt-get is not usable here (need root or passwordless sudo)" >&2
    exit 3
  fi
fi
command -v chromium >/dev/null 2>&1 || { echo "chromium did not install" >&2; exit 3; }

if ! cmp -s tests/ui/package.json "$NODE_DIR/package.json" || [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ]; then
  command -v npm >/dev/null 2>&1 || { echo "npm is not installed" >&2; exit 3; }
  echo "==> installing playwright-core into $NODE_DIR (npm)"
  mkdir -p "$NODE_DIR"
  cp tests/ui/package.json "$NODE_DIR/package.json"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error >/dev/null
fi
echo "==> browser ready: $(chromium --version 2>/dev/null | head -1), playwright-core $(node -p "require('./$NODE_DIR/node_modules/playwright-core/package.json').version")"
