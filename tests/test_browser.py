"""The rendered book in a real browser: every page loads without console errors, every
figure image loads, and a screenshot of each page is saved (under _build/screenshots/).

Needs the HTML (`make html`) and Debian's chromium + chromium-driver; `make test` provides
both and sets POSINFO_BROWSER_REQUIRED=1 so that a missing browser fails instead of skipping.
"""
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"
SHOTS = REPO / "_build" / "screenshots"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
REQUIRED = os.environ.get("POSINFO_BROWSER_REQUIRED") == "1"

if not (HTML / "index.html").exists() or not (CHROMIUM and DRIVER):
    reason = "needs _build/html (make html) and chromium + chromedriver"
    if REQUIRED:
        raise RuntimeError(f"browser check: {reason}")
    pytest.skip(reason, allow_module_level=True)

PAGES = sorted(str(p.relative_to(HTML)) for p in [HTML / "index.html", *HTML.glob("book/*.html")])


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # no driver download
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


# Images that have not loaded yet (lazy ones are made eager first), as their URLs.
BROKEN_IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; });
window.scrollTo(0, document.body.scrollHeight);
const wait = i => i.complete ? Promise.resolve() :
    new Promise(r => { i.onload = r; i.onerror = r; });
Promise.all(imgs.map(wait)).then(() => {
    window.scrollTo(0, 0);
    done(imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src));
});
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_console_errors_and_with_every_image(page, server, browser):
    browser.get(f"{server}/{page}")
    browser.set_script_timeout(30)
    broken = browser.execute_async_script(BROKEN_IMAGES)
    n_images = browser.execute_script("return document.images.length")
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / (page.replace("/", "_").replace(".html", ".png"))))
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # This machine has no internet: a failed fetch of an outside host (MathJax's CDN) says
    # nothing about the book. Anything served by the book itself must load cleanly.
    local_errors = [m for m in errors if server in m or "http" not in m]
    assert not local_errors, f"{page}: console errors {local_errors}"
    assert not broken, f"{page}: images that did not load: {broken}"
    if page.startswith("book/0"):
        assert n_images > 0, f"{page}: a chapter without figures"
