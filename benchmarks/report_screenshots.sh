#!/usr/bin/env bash
# Screenshots of the HTML report in headless Chromium (Debian's `chromium` package), to check its
# layout by eye: the run of the new-user report (issue 30), 1280 px wide, cut into 1500 px parts.
#   bash benchmarks/report_screenshots.sh [OUT]     (default OUT: /tmp/benchkit-report-shots)
set -euo pipefail
out=${1:-/tmp/benchkit-report-shots}
mkdir -p "$out"
benchkit run --methods tv,nn,mean-fill,telea,lowrank --masks center,random,thick --n-images 128 \
    --out "$out/run" > "$out/run.log" 2>&1
benchkit report "$out/run" --html > /dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$out/profile" --hide-scrollbars \
    --window-size=1280,6000 --screenshot="$out/report.png" "file://$out/run/report.html" > /dev/null 2>&1
python - "$out" <<'PY'
import sys
from PIL import Image

out = sys.argv[1]
page = Image.open(f"{out}/report.png")
for i, top in enumerate(range(0, page.size[1], 1500)):
    page.crop((0, top, page.size[0], min(top + 1500, page.size[1]))).save(f"{out}/part{i}.png")
print(f"{out}/part*.png")
PY
