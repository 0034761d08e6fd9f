"""Opens a `vane plugin test --report` page in headless Chromium for tests/e2e/dashboard.rs.

Run as: report.py FILE.html PLUGINS SCREENSHOT, where PLUGINS is how many runs the page
should hold side by side. Prints `ok COLUMNSxEVENTS ...`, one per run, once every run has its
shares chart (a full column per stretch of the run, the scenario's events marked), a drawn
pick-time histogram and its tables, with no console error; else `failed: ...` and exits 1.
"""

import pathlib
import sys

from playwright.sync_api import sync_playwright

from chromium import fail, open_page

FILE, PLUGINS, SCREENSHOT = sys.argv[1], int(sys.argv[2]), sys.argv[3]


with sync_playwright() as playwright:
    browser, page, errors = open_page(playwright, 900)
    page.goto(pathlib.Path(FILE).resolve().as_uri())
    runs = page.locator("section.run")
    if runs.count() != PLUGINS:
        fail(f"{runs.count()} runs on the page, not {PLUGINS}")
    said = []
    for i in range(PLUGINS):
        run = runs.nth(i)
        for chart in ("svg.shares", "svg.picks", "table.backends", "table.fallbacks"):
            if run.locator(chart).count() != 1:
                fail(f"run {i} has no {chart}")
        shares = run.locator("svg.shares")
        box = shares.bounding_box()
        if not box or box["width"] < 100 or box["height"] < 100:
            fail(f"run {i}'s shares chart is not drawn: {box}")
        # Each stretch's column is full: its parts' heights add up to the chart's 180.
        stacks = {}
        for rect in shares.locator("rect").all():
            x, height = float(rect.get_attribute("x")), float(rect.get_attribute("height"))
            stacks[x] = stacks.get(x, 0.0) + height
        if not stacks or any(abs(total - 180.0) > 0.5 for total in stacks.values()):
            fail(f"run {i}'s columns are not full: {sorted(stacks.values())[:5]}")
        drawn = [float(bar.get_attribute("height")) for bar in run.locator("svg.picks rect").all()]
        if max(drawn, default=0.0) <= 0.0:
            fail(f"run {i} has no pick-time bar drawn")
        said.append(f"{len(stacks)}x{shares.locator('line.event').count()}")
    page.screenshot(path=SCREENSHOT, full_page=True)
    if errors:
        fail(f"console errors: {errors}")
    print("ok " + " ".join(said), flush=True)
    browser.close()
