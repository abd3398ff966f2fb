# The two commands in the README: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime + the dlib landmark model (face_recognition_models carries the 100 MB file).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[landmarks]'
	touch $@

# Everything the tests need: runtime, TensorFlow for convert/, pytest.
$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(PIP) install -q -e '.[landmarks,convert,dev]'
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/dfer-edge predict samples/astronaut.jpg

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
