# Two commands (see README): `make book` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned exactly: these builds install from local disk in about a minute.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup book test clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[book,test]"
	touch $@

# Execute every chapter with papermill at the default profile, then render the HTML book.
book: setup
	$(BIN)/python -m posinfo.run --book
	$(BIN)/jupyter-book build . --warningiserror --keep-going

# Unit tests of lib, then nbval of every chapter at the smoke profile (fresh model cache).
test: setup
	POSINFO_PROFILE=smoke POSINFO_CACHE=$$(mktemp -d) $(BIN)/python -m pytest tests \
	  --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg book/ -q

clean:
	rm -rf _build
