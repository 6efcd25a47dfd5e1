#!/usr/bin/env bash
# Regenerate the README's report screenshots (docs/images/*.png) from real runs, in headless
# Chromium (apt-get install -y chromium): the browser test writes them here when asked to.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMPROBE_IMAGES_DIR="$PWD/docs/images" python -m pytest -q -p no:randomly tests/test_html_browser.py "$@"
