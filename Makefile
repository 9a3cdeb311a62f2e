# Two commands (see README): `make book` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned exactly: these builds install from local disk in about a minute.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup book html test browser clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[book,test]"
	touch $@

# Execute every chapter with papermill at the default profile, then render the HTML book.
book: setup
	$(BIN)/python -m posinfo.run --book
	$(MAKE) html

# Render the already executed notebooks (no training): verdict table, then Jupyter Book.
html: setup
	$(BIN)/python -m posinfo.report
	$(BIN)/jupyter-book build . --warningiserror --keep-going

# Unit tests of lib, nbval of every chapter at the smoke profile (fresh model cache), and the
# rendered HTML of the committed chapters opened in headless Chromium.
test: setup browser
	$(MAKE) html
	POSINFO_BROWSER_REQUIRED=1 POSINFO_PROFILE=smoke POSINFO_CACHE=$$(mktemp -d) \
	  $(BIN)/python -m pytest tests --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  book/ -q --durations=10

# Debian's chromium and chromedriver for the browser check (root, or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

clean:
	rm -rf _build
