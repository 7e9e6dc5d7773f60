#!/usr/bin/env bash
# Issue 17 end to end: trained LiteFrame-micro vs the teacher VLM on the needle benchmark, on a CPU.
#
#   data -> teacher VLM (LMA) -> CTD -> models -> LiteFrame LMA -> models -> eval of every model -> tables + plot
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
#   EVAL_PLAN     the `liteframe eval` runs, one per line: MODEL SPLIT LIMIT FRAMES... (default: the measured plan of
#                 docs/reproduce_micro.md: main points on the first 80 test / 40 test-unseen questions, costly ones on 20)
#   EVAL_ARGS     extra `liteframe eval` flags; EVAL_THREADS torch threads per eval (default 2)
#   SPLITS        splits that get a table and a plot (default "test test-unseen")
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/reproduce_micro}
BENCH=${BENCH:-$RUN/needle}
DOCS=${DOCS:-docs/reproduce_micro}
SPLITS=${SPLITS:-"test test-unseen"}
EVAL_ARGS=${EVAL_ARGS:-}
EVAL_THREADS=${EVAL_THREADS:-2}
EVAL_PLAN=${EVAL_PLAN:-"
teacher-vlm-micro         test        80 8 16
liteframe-micro           test        80 8 16 64
liteframe-micro           test        40 32
teacher-vlm-micro         test        20 8
liteframe-micro           test        20 64
teacher-vlm-micro         test-unseen 40 8 16
liteframe-micro           test-unseen 40 8 16 64
liteframe-micro-ctd       test        20 8 64
teacher-vlm-micro-posthoc test        20 8 16 32 64
teacher-vlm-micro         test        20 32 64
liteframe-micro           test        20 32 128
"}
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

TRAIN=(--train_data "$BENCH/train/manifest_grounded.jsonl" --eval_data "$BENCH/val/manifest.jsonl")
export ACCELERATE_MIXED_PRECISION=${ACCELERATE_MIXED_PRECISION:-bf16}  # both LMA stages under bf16 autocast

# 2. The teacher VLM: LMA of teacher-vlm-micro (projector + LoRA) on the train questions + grounded rows.
stage teacher_vlm "$RUN/teacher_vlm/train_summary.json" \
  "$PY" training/lma.py --config training/configs/lma_teacher_micro.yaml --output_dir "$RUN/teacher_vlm" \
  "${TRAIN[@]}" $(resume "$RUN/teacher_vlm") ${TEACHER_ARGS:-}

# 3. CTD: liteframe-micro from DINOv2-S on the train videos (val videos held out).
stage ctd "$RUN/ctd/train_summary.json" \
  "$PY" training/ctd.py --config training/configs/ctd_needle_micro.yaml --output_dir "$RUN/ctd" \
  --train_data "$BENCH/train/videos" --eval_data "$BENCH/val/videos" --target_cache "$RUN/ctd/target_cache" \
  $(resume "$RUN/ctd") ${CTD_ARGS:-}

# 4. The weights set so far ($RUN/weights) and the models it makes: the teacher VLM, its post-hoc variant and
#    liteframe-micro-ctd (the CTD encoder in the teacher VLM), which is the base of LiteFrame's LMA.
stage models_ctd "$RUN/models/liteframe-micro-ctd/liteframe_micro.json" \
  "$PY" -m liteframe_hf.training.reproduce "$RUN"

# 5. LiteFrame LMA: new LoRA on liteframe-micro-ctd (projector from the teacher's), 8x the teacher's frames.
stage liteframe_lma "$RUN/liteframe_lma/train_summary.json" \
  "$PY" training/lma.py --config training/configs/lma_liteframe_micro.yaml --output_dir "$RUN/liteframe_lma" \
  "${TRAIN[@]}" --base_model "$RUN/models/liteframe-micro-ctd" $(resume "$RUN/liteframe_lma") ${LMA_ARGS:-}

# 5b. LiteFrame-micro itself (the weights set now complete).
stage models "$RUN/models/liteframe-micro/liteframe_micro.json" \
  "$PY" -m liteframe_hf.training.reproduce "$RUN"

# 6. Evaluation: one `liteframe eval` run per line of EVAL_PLAN, each on the first LIMIT questions of its split (the
#    same questions for every model). The comparison's main points get the larger subsets; the costly ones (the
#    teacher VLM's long prompts) a smaller one. Latency pairs run one at a time like everything here.
for_plan() {
  echo "$EVAL_PLAN" | while read -r model split limit frames; do
    [ -n "$model" ] || continue
    echo "$model" "$split" "$limit" "$frames" "eval_${model}_${split}_n${limit}_f${frames// /-}"
  done
}
for_plan | while read -r model split limit frames name; do
  # shellcheck disable=SC2086  # frame lists are word lists
  stage "$name" "$DOCS/$name.json" \
    "$PY" -m liteframe_hf.cli eval "$RUN/models/$model" --data "$BENCH/$split/manifest.jsonl" --limit "$limit" \
    --frames ${frames//-/ } --threads "$EVAL_THREADS" --json "$DOCS/$name.json" --no-progress $EVAL_ARGS </dev/null
done

# 7. Tables and the accuracy-vs-latency plot (the paper's Figure 1), one per split.
for split in $SPLITS; do
  stage "plot_${split}" "$DOCS/accuracy_latency_${split}.png" \
    "$PY" -m liteframe_hf.cli eval plot "$DOCS"/eval_*_"${split}"_n*.json --out "$DOCS/accuracy_latency_${split}.png" \
    --markdown "$DOCS/results_${split}.md" --title "needle $split: accuracy vs latency (CPU)"
done
echo "done: tables $DOCS/results_*.md, plots $DOCS/accuracy_latency_*.png, stage times $LOGS/stage_seconds.txt"
