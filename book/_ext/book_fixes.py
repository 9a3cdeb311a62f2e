"""Small Sphinx fixes for this book, found by the browser check (tests/test_browser.py).

sphinx-thebe adds its configuration script at every `env-before-read-docs` event, which
Jupyter Book fires more than once per build; the second copy re-declares `const
THEBE_JS_URL` and the browser reports a SyntaxError on every page. Keep one copy of each
script.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename None vs "" (an inline script either way)
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    # Early: html-page-context stops at the first handler that returns a value.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
