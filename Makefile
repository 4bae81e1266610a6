# `make demo`: install everything and transcribe the example recording (a voice no training run has heard)
# with the bundled default model, then show what was said.
# `make test`: install everything and run the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

examples/demo.flac: scripts/make_example.py models/games.py | install
	$(PY) scripts/make_example.py $@

demo: install examples/demo.flac
	$(VENV)/bin/voxprompt transcribe examples/demo.flac --output-dir out --format srt
	@echo "--- what was said (examples/demo.reference.txt):"; cat examples/demo.reference.txt

test: install
	$(PY) -m pytest

bench: install
	$(PY) scripts/benchmark.py
