#!/usr/bin/env bash
# Install Debian's `chromium` for the web page tests (tests/server/test_web_page.py drives it headless; they
# skip without it). Idempotent: nothing happens when `chromium` is already on PATH. Needs apt-get (Debian;
# Ubuntu's `chromium` package is only a snap shim, which does not run in containers) and root or sudo.
# Recommended packages are left out (notification daemons, printing, GPU drivers); a font is added so pages
# and screenshots have glyphs.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: chromium is already installed ($(command -v chromium))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not found; install Chromium with this system's package manager" \
    "so that \`chromium\` is on PATH" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1; then
  as_root="sudo"
else
  echo "install-chromium: installing packages needs root (or sudo)" >&2
  exit 1
fi

echo "install-chromium: installing chromium with apt-get"
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation

if ! command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: apt-get finished but \`chromium\` is not on PATH" >&2
  exit 1
fi
echo "install-chromium: $(chromium --version 2>/dev/null || echo 'chromium installed')"
