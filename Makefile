# Two commands (see README): `make book` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Every package comes from requirements.lock, at its exact version and file hash; the project
# itself is installed editable on top, with the lock's setuptools (no isolated build, which
# would fetch the newest setuptools). `make lock` refreshes the lock (see its rule).
LOCK   := requirements.lock

.PHONY: setup lock book html test browser mathjax gpu-wheels clean
setup: $(VENV)/.installed

$(VENV)/.installed: $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The newest releases pyproject.toml's ranges allow, resolved in a fresh virtual environment,
# written into requirements.lock with the sha256 of every file pip chose (pip's installation
# report); then `make setup` installs them. Re-execute the book after a refresh.
# The scratch venv is named when the rule runs (one shell), not each time make reads this file.
lock:
	d=$$(mktemp -d /tmp/posinfo-lock-XXXXXX) && \
	$(PYTHON) -m venv $$d && \
	$$d/bin/python -m pip install -q --disable-pip-version-check -e ".[book,test]" && \
	$$d/bin/python -m pip freeze --all --exclude-editable > $$d/pins.txt && \
	$$d/bin/python -m pip install -q --disable-pip-version-check --dry-run \
	  --ignore-installed --no-deps --report $$d/report.json -r $$d/pins.txt && \
	$$d/bin/python -m posinfo.lockfile $$d/report.json > $$d/lock && \
	mv $$d/lock $(LOCK) && rm -rf $$d
	@echo "$$(grep -c '==' $(LOCK)) distributions pinned in $(LOCK)"

# Execute every chapter with papermill at the default profile, then render the HTML book.
book: setup
	$(BIN)/python -m posinfo.run --book
	$(MAKE) html

# Render the already executed notebooks (no training): verdict table, then Jupyter Book.
html: setup mathjax
	$(BIN)/python -m posinfo.tools.report
	$(BIN)/jupyter-book build . --warningiserror --keep-going

# Unit tests of lib, nbval of every chapter at the smoke profile (fresh model cache), and the
# rendered HTML of the committed chapters opened in headless Chromium.
test: setup browser
	$(MAKE) html
	POSINFO_BROWSER_REQUIRED=1 POSINFO_PROFILE=smoke POSINFO_CACHE=$$(mktemp -d) \
	  $(BIN)/python -m pytest tests --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  book/ --ignore=book/gpu -q --durations=10

# Debian's chromium and chromedriver for the browser check (root, or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

# MathJax served by the book itself (offline readers see math, not raw TeX): MathJax's own npm
# package, unpacked into the ignored book/_vendor, which _config.yml adds to the static files.
# Without npm (or if npm fails), PyPI's django-static-mathjax: its own build of MathJax 3.2.2.
# MathJax is Apache-2.0; about 7 MB of it is kept (TeX input, CommonHTML output, menu, a11y).
MATHJAX_VERSION := 3.2.2
MATHJAX_DIR     := book/_vendor/mathjax
mathjax: $(MATHJAX_DIR)/tex-chtml.js

$(MATHJAX_DIR)/tex-chtml.js: | $(VENV)/.installed
	rm -rf $(MATHJAX_DIR) && tmp=$$(mktemp -d) && \
	if command -v npm >/dev/null && (cd $$tmp && npm pack -q mathjax@$(MATHJAX_VERSION) >/dev/null \
	    && tar xzf mathjax-$(MATHJAX_VERSION).tgz); then \
	  src=$$tmp/package; \
	else \
	  $(BIN)/python -m pip download -q --disable-pip-version-check --no-deps -d $$tmp \
	    django-static-mathjax==$(MATHJAX_VERSION).1 && \
	  $(BIN)/python -m zipfile -e $$tmp/*.whl $$tmp/whl && src=$$tmp/whl/mathjax/static/mathjax; \
	fi && \
	mkdir -p $(MATHJAX_DIR)/output $(MATHJAX_DIR)/input && cp $$src/LICENSE $(MATHJAX_DIR)/ && \
	cp -r $$src/es5/ui $$src/es5/a11y $$src/es5/sre $$src/es5/adaptors $(MATHJAX_DIR)/ && \
	cp -r $$src/es5/input/tex $(MATHJAX_DIR)/input/ && cp -r $$src/es5/output/chtml $(MATHJAX_DIR)/output/ && \
	cp $$src/es5/tex-chtml.js $(MATHJAX_DIR)/ && rm -rf $$tmp

# Wheels the GPU machine's image lacks (lib/posinfo/tools/gpu_wheels.txt), for CPython $(PYVER)
# on x86-64 Linux, into $(WHEELS): carried to it and installed there with `pip install
# --no-index --no-deps --target` before `python -m posinfo.tools.gpu_book` (see Reproduce).
# `make gpu-wheels PYVER=3.11 WHEELS=.whl311` fetches the same set for a local simulation.
PYVER     ?= 3.12
WHEELS    ?= .whl
MANYLINUX := manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
             manylinux2014_x86_64 manylinux1_x86_64
gpu-wheels:
	test -n "$(WHEELS)" && rm -rf $(WHEELS)
	$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
	  --python-version $(PYVER) --implementation cp $(addprefix --platform ,$(MANYLINUX)) \
	  -d $(WHEELS) -r lib/posinfo/tools/gpu_wheels.txt
	@echo "$$(ls $(WHEELS)/*.whl | wc -l) wheels, $$(du -sh $(WHEELS) | cut -f1) in $(WHEELS)/"

clean:
	rm -rf _build
