"""`liteframe` console script: one entry point, one module per command.

Each command module exposes `add_arguments(parser)` and `main(args) -> int | None`; modules are imported
only when their command runs, so `liteframe --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command words, module, one-line help). Add a row to add a command.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("demo",), "liteframe_hf.demo", "run the embedded default micro model on a real MP4: shapes, tokens per frame, timings"),
    (("chat",), "liteframe_hf.chat", "talk with a LiteFrame video LLM about one video in the terminal (the video is encoded once)"),
    (("bench", "arch"), "liteframe_hf.bench.arch", "params, paper-rule TFLOPs and latency of the encoder variants"),
    (("bench", "encoder"), "liteframe_hf.bench.encoder", "LiteFrame encoder speed work: shipped vs textbook implementation (eager attention, channels-first convs), same weights"),
    (("bench", "train"), "liteframe_hf.training.bench", "CTD training-step throughput, teacher/student/optimizer split, peak memory, target-cache speed-up"),
    (("bench", "step"), "liteframe_hf.training.bench_step", "one LMA/alignment training step of a micro video LLM per precision setting and OpenMP wait policy"),
    (("train", "plot"), "liteframe_hf.training.plot", "plot train/eval curves of training runs (their metrics.csv) into a PNG"),
    (("bench", "e2e"), "liteframe_hf.bench.e2e", "end-to-end latency (encode + LLM prefill): baseline vs post-hoc WAP vs LiteFrame"),
    (("bench", "decode"), "liteframe_hf.bench.decode", "video decoding: LiteFrame's PyAV reader (exact / keyframes) vs transformers' load_video, same clip plan"),
    (("assets", "fetch"), "liteframe_hf.assets", "fetch the real offline assets (DINOv2-S, SmolLM2-135M, sample videos) into the cache"),
    (("assets", "list"), "liteframe_hf.assets_list", "show which real assets are cached, with sizes and paths"),
    (("probe",), "liteframe_hf.probe", "linear probe: is an object's identity in a model's frozen visual tokens (encoder, projector)?"),
    (("data", "needle"), "liteframe_hf.data.needle", "build the long-video QA needle benchmark (real footage + captioned cut-outs) into a folder"),
    (("data", "grounded"), "liteframe_hf.data.grounded", "short clips with one captioned cut-out in view, many views per object (CTD, alignment, LMA, recognition)"),
    (("convert",), "liteframe_hf.convert", "convert an InternVL3-*-hf checkpoint into a LiteFrame checkpoint (student initialised from InternViT)"),
    (("push",), "liteframe_hf.hub", "publish a LiteFrame model, its vision encoder or a LoRA adapter to the Hub (or --dry-run into a folder)"),
    # `eval plot` / `compare` / `lmms-task` before `eval`: the `eval` group then also stands for `liteframe eval MODEL`.
    (("eval", "plot"), "liteframe_hf.eval.plot", "plot accuracy vs latency of one or more `liteframe eval --json` runs"),
    (("eval", "compare"), "liteframe_hf.eval.compare", "one point of a `liteframe eval --json` run against another's on the same questions: paired accuracy difference with CI, latency ratio"),
    (("eval", "lmms-task"), "liteframe_hf.eval.lmms_task", "write an lmms-eval task (YAML + checked JSONL) for a QA manifest"),
    (("eval",), "liteframe_hf.eval.run", "multiple-choice video QA accuracy (95 % CI) and per-question latency at several frame counts"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liteframe", description="LiteFrame tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, help_text in COMMANDS:
        parent = subparsers
        for depth, word in enumerate(words[:-1]):
            key = " ".join(words[: depth + 1])
            if key not in groups:
                group = parent.add_parser(word, help=f"{word} commands")
                groups[key] = group.add_subparsers(dest=f"{word}_command", required=True)
            parent = groups[key]
        if " ".join(words) in groups:  # also a group (`eval` and `eval plot`): its entry stands for both
            continue
        sub = parent.add_parser(words[-1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        # Arguments are declared by the module itself; import lazily only for the command being parsed.
        sub.set_defaults(_words=words)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass finds the command; second pass parses its own arguments.
    words = _match_command(argv)
    if words is None:
        parser.parse_args(argv)  # prints usage / help and exits
        return 2
    module = importlib.import_module(dict((w, m) for w, m, _ in COMMANDS)[words])
    # The module docstring is the command's --help text: keep its examples and bullets on their own lines.
    sub = argparse.ArgumentParser(prog="liteframe " + " ".join(words), description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(sub)
    args = sub.parse_args(argv[len(words) :])
    return int(module.main(args) or 0)


def _match_command(argv: list[str]) -> tuple[str, ...] | None:
    for words, _, _ in sorted(COMMANDS, key=lambda row: -len(row[0])):
        if tuple(argv[: len(words)]) == words:
            return words
    return None


if __name__ == "__main__":
    sys.exit(main())
