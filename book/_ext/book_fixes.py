"""Small Sphinx fixes for this book, found by the browser check (tests/test_browser.py).

sphinx-thebe adds its configuration script at every `env-before-read-docs` event, which
Jupyter Book fires more than once per build; the second copy re-declares `const
THEBE_JS_URL` and the browser reports a SyntaxError on every page. Keep one copy of each
script.

Sphinx loads MathJax only on pages whose own text has math, but every page's navigation
shows the other pages' titles: a title with math stayed raw TeX (`\\(N\\)`) on the pages
without. Load MathJax (served by the book, see _config.yml) on every page.

The redirect index.html that sphinx-external-toc writes is one bare <meta> line: with no icon
link the browser asks for /favicon.ico, a 404 in the console. Write a complete redirect page
(icon, title, a link for readers whose browser does not follow it) before it does.
"""
from html import escape
from pathlib import Path

REDIRECT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Refresh" content="0; url={target}">
<link rel="icon" href="_static/{icon}">
<title>{title}</title>
</head>
<body><p><a href="{target}">{title}</a></p></body>
</html>
"""


def _write_redirect_index(app, exception):
    if exception is not None or app.builder.format != "html" or app.config.root_doc == "index":
        return
    Path(app.outdir, "index.html").write_text(REDIRECT.format(
        target=f"{app.config.root_doc}.html", title=escape(app.config.html_title or ""),
        icon=Path(app.config.html_favicon or "favicon.svg").name), encoding="utf8")


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename None vs "" (an inline script either way)
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: the list is the builder's own, to which later handlers (sphinx.ext.mathjax,
    # which loads MathJax only on pages with math) still add; a new list would drop those.
    context["script_files"][:] = unique


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("build-finished", _write_redirect_index, priority=400)  # before etoc's (500)
    # Early: html-page-context stops at the first handler that returns a value.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
