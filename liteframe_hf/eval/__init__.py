"""Evaluation: multiple-choice video QA accuracy with per-question latency (`liteframe eval`).

    data.py      manifests (JSONL): reading, checking, the standard MCQ prompt
    run.py       `liteframe eval`: model lookup, the timed question path, scoring, JSON / markdown output
    plot.py      `liteframe eval plot`: accuracy vs latency from one or more runs
    lmms_task.py `liteframe eval lmms-task`: an lmms-eval task for a manifest (scored by the same metric)
Scoring lives in the `mcq_accuracy` evaluate module (`liteframe_hf.metrics`).
"""

from .data import ANSWER_INSTRUCTION, Manifest, ManifestError, Question, load_manifest, mcq_prompt

__all__ = ["ANSWER_INSTRUCTION", "Manifest", "ManifestError", "Question", "load_manifest", "mcq_prompt"]
