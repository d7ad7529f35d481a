#!/usr/bin/env bash
# Install the pinned peer packages (npm registry, exact versions from
# package-lock.json) once; a no-op while node_modules matches the lock file.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.hvgate-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --silent >/dev/null
  cp package-lock.json "$stamp"
fi
