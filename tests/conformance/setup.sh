#!/usr/bin/env bash
# Install the pinned validator packages once (npm registry); a no-op after.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.hvgate-stamp
if [ ! -f "$stamp" ] || ! cmp -s package.json "$stamp"; then
  npm install --no-audit --no-fund --silent >/dev/null
  cp package.json "$stamp"
fi
