#!/usr/bin/env bash
# Screenshot of a report.html in headless Chromium (Debian: apt-get install chromium), e.g. for the README:
#   scripts/report_screenshot.sh results/report.html docs/report.png [WIDTH] [HEIGHT]
# The page is self-contained; networking is off, so the screenshot shows what an offline reader sees.
set -euo pipefail
if [[ $# -lt 2 || $# -gt 4 ]]; then
    echo "usage: $0 REPORT_HTML OUTPUT_PNG [WIDTH=1400] [HEIGHT=4000]" >&2
    exit 2
fi
report=$1 out=$2 width=${3:-1400} height=${4:-4000}
if [[ ! -f $report ]]; then
    echo "$0: error: $report: no such file" >&2
    exit 2
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
    echo "$0: error: no Chromium found (Debian: apt-get install chromium)" >&2
    exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(realpath "$report")"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$profile" \
    --window-size="$width,$height" --screenshot="$(realpath -m "$out")" "$url" >/dev/null 2>&1
test -s "$out" || { echo "$0: error: Chromium wrote no screenshot" >&2; exit 1; }
echo "wrote $out"
