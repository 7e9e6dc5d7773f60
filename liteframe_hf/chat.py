"""`liteframe chat VIDEO`: talk with a LiteFrame video LLM about one video, in the terminal.

    liteframe chat clip.mp4                                   # the embedded LiteFrame-micro, 64 frames
    liteframe chat clip.mp4 --model path/to/liteframe --frames 32 --max-new-tokens 256

The video is decoded, encoded and pre-filled once, when it is opened (a video session: its prefix cache is reused by
every turn, so a question costs only its own tokens). Answers stream as they are generated; after each one a line
gives the turn's timings. The chat keeps its history: each turn sees the earlier questions and answers.

Commands (anything else is a question):
    /frames N     sample N frames (whole 4-frame clips; the video is opened again, the history is kept)
    /video PATH   talk about another video (the history is cleared)
    /reset        clear the history (the video stays open)
    /help         this list
    /quit         leave (also Ctrl-D)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import TextStreamer

from .micro import DEFAULT_NAME

COMMANDS_HELP = "/frames N, /video PATH, /reset, /help, /quit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="the video to talk about (a file path or URL)")
    parser.add_argument("--model", default=DEFAULT_NAME,
                        help=f"a LiteFrame folder, Hub id or built-in name (default: {DEFAULT_NAME})")
    parser.add_argument("--frames", type=int, default=64, help="frames sampled from the video (default 64)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="longest answer in tokens (default 128)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto: bfloat16 on CUDA, float32 on the CPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def check_video(video: str) -> str | None:
    """Why `video` cannot be opened (None when it can): a missing file, or a container without video frames."""
    from .modeling.video_decoding_liteframe import probe_video

    if "://" not in video and not Path(video).is_file():
        return f"cannot read video {video!r}: no such file"
    try:
        info = probe_video(video)
    except Exception as error:  # noqa: BLE001 - any decoder failure makes the video unreadable
        return f"cannot read video {video!r}: {error}"
    if not info.total_num_frames:
        return f"cannot read video {video!r}: it has no frames"
    return None


def _seconds(ms: float) -> str:
    return f"{ms / 1e3:.2f} s"


class AnswerStreamer(TextStreamer):
    """Writes the answer's text (not the prompt) to a stream as it is generated."""

    def __init__(self, tokenizer, out):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.out = out

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        print(text, file=self.out, flush=True, end="\n" if stream_end else "")


class Chat:
    """One video session and the chat's history; `ask` streams an answer to `out`."""

    def __init__(self, model, processor, video: str, frames: int, max_new_tokens: int, out=sys.stdout):
        self.model, self.processor, self.out = model, processor, out
        self.max_new_tokens, self.history, self.session = max_new_tokens, [], None
        self.open(video, frames)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def open(self, video: str, frames: int) -> None:
        """Open a session on `video` at `frames` frames; the current one stays when this fails."""
        from .modeling.session_liteframe import VideoSession

        problem = check_video(video)
        if problem:
            raise ValueError(problem)
        self.say(f"opening {video} at {frames} frames ...")
        session = VideoSession(self.model, self.processor, video, processor_kwargs={"num_frames": frames})
        if self.session is not None:
            self.session.close()
        self.session, self.video, self.frames = session, video, frames
        t = session.timings
        self.say(f"video ready: {session.prefix_tokens} prompt tokens, cache {session.cache_bytes / 2**20:.1f} MB "
                 f"(decode {_seconds(t['decode'])}, encode {_seconds(t['encode'])}, prefill {_seconds(t['prefill'])}; "
                 f"once for every question)")

    def ask(self, question: str) -> str:
        turn = {"role": "user", "content": [{"type": "text", "text": question}]}
        if not self.history:
            turn["content"].insert(0, {"type": "video", "video": self.video})
        chat = self.history + [turn]
        streamer = AnswerStreamer(self.processor.tokenizer, self.out)
        start = time.perf_counter()
        output = self.session.generate(chat, streamer=streamer, do_sample=False, max_new_tokens=self.max_new_tokens)
        total = (time.perf_counter() - start) * 1e3
        new = output.sequences[0, output.prompt_length:]
        answer = self.processor.tokenizer.decode(new, skip_special_tokens=True).strip()
        self.history = chat + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        t = output.timings
        rate = (new.numel() - 1) / (t["generate"] / 1e3) if t["generate"] > 0 and new.numel() > 1 else 0.0
        self.say(f"[first token {_seconds(t['copy'] + t['prefill'])}, {new.numel()} tokens in {_seconds(total)}"
                 + (f", {rate:.1f} tokens/s" if rate else "") + f"; {output.prompt_length} prompt tokens, "
                 f"{output.prompt_length - self.session.prefix_tokens} of them pre-filled this turn]")
        return answer


def handle(chat: Chat, line: str) -> bool:
    """Run one input line (a question or a command); False to leave."""
    line = line.strip()
    if not line:
        return True
    if not line.startswith("/"):
        try:
            chat.ask(line)
        except KeyboardInterrupt:
            chat.say("\n[interrupted; this turn is not kept]")
        return True
    command, _, argument = line.partition(" ")
    argument = argument.strip()
    if command in ("/quit", "/exit"):
        return False
    if command == "/help":
        chat.say(__doc__.split("Commands (anything else is a question):")[1].rstrip())
    elif command == "/reset":
        chat.history = []
        chat.say("history cleared; the video stays open")
    elif command == "/frames":
        if not argument.isdigit() or int(argument) < 1:
            chat.say(f"error: /frames takes a positive whole number of frames, e.g. /frames 32 (got {argument!r})")
            return True
        try:
            chat.open(chat.video, int(argument))
        except ValueError as error:
            chat.say(f"error: {error}; still at {chat.frames} frames")
    elif command == "/video":
        if not argument:
            chat.say("error: /video takes a path, e.g. /video clip.mp4")
            return True
        try:
            chat.open(argument, chat.frames)
        except ValueError as error:
            chat.say(f"error: {error}; still on {chat.video}")
            return True
        chat.history = []
    else:
        chat.say(f"error: unknown command {command}; commands: {COMMANDS_HELP}")
    return True


def main(args: argparse.Namespace) -> int:
    from .eval.run import load_model

    if args.threads is not None:
        if args.threads < 1:
            print(f"liteframe chat: --threads must be positive, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.frames < 1 or args.max_new_tokens < 1:
        print("liteframe chat: --frames and --max-new-tokens must be positive", file=sys.stderr)
        return 2
    problem = check_video(args.video)  # before the model loads: a typo fails at once
    if problem:
        print(f"liteframe chat: {problem}", file=sys.stderr)
        return 2
    try:
        model, processor, info = load_model(args.model, device=args.device, dtype=args.dtype,
                                            progress=lambda m: print(m, file=sys.stderr))
        print(f"{info['label']} ({info['params_m']}M parameters, {info['device']})", flush=True)
        chat = Chat(model, processor, args.video, args.frames, args.max_new_tokens)
    except ValueError as error:
        print(f"liteframe chat: {error}", file=sys.stderr)
        return 2
    chat.say(f"Ask about the video; commands: {COMMANDS_HELP}")
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            chat.say()
            break
        if line.strip() and not line.strip().startswith("/"):
            print("model> ", end="", flush=True)
        try:
            if not handle(chat, line):
                break
        except Exception as error:  # noqa: BLE001 - one bad turn must not end the chat
            chat.say(f"\nerror: {type(error).__name__}: {error}")
    chat.session.close()
    return 0
