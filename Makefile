# Set-up, demo and tests on a fresh machine. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup demo demo-landmark app test clean

$(BIN)/talking-head: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/talking-head

# The main job: speech to a talking-head mp4 with the bundled DAE-Talker model.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/talking-head generate --audio assets/jfk.flac --steps 25 --size 256 -o demo.mp4
	@echo "wrote demo.mp4"

# Any portrait: the bundled landmark pipeline animates a NASA portrait (public domain) with JFK's voice.
demo-landmark: setup
	HF_HUB_OFFLINE=1 $(BIN)/talking-head generate --pipeline landmark --audio assets/jfk.flac \
		--image assets/astronaut.jpg --steps 15 --sampler dpm++ --preview demo-landmarks.mp4 -o demo-landmark.mp4
	@echo "wrote demo-landmark.mp4 and its landmark preview demo-landmarks.mp4"

# The Gradio demo on http://127.0.0.1:7860
app: setup
	HF_HUB_OFFLINE=1 $(BIN)/talking-head app

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo.mp4 demo-landmark.mp4 demo-landmarks.mp4
