"""The rendered book in a real browser, offline: every page loads without console errors,
every figure image loads, every formula is typeset by the MathJax the build serves itself (no
raw `\\(` or `\\[` left on a page), and a screenshot of each page is saved (under
_build/screenshots/). The browser resolves no host but 127.0.0.1, so anything the book still
fetched from the internet (a CDN) would fail here as a console error.

Needs the HTML (`make html`) and Debian's chromium + chromium-driver; `make test` provides
both and sets POSINFO_BROWSER_REQUIRED=1 so that a missing browser fails instead of skipping.
"""
import functools
import http.server
import os
import re
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

PAGES = sorted(str(p.relative_to(HTML)) for p in [HTML / "index.html", *HTML.glob("book/*.html"),
                                                *HTML.glob("book/gpu/*.html")])


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
                 "--disable-sync", "--no-first-run", "--window-size=1280,1600",
                 # network off for every outside host: only the book's own server answers
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
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


def open_page(browser, url):
    """Load a page; a redirect page (index.html's meta refresh) is followed to its target
    first, so that no script runs on a document the redirect is tearing down."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    page = url.split("/", 3)[3]
    target = re.search(r'http-equiv="Refresh" content="\d+; url=([^"]+)"',
                       (HTML / page).read_text(), re.I)
    if target:
        WebDriverWait(browser, 30).until(
            lambda d: d.current_url.split("?")[0].endswith(target[1])
            and d.execute_script("return document.readyState") == "complete")
    browser.set_script_timeout(30)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_console_errors_and_with_every_image(page, server, browser):
    open_page(browser, f"{server}/{page}")
    broken = browser.execute_async_script(BROKEN_IMAGES)
    n_images = browser.execute_script("return document.images.length")
    math = browser.execute_async_script(TYPESET)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / (page.replace("/", "_").replace(".html", ".png"))))
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # The book serves everything itself (MathJax included): any console error is a failure.
    assert not errors, f"{page}: console errors {errors}"
    assert not broken, f"{page}: images that did not load: {broken}"
    if page.startswith("book/0"):
        assert n_images > 0, f"{page}: a chapter without figures"
    raw = sorted(set(re.findall(r".{0,30}\\[(\[].{0,30}", math["text"])))
    assert not raw, f"{page}: raw TeX on the page (MathJax did not typeset it): {raw}"
    assert math["typeset"] == math["formulas"], (
        f"{page}: {math['typeset']} of {math['formulas']} formulas typeset by MathJax")
    assert math["mathjax"] == "local", f"{page}: MathJax not loaded from the book: {math}"


# Chapters whose markdown (a `# ` comment line of a jupytext cell) holds `$...$` math.
MATH_CHAPTERS = sorted(
    f"book/{p.stem}.html" for p in (REPO / "book").glob("[0-9][0-9]_*.py")
    if re.search(r"^# .*\$[^$\n]+\$", p.read_text(), re.M))


def test_chapter_math_becomes_mathjax_output(server, browser):
    assert MATH_CHAPTERS, "no chapter with math in its markdown: the check tests nothing"
    for page in MATH_CHAPTERS:
        open_page(browser, f"{server}/{page}")
        math = browser.execute_async_script(TYPESET)
        assert math["mathjax"] == "local", f"{page}: MathJax not served by the book: {math}"
        assert math["containers"] > 0, f"{page}: math in the markdown, no mjx-container"
    browser.get_log("browser")  # checked page by page in the test above


# After MathJax has typeset the page: the visible text, the formulas Sphinx wrote (.math) and
# how many of them hold MathJax output, and where MathJax came from.
TYPESET = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax;
const ready = (mj && mj.startup && mj.startup.promise) || Promise.resolve();
const report = () => {
    const src = Array.from(document.scripts).map(s => s.src).find(s => /tex-chtml/.test(s));
    done({
        text: document.body.innerText,
        formulas: document.querySelectorAll('.math').length,
        typeset: document.querySelectorAll('.math:has(mjx-container)').length,
        containers: document.querySelectorAll('mjx-container').length,
        mathjax: !src ? 'none' : (src.startsWith(location.origin + '/_static/mathjax/')
                                   && mj && mj.version ? 'local' : src),
    });
};
ready.then(report, report);
"""
