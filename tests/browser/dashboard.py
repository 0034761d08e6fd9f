"""Drives vane's dashboard in headless Chromium for tests/e2e/dashboard.rs.

Run as: dashboard.py URL TOKEN SCREENSHOT. It speaks with the Rust test one line at a time:
it prints a line when it has seen something, and reads a line when the test has done
something. A check that fails prints `failed: ...` and exits 1; a page with a console error
or an uncaught exception fails too.

  loaded            -> the page asked for the token, refused a wrong one and asked again, took
                       the right one, and drew 3 backends with charts and shares adding up
  killed NAME       <- the test stopped backend NAME (load keeps running)
  out NAME          -> NAME's row says it is out of rotation and its req/s and share fell to 0
  swapped NAME SHA  <- the test swapped the plugin for one named NAME, its sha256 starting SHA
  plugin NAME SHA   -> the header names it, with its sha256, and the changes list the reload;
                       the screenshot is taken
"""

import sys

from playwright.sync_api import sync_playwright

from chromium import fail, open_page

URL, TOKEN, SCREENSHOT = sys.argv[1:4]
WAIT_MS = 15_000


def say(line):
    print(line, flush=True)


def hear(expected):
    words = sys.stdin.readline().split()
    if not words or words[0] != expected:
        fail(f"expected {expected!r} from the test, got {words!r}")
    return words[1:]


def until(page, what, check):
    """Polls `check` (reading the page through locators, which its Content Security Policy
    allows, where a script handed to the page would be refused) until it holds."""
    for _ in range(WAIT_MS // 100):
        if check():
            return
        page.wait_for_timeout(100)
    fail(f"never saw {what}")


with sync_playwright() as playwright:
    browser, page, errors = open_page(playwright, 860)

    page.goto(URL)
    status = page.locator("#status")
    # Without the token the page asks for it; a wrong one is refused, and it asks again.
    page.wait_for_selector("#token-input", state="visible", timeout=WAIT_MS)
    page.fill("#token-input", "not-" + TOKEN)
    page.click("#token-form button")
    until(page, "the wrong token refused", lambda: "refused" in status.inner_text())
    page.wait_for_selector("#token-input", state="visible", timeout=WAIT_MS)
    # That refusal's 401s are the browser's own console errors: only what follows counts.
    errors.clear()
    page.fill("#token-input", TOKEN)
    page.click("#token-form button")
    rates = page.locator("#backends tbody tr td.rate")
    until(page, "3 backends taking requests",
          lambda: rates.count() == 3 and all(float(rate) > 0 for rate in rates.all_inner_texts()))
    if page.locator("#backends svg.spark polyline").count() != 3:
        fail("a backend has no chart")
    if not status.inner_text().startswith("updated"):
        fail(f"the page says {status.inner_text()!r}")
    shares = [float(share.rstrip(" %")) for share in page.locator("#backends td.share").all_inner_texts()]
    if abs(sum(shares) - 100.0) > 0.5:
        fail(f"the shares add up to {sum(shares)}: {shares}")
    if errors:
        fail(f"console errors: {errors}")
    say("loaded")

    (name,) = hear("killed")
    row = f"#backends tbody tr[data-backend='{name}']"

    def out():
        cells = page.locator(row + " td")
        if cells.count() < 6:
            return False
        state, rate, share = (page.locator(row + f" td.{k}").inner_text() for k in ("state", "rate", "share"))
        return "in rotation" not in state and float(rate) == 0 and share.startswith("0.0")

    until(page, f"{name} out of rotation with no share", out)
    say(f"out {name} ({page.locator(row + ' td.state').inner_text()})")

    plugin, sha256 = hear("swapped")
    named, header = page.locator("#plugin-name"), page.locator("#plugin")
    until(page, f"the plugin {plugin} with sha256 {sha256}",
          lambda: named.count() == 1 and named.inner_text() == plugin and sha256 in header.inner_text())
    history = page.locator("#history tbody tr")
    until(page, "the reload in the changes",
          lambda: any(sha256 in row and "admitted" in row for row in history.all_inner_texts()))
    if not status.inner_text().startswith("updated"):
        fail(f"the page says {status.inner_text()!r}")
    page.wait_for_timeout(1500)
    page.screenshot(path=SCREENSHOT, full_page=True)
    if errors:
        fail(f"console errors: {errors}")
    say(f"plugin {plugin} {sha256}")
    browser.close()
