"""`liteframe eval lmms-task`: an lmms-eval task for a multiple-choice video QA manifest.

    liteframe eval lmms-task --data bench_needle/test/manifest.jsonl --out tasks/   # -> tasks/needle_test.yaml
    python -m lmms_eval --model liteframe --model_args pretrained=DIR,num_frames=64 \\
        --tasks needle_test --include_path tasks/ --output_path results/

The task folder holds `<task>.yaml` and `<task>.jsonl`: the manifest's rows, checked by the same rules as
`liteframe eval` (bad rows stop the command, or are left out with --skip-bad), with absolute video paths, read by
lmms-eval's local JSON dataset loader (no Hub access). The YAML points lmms-eval at the functions below: the
same MCQ prompt as `liteframe eval` and scoring by the package's `mcq_accuracy` evaluate module, so the two
tools give the same accuracy for the same answers. Metrics: `mcq_accuracy` (percent, lmms-eval's convention for
video MCQ tasks) and `unparseable` (count of answers without an option letter).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from .data import ANSWER_INSTRUCTION, LETTERS, ManifestError, load_manifest

MODULE = __name__  # lmms-eval imports `!function liteframe_hf.eval.lmms_task.<name>` by absolute module path


# ----------------------------------------------------------------------------- functions the task YAML names
def doc_to_visual(doc: dict) -> list[str]:
    return [doc["video"]]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The MCQ prompt: pre_prompt + question + "A. option" lines + post_prompt (the answer instruction)."""
    kwargs = lmms_eval_specific_kwargs or {}
    options = "\n".join(f"{LETTERS[i]}. {str(o).strip()}" for i, o in enumerate(doc["options"]))
    post = kwargs.get("post_prompt", "\n" + ANSWER_INSTRUCTION)
    return f"{kwargs.get('pre_prompt', '')}{doc['question'].strip()}\n{options}{post}"


def process_results(doc: dict, results: list[str]) -> dict:
    item = {"id": doc["id"], "category": doc.get("category"), "answer": doc["answer"],
            "num_options": len(doc["options"]), "prediction": results[0] if results else ""}
    return {"mcq_accuracy": item, "unparseable": item}


def _score(items: list[dict]) -> dict:
    from ..metrics import load_mcq_accuracy

    return load_mcq_accuracy().compute(predictions=[i["prediction"] for i in items],
                                       references=[i["answer"] for i in items],
                                       num_options=[i["num_options"] for i in items])


def aggregate_accuracy(items: list[dict]) -> float:
    from loguru import logger

    result = _score(items)
    categories = sorted({i["category"] for i in items if i["category"]})
    for category in categories:
        part = _score([i for i in items if i["category"] == category])
        logger.info(f"mcq_accuracy {category}: {100 * part['accuracy']:.1f} % (n {part['total']})")
    logger.info(f"mcq_accuracy: {100 * result['accuracy']:.1f} % [95 % CI {100 * result['ci_low']:.1f}, "
                f"{100 * result['ci_high']:.1f}], chance {100 * result['chance']:.1f} %, n {result['total']}")
    return 100 * result["accuracy"]


def aggregate_unparseable(items: list[dict]) -> int:
    return int(_score(items)["unparseable"])


# ------------------------------------------------------------------------------------------- task writing
def task_name_for(manifest: Path) -> str:
    stem = manifest.parent.name if manifest.stem == "manifest" else manifest.stem
    return "needle_" + re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower()


def write_task(data: str | Path, out: str | Path, task: str | None = None, skip_bad: bool = False,
               max_new_tokens: int = 16) -> Path:
    """Write `<out>/<task>.yaml` + `<out>/<task>.jsonl` for a manifest; returns the YAML's path."""
    manifest = load_manifest(data, skip_bad=skip_bad)
    task = task or task_name_for(manifest.path)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", task):
        raise ValueError(f"task name {task!r}: use letters, digits, '_' and '-' only")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = out / f"{task}.jsonl"
    with rows.open("w", encoding="utf-8") as handle:
        for q in manifest.questions:
            handle.write(json.dumps({"id": q.id, "video": str(q.video), "question": q.question, "options": q.options,
                                     "answer": q.answer, "category": q.category}) + "\n")

    def fn(name: str) -> yaml.ScalarNode:
        return yaml.ScalarNode("!function", f"{MODULE}.{name}")

    config = {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(rows.resolve())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_visual": fn("doc_to_visual"),
        "doc_to_text": fn("doc_to_text"),
        "doc_to_target": "answer",
        "generation_kwargs": {"max_new_tokens": max_new_tokens, "temperature": 0, "do_sample": False, "num_beams": 1},
        "process_results": fn("process_results"),
        "metric_list": [
            {"metric": "mcq_accuracy", "aggregation": fn("aggregate_accuracy"), "higher_is_better": True},
            {"metric": "unparseable", "aggregation": fn("aggregate_unparseable"), "higher_is_better": False},
        ],
        "lmms_eval_specific_kwargs": {"default": {"pre_prompt": "", "post_prompt": "\n" + ANSWER_INSTRUCTION}},
        "metadata": [{"version": 0.0, "manifest": str(manifest.path.resolve()), "questions": len(manifest.questions),
                      "skipped_rows": len(manifest.skipped)}],
    }

    class _Dumper(yaml.SafeDumper):
        pass

    _Dumper.add_representer(yaml.ScalarNode, lambda dumper, node: node)
    path = out / f"{task}.yaml"
    header = f"# lmms-eval task written by `liteframe eval lmms-task` from {manifest.path}\n"
    path.write_text(header + yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data", required=True, help="manifest JSONL")
    parser.add_argument("--out", required=True, type=Path, help="folder to pass to lmms-eval's --include_path")
    parser.add_argument("--task", default=None, help="task name (default: needle_<split>)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--skip-bad", action="store_true", help="leave out bad rows instead of stopping")


def main(args: argparse.Namespace) -> int:
    try:
        path = write_task(args.data, args.out, task=args.task, skip_bad=args.skip_bad,
                          max_new_tokens=args.max_new_tokens)
    except (ManifestError, ValueError) as error:
        print(f"liteframe eval lmms-task: {error}")
        return 2
    task = path.stem
    print(f"wrote {path} (+ {task}.jsonl)\nrun: python -m lmms_eval --model liteframe --model_args "
          f"pretrained=MODEL_DIR,num_frames=64 --tasks {task} --include_path {args.out} --output_path RESULTS")
    return 0
