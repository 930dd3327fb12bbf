#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium and its matching ChromeDriver are installed, for
# tests/test_browser.py (Selenium drives /usr/bin/chromium through /usr/bin/chromedriver; nothing is downloaded
# at test time). Run by `make test`. Installs with apt-get only as root; without root it only says what is
# missing and exits 0: the browser test then skips with the reason (under CI=true it fails instead).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-chromium: $(chromium --version 2>/dev/null | head -n 1) and chromedriver are installed; nothing to do."
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-chromium: not root; not installing ${missing[*]} (apt-get install chromium chromium-driver)." \
       "The browser test skips without them (under CI=true it fails)."
  exit 0
fi
echo "ensure-chromium: installing ${missing[*]} with apt-get"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "ensure-chromium: installed $(chromium --version 2>/dev/null | head -n 1) and" \
     "$(chromedriver --version 2>/dev/null | head -n 1)"
