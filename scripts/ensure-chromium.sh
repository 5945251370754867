#!/usr/bin/env bash
# Make sure a headless-capable Chromium is on PATH for the report's browser test.
# Idempotent: returns at once when one is already installed. Installs Debian's
# `chromium` package with apt-get when running as root (or with passwordless sudo).
# Elsewhere (no apt-get, no root) it only warns: the browser test then skips locally
# and fails in CI (CI=true), so a missing browser never passes silently there.
set -euo pipefail

for candidate in "${CHROMIUM:-}" chromium chromium-browser google-chrome google-chrome-stable; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: no Chromium found and no apt-get to install it; install Chromium (or set CHROMIUM=/path/to/chrome) to run the report's browser test" >&2
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "warning: no Chromium found; run 'sudo apt-get install -y chromium' to enable the report's browser test" >&2
    exit 0
fi

echo "installing Debian's chromium for the report's browser test (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# fonts-liberation is only recommended by chromium, but without a font the page renders as boxes.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "error: apt-get installed chromium but it is not on PATH" >&2; exit 1; }
