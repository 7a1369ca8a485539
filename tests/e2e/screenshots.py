"""The README's screenshots: the browser tests write them under build/screenshots/; this copies them to docs/.

    python -m pytest tests/e2e -k "wtch001 or scan001 or whal001 or alrt001"   # take them
    python -m tests.e2e.screenshots --update-docs                               # publish them

Without ``--update-docs`` it lists what would be copied.  ``scripts/screenshots`` does both steps.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tests.e2e.browser_page import SCREENSHOTS

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", action="store_true", help="copy build/screenshots/*.png to docs/")
    args = parser.parse_args(argv)
    shots = sorted(SCREENSHOTS.glob("screenshot-*.png"))
    if not shots:
        print(f"no screenshots in {SCREENSHOTS}: run the browser tests first (see --help)", file=sys.stderr)
        return 1
    for shot in shots:
        if args.update_docs:
            shutil.copyfile(shot, DOCS / shot.name)
        print(f"{'copied' if args.update_docs else 'would copy'} {shot} -> {DOCS / shot.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
