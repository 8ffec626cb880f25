#!/usr/bin/env bash
# System libraries: WeasyPrint's Pango (PDF invoices) always; with "test" also Chromium for the
# browser tests. Installs what is missing through apt-get when run as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
VENV="${VENV:-.venv}"

if ! "$VENV/bin/python" -c "import weasyprint" >/dev/null 2>&1; then
  apt_install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    || echo "!! WeasyPrint needs Pango: install libpango-1.0-0 and libpangoft2-1.0-0." >&2
fi
# Without HarfBuzz-Subset WeasyPrint subsets fonts with fontTools, whose output changes with PYTHONHASHSEED:
# the same invoice would render to different bytes from one process to the next.
if ! "$VENV/bin/python" -c "import sys; from weasyprint.text.ffi import harfbuzz_subset; sys.exit(harfbuzz_subset is None)" >/dev/null 2>&1; then
  apt_install libharfbuzz-subset0 || echo "!! PDFs need HarfBuzz-Subset to render reproducibly: install libharfbuzz-subset0." >&2
fi
# The PDF stylesheet asks for DejaVu Sans; without it Pango substitutes another font silently.
if ! fc-list 2>/dev/null | grep -q "DejaVu Sans"; then
  apt_install fonts-dejavu-core fontconfig || echo "!! PDFs need the DejaVu fonts: install fonts-dejavu-core." >&2
fi
if [ "${1:-}" = "test" ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium || { echo "!! The browser tests need Debian's chromium at /usr/bin/chromium." >&2; exit 1; }
fi
exit 0
