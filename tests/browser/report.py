"""Opens a `vane plugin test --report` page in headless Chromium for tests/e2e/dashboard.rs.

Run as: report.py FILE.html PLUGINS SCREENSHOT, where PLUGINS is how many runs the page
should hold side by side. Prints `ok RUNS COLUMNS EVENTS` once every run has its shares chart
(a column per stretch of the run, the scenario's events marked), its pick-time histogram and
its tables, with no console error; else `failed: ...` and exits 1.
"""

import pathlib
import sys

from playwright.sync_api import sync_playwright

FILE, PLUGINS, SCREENSHOT = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def fail(why):
    print(f"failed: {why}", flush=True)
    sys.exit(1)


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(pathlib.Path(FILE).resolve().as_uri())
    runs = page.locator("section.run")
    if runs.count() != PLUGINS:
        fail(f"{runs.count()} runs on the page, not {PLUGINS}")
    columns = events = 0
    for i in range(PLUGINS):
        run = runs.nth(i)
        for chart in ("svg.shares", "svg.picks", "table.backends", "table.fallbacks"):
            if run.locator(chart).count() != 1:
                fail(f"run {i} has no {chart}")
        shares = run.locator("svg.shares")
        box = shares.bounding_box()
        if not box or box["width"] < 100 or box["height"] < 100:
            fail(f"run {i}'s shares chart is not drawn: {box}")
        columns = shares.locator("rect").count()
        events = shares.locator("line.event").count()
        if run.locator("svg.picks rect").count() == 0:
            fail(f"run {i} has no pick-time bars")
    page.screenshot(path=SCREENSHOT, full_page=True)
    if errors:
        fail(f"console errors: {errors}")
    print(f"ok {PLUGINS} {columns} {events}", flush=True)
    browser.close()
