#!/usr/bin/env bash
# The micro models end to end on a CPU: trained LiteFrame-micro(-S) vs the teacher VLM on the needle benchmark.
#
#   first chain (issue 17):   data -> teacher VLM (LMA) -> CTD -> models -> LiteFrame LMA -> models
#   recognition (22-23):      grounded clips -> teacher VLM: alignment, caption stage -> models ->
#                             LiteFrame-micro-S: alignment + token distillation from the teacher, caption stage ->
#                             both VLMs' multiple-choice stage on the needle questions -> models
#   then:                     eval of every model of EVAL_PLAN -> tables + plot per split
#
# Resumable: a stage whose output exists is skipped; a training stage that was killed continues from its last
# checkpoint (--resume_from_checkpoint latest). One log per stage in $RUN/logs/. The plan, the budget and the
# measured time of every stage are in docs/reproduce_micro.md.
#
# Settings (environment):
#   PY            python to use (default .venv/bin/python)
#   RUN           output folder (default outputs/reproduce_micro)
#   CHAINS        "first recognition" (default) or one of them; the recognition chain alone starts from the shipped
#                 teacher VLM (its first LMA stage) when RUN has no teacher_vlm/ of its own
#   BENCH         needle benchmark folder (default $RUN/needle); built there unless it holds every split
#   DOCS          where the tables, JSON and plot go (default docs/reproduce_micro)
#   NEEDLE_ARGS   extra `liteframe data needle` flags (e.g. --videos 3 --haystacks DIR for a tiny run)
#   GROUNDED_ARGS extra `liteframe data grounded` flags (e.g. --objects 4 --haystacks DIR); GROUNDED_VIEWS the
#                 train and val clips per object (default "80 6"); PARTIAL the share of LiteFrame-micro-S's clips whose
#                 cut-out is on screen for only part of the clip (default 0.5)
#   TEACHER_ARGS, CTD_ARGS, LMA_ARGS   extra flags for the first chain's three training recipes (e.g. --max_steps 2)
#   ALIGN_ARGS, CAPTION_ARGS, MCQ_ARGS extra flags for the recognition chain's alignment, caption and
#                 multiple-choice stages (both VLMs)
#   EVAL_PLAN     the `liteframe eval` runs, one per line: MODEL SPLIT LIMIT FRAMES... (default: issue 23's points,
#                 the same first 236 test / 200 test-unseen questions for every model)
#   EVAL_ARGS     extra `liteframe eval` flags (default --scoring likelihood --reuse-video); EVAL_THREADS torch
#                 threads per eval (default 2)
#   SPLITS        splits that get a table and a plot (default "test test-unseen")
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/reproduce_micro}
BENCH=${BENCH:-$RUN/needle}
DOCS=${DOCS:-docs/reproduce_micro}
SPLITS=${SPLITS:-"test test-unseen"}
CHAINS=${CHAINS:-"first recognition"}
EVAL_ARGS=${EVAL_ARGS:-"--scoring likelihood --reuse-video"}
EVAL_THREADS=${EVAL_THREADS:-2}
# issue 23's points: the teacher VLM at 8-32 frames, LiteFrame-micro-S at 8-128, post-hoc WAP at 8 and 64
EVAL_PLAN=${EVAL_PLAN:-"
teacher-vlm-micro-qa         test        236 8 16 32
liteframe-micro-s-qa         test        236 8 16 32 64 128
teacher-vlm-micro-qa-posthoc test        236 8 64
teacher-vlm-micro-qa         test-unseen 200 8 16
liteframe-micro-s-qa         test-unseen 200 8 64
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

if [[ " $CHAINS " == *" first "* ]]; then
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
fi

if [[ " $CHAINS " == *" recognition "* ]]; then
  # 7. Recognition. Grounded clips (one cut-out from the closed vocabulary on held-out footage per clip, its caption
  #    and box): in view the whole clip for the teacher VLM, partly on screen in a PARTIAL share of LiteFrame-micro-S's.
  G=$RUN/grounded GP=$RUN/grounded_partial
  read -r TRAIN_VIEWS VAL_VIEWS <<<"${GROUNDED_VIEWS:-80 6}"
  grounded() {  # grounded NAME OUT SPLIT VIEWS [flags]
    stage "$1" "$2/$3/manifest.jsonl" "$PY" -m liteframe_hf.cli data grounded --out "$2" --split "$3" --views "$4" \
      "${@:5}" ${GROUNDED_ARGS:-}
  }
  grounded grounded_val "$G" val "$VAL_VIEWS"
  grounded grounded_train "$G" train "$TRAIN_VIEWS"
  grounded grounded_partial_val "$GP" val "$VAL_VIEWS" --partial "${PARTIAL:-0.5}"
  grounded grounded_partial_train "$GP" train "$TRAIN_VIEWS" --partial "${PARTIAL:-0.5}"
  ON() { echo --train_data "$1/train/manifest.jsonl" --eval_data "$1/val/manifest.jsonl"; }
  FEATURES=(--feature_cache "$RUN/teacher_align/features")  # the frozen stems' tokens, shared by both alignments

  # 8. The teacher VLM's recognition: DINOv2-S's last blocks + projector by token alignment to the captions, then LoRA
  #    + projector on the captions; the first teacher VLM (this run's or the shipped one) is the start.
  stage models_teacher "$RUN/models/teacher-vlm-micro/liteframe_micro.json" \
    "$PY" -m liteframe_hf.training.reproduce "$RUN" --models teacher-vlm-micro
  stage teacher_align_blocks "$RUN/teacher_align_blocks/train_summary.json" \
    "$PY" training/align.py --config training/configs/align_teacher_micro_blocks.yaml \
    --output_dir "$RUN/teacher_align_blocks" --base_model "$RUN/models/teacher-vlm-micro" $(ON "$G") "${FEATURES[@]}" \
    $(resume "$RUN/teacher_align_blocks") ${ALIGN_ARGS:-}
  stage teacher_caption_blocks "$RUN/teacher_caption_blocks/train_summary.json" \
    "$PY" training/lma.py --config training/configs/lma_caption_teacher_micro_blocks.yaml \
    --output_dir "$RUN/teacher_caption_blocks" --base_model "$RUN/teacher_align_blocks/aligned" $(ON "$G") \
    $(resume "$RUN/teacher_caption_blocks") ${CAPTION_ARGS:-}

  # 9. LiteFrame-micro-S: DINOv2-S's first blocks with in-network token merging, started in the caption-stage teacher
  #    VLM (its projector and LoRA, as the paper's LMA starts from the teacher's projector); the blocks after the
  #    first merger trained by token alignment and compressed-token distillation from the aligned teacher, on partly
  #    shown cut-outs; then its own caption stage.
  stage models_recognition "$RUN/models/liteframe-micro-s-base/liteframe_micro.json" \
    "$PY" -m liteframe_hf.training.reproduce "$RUN" --models liteframe-micro-s-base
  stage liteframe_s_align "$RUN/liteframe_s_align/train_summary.json" \
    "$PY" training/align.py --config training/configs/align_liteframe_micro_s_partial.yaml \
    --output_dir "$RUN/liteframe_s_align" --base_model "$RUN/models/liteframe-micro-s-base" $(ON "$GP") \
    "${FEATURES[@]}" --distill_from "$RUN/teacher_align_blocks/aligned" $(resume "$RUN/liteframe_s_align") \
    ${ALIGN_ARGS:-}
  stage liteframe_s_lma "$RUN/liteframe_s_lma/train_summary.json" \
    "$PY" training/lma.py --config training/configs/lma_caption_liteframe_micro_s_partial.yaml \
    --output_dir "$RUN/liteframe_s_lma" --base_model "$RUN/liteframe_s_align/aligned" $(ON "$GP") \
    $(resume "$RUN/liteframe_s_lma") ${CAPTION_ARGS:-}

  # 10. Both VLMs' multiple-choice stage: new LoRA on the caption-stage model (its chain merged) on the needle train
  #     questions + grounded rows, the teacher at 8-16 frames, LiteFrame-micro-S at 64.
  for pair in "teacher_mcq lma_mcq_teacher_micro teacher_caption_blocks" \
              "liteframe_s_mcq lma_mcq_liteframe_micro_s liteframe_s_lma"; do
    read -r out recipe base <<<"$pair"
    stage "$out" "$RUN/$out/train_summary.json" \
      "$PY" training/lma.py --config "training/configs/$recipe.yaml" --output_dir "$RUN/$out" \
      --base_model "$RUN/$base/merged" "${TRAIN[@]}" $(resume "$RUN/$out") ${MCQ_ARGS:-}
  done
  stage models_qa "$RUN/models/liteframe-micro-s-qa/liteframe_micro.json" \
    "$PY" -m liteframe_hf.training.reproduce "$RUN"
fi

# 11. Evaluation: one `liteframe eval` run per line of EVAL_PLAN, each on the first LIMIT questions of its split (the
#     same questions for every model), with its latency in the same run; one eval at a time, like everything here.
for_plan() {  # one line per eval: MODEL SPLIT LIMIT FRAMES(dash-joined, one word) NAME
  echo "$EVAL_PLAN" | while read -r model split limit frames; do
    [ -n "$model" ] || continue
    echo "$model" "$split" "$limit" "${frames// /-}" "eval_${model}_${split}_n${limit}_f${frames// /-}"
  done
}
for_plan | while read -r model split limit frames name; do
  # shellcheck disable=SC2086  # frame lists are word lists
  stage "$name" "$DOCS/$name.json" \
    "$PY" -m liteframe_hf.cli eval "$RUN/models/$model" --data "$BENCH/$split/manifest.jsonl" --limit "$limit" \
    --frames ${frames//-/ } --threads "$EVAL_THREADS" --json "$DOCS/$name.json" --no-progress $EVAL_ARGS </dev/null
done

# 12. Tables and the accuracy-vs-latency plot (the paper's Figure 1, its latency protocol: video encoding + LLM
#     prefill of a video's first question), one per split, over this plan's evals only (DOCS may hold other runs').
for split in $SPLITS; do
  mapfile -t evals < <(for_plan | while read -r _ s _ _ name; do [ "$s" = "$split" ] && echo "$DOCS/$name.json"; done)
  [ ${#evals[@]} -gt 0 ] || continue
  stage "plot_${split}" "$DOCS/accuracy_latency_${split}.png" \
    "$PY" -m liteframe_hf.cli eval plot "${evals[@]}" --latency encode_prefill \
    --out "$DOCS/accuracy_latency_${split}.png" --markdown "$DOCS/results_${split}.md" \
    --title "needle $split: accuracy vs latency (CPU)"
done
echo "done: tables $DOCS/results_*.md, plots $DOCS/accuracy_latency_*.png, stage times $LOGS/stage_seconds.txt"
