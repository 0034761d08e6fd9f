"""What the browser scripts share: Debian's Chromium opened headless through Playwright, with
every console error and uncaught exception of the page gathered, and how a check fails."""

import sys


def fail(why):
    """Ends the script as a failed check: `failed: WHY` on stdout (the test reads it), exit 1."""
    print(f"failed: {why}", flush=True)
    sys.exit(1)


def open_page(playwright, height):
    """Headless Chromium, a new 1280-wide page of `height` in it, and the list the page's
    console errors and uncaught exceptions are gathered in."""
    browser = playwright.chromium.launch(
        executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    page = browser.new_page(viewport={"width": 1280, "height": height})
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return browser, page, errors
