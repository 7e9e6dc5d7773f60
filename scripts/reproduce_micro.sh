#!/usr/bin/env bash
# Issue 17 end to end: trained LiteFrame-micro vs the teacher VLM on the needle benchmark, on a CPU.
#
#   data -> teacher VLM (LMA) -> CTD -> LiteFrame LMA -> models -> eval of every model -> tables + plot in docs/
#
# Resumable: a stage whose output exists is skipped; a training stage that was killed continues from its last
# checkpoint (--resume_from_checkpoint latest). One log per stage in $RUN/logs/. The plan, the budget and the
# measured pilot step times are in docs/reproduce_micro.md.
#
# Settings (environment):
#   PY            python to use (default .venv/bin/python)
#   RUN           output folder (default outputs/reproduce_micro)
#   BENCH         needle benchmark folder (default $RUN/needle); built there unless it holds every split
#   DOCS          where the tables, JSON and plot go (default docs/reproduce_micro)
#   NEEDLE_ARGS   extra `liteframe data needle` flags (e.g. --videos 3 --haystacks DIR for a tiny run)
#   TEACHER_ARGS, CTD_ARGS, LMA_ARGS   extra flags for the three training recipes (e.g. --max_steps 2)
#   EVAL_ARGS     extra `liteframe eval` flags (default --limit 14: the 2.5 h plan's subset, the first 14
#                 questions of each split for every model; EVAL_ARGS= evaluates whole splits)
#   SPLITS        evaluated splits (default "test test-unseen")
#   TEACHER_FRAMES, LITEFRAME_FRAMES, CTD_FRAMES   frame counts (defaults: the issue's)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/reproduce_micro}
BENCH=${BENCH:-$RUN/needle}
DOCS=${DOCS:-docs/reproduce_micro}
SPLITS=${SPLITS:-"test test-unseen"}
EVAL_ARGS=${EVAL_ARGS-"--limit 14"}
TEACHER_FRAMES=${TEACHER_FRAMES:-"8 16 32 64"}
LITEFRAME_FRAMES=${LITEFRAME_FRAMES:-"8 16 32 64 128"}
CTD_FRAMES=${CTD_FRAMES:-"8 64"}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
LOGS=$RUN/logs
mkdir -p "$LOGS" "$DOCS"

stage() {  # stage NAME DONE_PATH command...: run unless DONE_PATH exists; log to $LOGS/NAME.log
  local name=$1 done=$2
  shift 2
  if [ -e "$done" ]; then
    echo "[$name] done ($done exists), skipped"
    return 0
  fi
  echo "[$name] running, log: $LOGS/$name.log"
  local start=$SECONDS
  if ! "$@" >"$LOGS/$name.log" 2>&1; then
    echo "[$name] FAILED after $((SECONDS - start)) s; last lines of $LOGS/$name.log:" >&2
    tail -n 30 "$LOGS/$name.log" >&2
    exit 1
  fi
  echo "[$name] finished in $((SECONDS - start)) s"
  echo "$name $((SECONDS - start))" >>"$LOGS/stage_seconds.txt"
}

resume() {  # resume OUTPUT_DIR: the flag that continues a killed run, only when it left a complete checkpoint
  # (lma.py / ctd.py refuse 'latest' on a folder without one rather than silently starting over)
  if ls "$1"/checkpoint-*/trainer_state.json >/dev/null 2>&1; then echo "--resume_from_checkpoint latest"; fi
}

# 1. Data: the needle benchmark (every split), unless BENCH already holds it.
stage data "$BENCH/test-unseen/manifest.jsonl" \
  "$PY" -m liteframe_hf.cli data needle --out "$BENCH" ${NEEDLE_ARGS:-}

TRAIN=(--train_data "$BENCH/train/manifest.jsonl" --eval_data "$BENCH/val/manifest.jsonl")

# 2. The teacher VLM: LMA of teacher-vlm-micro (projector + LoRA) on the train questions.
stage teacher_vlm "$RUN/teacher_vlm/train_summary.json" \
  "$PY" training/lma.py --config training/configs/lma_teacher_micro.yaml --output_dir "$RUN/teacher_vlm" \
  "${TRAIN[@]}" $(resume "$RUN/teacher_vlm") ${TEACHER_ARGS:-}

# 3. CTD: liteframe-micro from DINOv2-S on the train videos (val videos held out).
stage ctd "$RUN/ctd/train_summary.json" \
  "$PY" training/ctd.py --config training/configs/ctd_needle_micro.yaml --output_dir "$RUN/ctd" \
  --train_data "$BENCH/train/videos" --eval_data "$BENCH/val/videos" --target_cache "$RUN/ctd/target_cache" \
  $(resume "$RUN/ctd") ${CTD_ARGS:-}

# 4. LiteFrame LMA: the CTD encoder, the teacher VLM's projector as the start, LoRA, 8x the teacher's frames.
stage liteframe_lma "$RUN/liteframe_lma/train_summary.json" \
  "$PY" training/lma.py --config training/configs/lma_liteframe_micro.yaml --output_dir "$RUN/liteframe_lma" \
  "${TRAIN[@]}" --vision_model "$RUN/ctd/student" --init_projector_from "$RUN/teacher_vlm/adapter" \
  $(resume "$RUN/liteframe_lma") ${LMA_ARGS:-}

# 5. The evaluated models as LiteFrame folders.
stage models "$RUN/models/liteframe-micro/reproduce_micro.json" \
  "$PY" -m liteframe_hf.training.reproduce "$RUN"

# 6. One `liteframe eval` run per model and split, at the issue's frame counts.
for split in $SPLITS; do
  for spec in "teacher-vlm-micro:$TEACHER_FRAMES" "teacher-vlm-micro-posthoc:$TEACHER_FRAMES" \
              "liteframe-micro-ctd:$CTD_FRAMES" "liteframe-micro:$LITEFRAME_FRAMES"; do
    model=${spec%%:*}
    frames=${spec#*:}
    # shellcheck disable=SC2086  # frame lists and extra flags are word lists
    stage "eval_${model}_${split}" "$DOCS/eval_${model}_${split}.json" \
      "$PY" -m liteframe_hf.cli eval "$RUN/models/$model" --data "$BENCH/$split/manifest.jsonl" \
      --frames $frames --json "$DOCS/eval_${model}_${split}.json" --no-progress $EVAL_ARGS
  done
done

# 7. Tables and the accuracy-vs-latency plot (the paper's Figure 1), one per split.
for split in $SPLITS; do
  stage "plot_${split}" "$DOCS/accuracy_latency_${split}.png" \
    "$PY" -m liteframe_hf.cli eval plot "$DOCS"/eval_*_"${split}".json --out "$DOCS/accuracy_latency_${split}.png" \
    --markdown "$DOCS/results_${split}.md" --title "needle $split: accuracy vs latency (CPU)"
done
echo "done: tables $DOCS/results_*.md, plots $DOCS/accuracy_latency_*.png, stage times $LOGS/stage_seconds.txt"
