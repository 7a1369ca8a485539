"""The README's screenshots: the browser tests write them under build/screenshots/; this copies them to docs/.

    python -m pytest tests/e2e -k "wtch001 or scan001 or whal001 or alrt001 or bkt001 or qual001 or lcyc001"   # take them
    python -m tests.e2e.screenshots --update-docs                               # publish them

Only the screenshots README.md shows (``docs/screenshot-*.png``) are copied.  Without ``--update-docs``
it lists what would be.  ``scripts/screenshots`` does both steps.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from tests.e2e.browser_page import SCREENSHOTS

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"


def shown_in_readme() -> list[str]:
    """File names of the screenshots README.md shows from docs/."""
    return sorted(set(re.findall(r"docs/(screenshot-[\w-]+\.png)", (ROOT / "README.md").read_text())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", action="store_true", help="copy the README's screenshots to docs/")
    args = parser.parse_args(argv)
    missing = [name for name in shown_in_readme() if not (SCREENSHOTS / name).is_file()]
    if missing:
        print(f"not in {SCREENSHOTS}: {', '.join(missing)}; run the browser tests first (see --help)",
              file=sys.stderr)
        return 1
    for name in shown_in_readme():
        if args.update_docs:
            shutil.copyfile(SCREENSHOTS / name, DOCS / name)
        print(f"{'copied' if args.update_docs else 'would copy'} {SCREENSHOTS / name} -> {DOCS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
