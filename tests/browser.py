"""Chrome options for every headless-browser run (tests and bench): Debian's Chromium, no network chatter."""
from __future__ import annotations

import os

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--window-size=1280,800")


def chrome_options():
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = os.environ.get("STOCKIT_CHROMIUM", "/usr/bin/chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    return options
