# Set-up, demo and tests on a fresh machine. Everything installs into .venv: the demos get what they need
# (the face extra: dlib, OpenCV; the app extra: gradio), `make test` the dev extra on top.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup demo demo-landmark app test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"

# One stamp per extra installed, redone when the project's requirements change.
$(VENV)/.installed-%: pyproject.toml requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$*]"
	touch $@

setup: $(VENV)/.installed-face

# The main job: speech to a talking-head mp4 with the bundled DAE-Talker model.
demo: $(VENV)/.installed-face
	HF_HUB_OFFLINE=1 $(BIN)/talking-head generate --audio assets/jfk.flac --size 256 -o demo.mp4
	@echo "wrote demo.mp4"

# Any portrait: the bundled landmark pipeline animates a NASA portrait (public domain) with JFK's voice.
demo-landmark: $(VENV)/.installed-face
	HF_HUB_OFFLINE=1 $(BIN)/talking-head generate --pipeline landmark --audio assets/jfk.flac \
		--image assets/astronaut.jpg --preview demo-landmarks.mp4 -o demo-landmark.mp4
	@echo "wrote demo-landmark.mp4 and its landmark preview demo-landmarks.mp4"

# The Gradio demo on http://127.0.0.1:7860
app: $(VENV)/.installed-app
	HF_HUB_OFFLINE=1 $(BIN)/talking-head app

# The whole suite; the 10 slowest tests are listed at the end. `pip check` first: the dev extra brings mediapipe, whose
# opencv-contrib-python shares the cv2 module with the project's opencv-python-headless.
test: $(VENV)/.installed-dev
	$(BIN)/pip check
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest --durations=10

clean:
	rm -rf $(VENV) demo.mp4 demo-landmark.mp4 demo-landmarks.mp4
