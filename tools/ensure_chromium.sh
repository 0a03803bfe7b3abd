#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own browser download cannot
# reach its CDN here): install it when missing and the machine has apt.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests…"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
  exit 0
fi
echo "the browser tests need Chromium: install it (e.g. 'apt-get install chromium') or set CHROMIUM" >&2
