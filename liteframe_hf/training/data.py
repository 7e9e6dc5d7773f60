"""Training data: video tables (via `datasets`), clip datasets decoded in DataLoader workers, resumable order.

Data flow: a video table (folder / manifest / Hub dataset) -> a map-style dataset whose ``__getitem__`` decodes
with LiteFrame's own PyAV decoder (`decode_frames`) in a DataLoader worker -> collate -> the training loop.

Exact resume: the sampler yields *keys* ``epoch * len(dataset) + i`` over a permutation seeded by (seed, epoch),
and every random choice for a sample (clip start, frame rate, frame budget) comes from a generator seeded by
(seed, epoch, i). A sample therefore depends only on its key, never on worker count, process count or history,
and resuming at micro-batch k only needs the loader to skip k batches (`accelerator.skip_first_batches`).

Unreadable videos never stop an epoch: the sample falls through to the next video of the table (deterministically),
a warning names the file once per worker, and the number of skips travels with the batch (``skipped``) so the
loop can count and log them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.grounded import shows_cut_out
from ..modeling.processing_liteframe import VIDEO_MARKER
from ..modeling.video_decoding_liteframe import VideoDecodeError, decode_frames, plan_clip_frames, probe_video
from ..modeling.video_processing_liteframe import LiteFrameVideoProcessor
from .config import CTDConfig, LMAConfig

__all__ = [
    "VIDEO_EXTENSIONS",
    "resolve_spec",
    "VideoTable",
    "caption_vocabulary",
    "EpochSampler",
    "CTDClipDataset",
    "VideoConversationDataset",
    "collate_clips",
    "ConversationCollator",
    "SampleRejected",
    "normalize_conversation",
    "mcq_conversation",
    "tokenize_conversation",
    "sample_clip_timestamps",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts")
_MANIFEST_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
IGNORE_INDEX = -100


def resolve_spec(spec: str) -> str:
    """'asset:NAME' -> the cached LiteFrame asset's path (e.g. asset:videos, asset:dinov2); anything else as is."""
    if spec.startswith("asset:"):
        from ..assets import asset_path

        return str(asset_path(spec.split(":", 1)[1]))
    return spec


# ----------------------------------------------------------------------------------------------- video tables
class VideoTable:
    """`records`: a `datasets.Dataset` with one video per row: a folder of videos, a manifest or a Hub dataset.

    ``source(i)`` is what the decoder opens: an absolute path (manifest paths are relative to the manifest's
    folder) or the bytes of a Hub ``Video(decode=False)`` cell.
    """

    def __init__(self, spec: str, video_column: str = "video", split: str = "train"):
        import datasets

        self.spec = spec
        self.video_column = video_column
        path = Path(resolve_spec(spec))
        self.base_dir: Path | None = None
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
            if not files:
                raise FileNotFoundError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {path}")
            self.records = datasets.Dataset.from_dict({video_column: files})
        elif path.is_file():
            builder = _MANIFEST_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise ValueError(f"{path}: a manifest must be one of {', '.join(_MANIFEST_BUILDERS)}")
            self.records = datasets.load_dataset(builder, data_files=str(path), split="train")
            self.base_dir = path.parent
        else:
            self.records = datasets.load_dataset(spec, split=split)
        if isinstance(self.records.features.get(video_column), datasets.Video):
            # Read {path, bytes} cells and decode them with our decoder, not the `datasets` one.
            self.records = self.records.cast_column(video_column, datasets.Video(decode=False))
        if video_column not in self.records.column_names:
            raise KeyError(f"{spec}: no {video_column!r} column (columns: {self.records.column_names}); set --video_column")
        if len(self.records) == 0:
            raise ValueError(f"{spec}: the table has no rows")

    def __len__(self) -> int:
        return len(self.records)

    def row(self, i: int) -> dict:
        return self.records[int(i)]

    def source(self, i: int):
        value = self.row(i)[self.video_column]
        if isinstance(value, dict):  # Hub Video(decode=False): {"path", "bytes"}
            if value.get("bytes"):
                return value["bytes"]
            value = value.get("path")
        if value is None:
            raise VideoDecodeError(f"row {i}", f"empty {self.video_column!r} cell")
        value = str(value)
        if self.base_dir is not None and "://" not in value and not os.path.isabs(value):
            value = str(self.base_dir / value)
        return value

    def name(self, i: int) -> str:
        source = self.source(i)
        return source if isinstance(source, str) else f"{self.spec}[{i}]"

    def fingerprint(self) -> str:
        """Identity of the video list (names and file sizes), for cache invalidation."""
        h = hashlib.sha256()
        for i in range(len(self)):
            source = self.source(i)
            size = os.path.getsize(source) if isinstance(source, str) and os.path.isfile(source) else len(source)
            h.update(f"{source if isinstance(source, str) else i}:{size}\n".encode())
        return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- order
def caption_vocabulary(table: VideoTable) -> list[str]:
    """The sorted captions of a table's grounded rows (caption and box columns, `liteframe data grounded`): the
    objects token alignment classifies, in the order align.py's feature cache uses."""
    columns = table.records.column_names
    if "caption" not in columns or "box" not in columns:
        raise ValueError(f"{table.spec}: token alignment needs grounded rows with 'caption' and 'box' columns (write "
                         f"them with `liteframe data grounded`); columns: {columns}")
    return sorted({c for c, b in zip(table.records["caption"], table.records["box"]) if c and b is not None})


class EpochSampler(Sampler[int]):
    """Keys ``epoch * n + i`` for a permutation of range(n) seeded by (seed, epoch) (identity when not shuffling).

    Accelerate calls `set_epoch` through the prepared DataLoader and shards the batches across processes.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        offset = self.epoch * self.n
        return iter((offset + order).tolist())


# ----------------------------------------------------------------------------------------------- shared decode
def sample_clip_timestamps(duration: float, rng: np.random.Generator, clip_len: int, min_fps: float,
                           max_fps: float) -> np.ndarray:
    """A CTD clip: `clip_len` frames at a frame rate ~ U[min_fps, max_fps], starting uniformly in the video.

    The frames inside the window follow `plan_clip_frames` (bin centres), so the 4-frame layout is the one the
    processor uses at inference. Videos shorter than the window give a denser clip over the whole video.
    """
    fps = rng.uniform(min_fps, max_fps)
    window = clip_len / fps
    start = rng.uniform(0.0, max(0.0, duration - window))
    plan = plan_clip_frames(min(window, duration), num_frames=clip_len, clip_len=clip_len, max_frames=None)
    return start + plan.timestamps


class _VideoSampleDataset(Dataset):
    """Key -> sample with fall-through over unreadable videos (see the module docstring).

    `rows` are the table rows this dataset draws from (a train/eval split of one table); item i starts at
    rows[i % len(rows)]. Subclasses implement ``_make(row, rng) -> dict`` for one table row.
    """

    def __init__(self, table: VideoTable, rows: list[int], length: int, seed: int, fixed: bool,
                 video_processor: LiteFrameVideoProcessor):
        self.table, self.rows, self.length, self.seed, self.fixed = table, list(rows), int(length), int(seed), fixed
        self.video_processor, self.image_size = video_processor, int(video_processor.size["height"])
        self._durations: dict[int, float] = {}
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return self.length

    def duration(self, row: int) -> float:
        if row not in self._durations:  # a property of the file: caching it keeps samples history-free
            self._durations[row] = float(probe_video(self.table.source(row)).duration)
        return self._durations[row]

    def decode(self, row: int, timestamps: np.ndarray):
        """(normalised pixels (T, 3, S, S), the decoder's metadata with the frames' actual timestamps)."""
        # threads=False: DataLoader workers already decode in parallel; per-decode threads only add overhead.
        decoded = decode_frames(self.table.source(row), timestamps, size=(self.image_size, self.image_size),
                                threads=False)
        frames = torch.from_numpy(np.ascontiguousarray(decoded.frames)).permute(0, 3, 1, 2)  # (T, 3, S, S) uint8
        # The processor's own rescale + normalise: its whole __call__ would resize and pad again, slower per clip.
        vp = self.video_processor
        pixels = vp.rescale_and_normalize(frames, vp.do_rescale, vp.rescale_factor, vp.do_normalize,
                                          tuple(vp.image_mean), tuple(vp.image_std))
        return pixels, decoded.metadata

    def __getitem__(self, key: int) -> dict:
        index, epoch = int(key) % self.length, int(key) // self.length
        n = len(self.rows)
        for attempt in range(n):
            row = self.rows[(index + attempt) % n]
            # A fresh generator per attempt: the sample never depends on what failed before it.
            rng = np.random.default_rng([self.seed, index, attempt] if self.fixed else [self.seed, epoch, index, attempt])
            try:
                sample = self._make(row, rng)
            except (VideoDecodeError, SampleRejected) as error:
                if row not in self._warned:
                    self._warned.add(row)
                    warnings.warn(f"skipping {self.table.name(row)}: {error} (counted in `skipped`; the sample "
                                  f"falls through to the next video)", stacklevel=2)
                continue
            sample.update(key=index, skipped=attempt)
            return sample
        raise RuntimeError(f"none of the {n} videos of {self.table.spec} could be used: see the warnings above")


class SampleRejected(ValueError):
    """A decodable record that cannot be used (e.g. longer than max_length); skipped and counted like a bad video."""


# ----------------------------------------------------------------------------------------------- CTD
class CTDClipDataset(_VideoSampleDataset):
    """4-frame clips for CTD: ``{"pixel_values": (clip_len, 3, S, S), "key", "skipped"[, "targets"]}``.

    Item i uses video i % len(table) (so `clips_per_video` > 1 revisits each video with new clips); with
    ``fixed=True`` item i is the same clip in every epoch, which is what a target cache needs.
    """

    def __init__(self, table: VideoTable, cfg: CTDConfig, image_size: int, seed: int, fixed: bool,
                 length: int | None = None):
        super().__init__(table, list(range(len(table))), length or len(table) * cfg.clips_per_video, seed, fixed,
                         LiteFrameVideoProcessor(size={"height": image_size, "width": image_size},
                                                 image_mean=cfg.image_mean, image_std=cfg.image_std))
        self.clip_len, self.min_fps, self.max_fps = cfg.clip_len, cfg.min_fps, cfg.max_fps
        self.targets = None  # a TargetCache, attached when the teacher's targets are cached

    def _make(self, row: int, rng: np.random.Generator) -> dict:
        times = sample_clip_timestamps(self.duration(row), rng, self.clip_len, self.min_fps, self.max_fps)
        pixels, _ = self.decode(row, times)
        return {"pixel_values": pixels}

    def __getitem__(self, key: int) -> dict:
        sample = super().__getitem__(key)
        if self.targets is not None:
            sample["targets"] = self.targets[sample["key"]]
        return sample

    def fingerprint(self) -> dict:
        vp = self.video_processor  # mean and std as float32 values: the form cached plans hold them in
        mean, std = (torch.tensor(values, dtype=torch.float32).tolist() for values in (vp.image_mean, vp.image_std))
        return {"videos": self.table.fingerprint(), "length": self.length, "seed": self.seed, "fixed": self.fixed,
                "image_size": self.image_size, "clip_len": self.clip_len, "fps": [self.min_fps, self.max_fps],
                "mean": mean, "std": std}


def collate_clips(samples: list[dict]) -> dict:
    batch = {"pixel_values": torch.stack([s["pixel_values"] for s in samples]),  # (N, clip_len, 3, S, S)
             "key": torch.tensor([s["key"] for s in samples]),
             "skipped": torch.tensor(sum(s["skipped"] for s in samples))}
    if "targets" in samples[0]:
        batch["targets"] = torch.stack([s["targets"] for s in samples])  # (N, T', H', W', D)
    return batch


# ----------------------------------------------------------------------------------------------- LMA
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
          "system": "system"}


def normalize_conversation(turns) -> list[dict]:
    """LLaVA/ShareGPT ``[{from, value}]`` or chat ``[{role, content}]`` (content a string or a list of
    ``{type: text|video}`` items) -> ``[{role, content: str}]`` with exactly one ``<video>`` marker."""
    if isinstance(turns, str):
        turns = json.loads(turns)
    messages = []
    for turn in turns:
        role = _ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
        if role is None:
            raise SampleRejected(f"unknown speaker in turn {turn!r} (expected human/gpt or user/assistant/system)")
        content = turn.get("value", turn.get("content", ""))
        if isinstance(content, list):
            content = "".join(VIDEO_MARKER + "\n" if item.get("type") == "video" else item.get("text", "")
                              for item in content)
        messages.append({"role": role, "content": str(content)})
    markers = sum(m["content"].count(VIDEO_MARKER) for m in messages)
    if markers > 1:
        raise SampleRejected(f"{markers} {VIDEO_MARKER} markers; LMA records hold one video")
    if markers == 0:
        first_user = next((m for m in messages if m["role"] == "user"), None)
        if first_user is None:
            raise SampleRejected("no user turn to attach the video to")
        first_user["content"] = f"{VIDEO_MARKER}\n{first_user['content']}"
    if not any(m["role"] == "assistant" for m in messages):
        raise SampleRejected("no assistant turn: nothing to train on")
    return messages


MCQ_FIELDS = ("question", "options", "answer")


def mcq_conversation(row: dict, answer_as: str = "letter") -> list[dict]:
    """A multiple-choice row (a `liteframe data needle` manifest line) as the one-turn chat `liteframe eval` asks.
    answer_as "letter": the video, then the standard MCQ prompt (`liteframe_hf.eval.data.mcq_prompt`), the answer
    letter as the reply; "text": the video, then the question alone, the right option's text as the reply (the
    cloze formulation that `liteframe eval --scoring likelihood` scores)."""
    from ..eval.data import LETTERS, mcq_prompt

    options, answer = row["options"], str(row["answer"]).strip().upper()
    if not isinstance(options, list) or len(answer) != 1 or answer not in LETTERS[: len(options)]:
        raise SampleRejected(f"answer {row['answer']!r} is not one of the letters of {len(options)} options")
    if answer_as == "text":
        prompt, reply = str(row["question"]).strip(), str(options[LETTERS.index(answer)]).strip()
    else:
        prompt, reply = mcq_prompt(row["question"], options), answer
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": reply}]


def tokenize_conversation(tokenizer, messages: list[dict], chat_template: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a rendered conversation; labels are the assistant turns' tokens (answer and end-of-turn),
    IGNORE_INDEX elsewhere. Conversations end at their last assistant turn.

    The chat template is rendered for every prefix; the text between consecutive prefixes is tokenized on its own,
    which is exactly how inference sees it (the prompt is tokenized up to the generation prompt).
    """
    def render(msgs, generation_prompt):
        return tokenizer.apply_chat_template(msgs, chat_template=chat_template, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    input_ids, labels, done = [], [], ""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    for i, message in enumerate(messages[: last + 1]):
        if message["role"] != "assistant":
            continue
        for text, trained in ((render(messages[:i], True), False), (render(messages[: i + 1], False), True)):
            if not text.startswith(done):
                raise ValueError("the chat template does not render conversations prefix by prefix; LMA needs one "
                                 "that does (ChatML, the LiteFrame processor's template, does)")
            ids = tokenizer(text[len(done):], add_special_tokens=False)["input_ids"]
            input_ids += ids
            labels += ids if trained else [IGNORE_INDEX] * len(ids)
            done = text
    return input_ids, labels


class VideoConversationDataset(_VideoSampleDataset):
    """(video, conversation) records for LMA: ``{"input_ids", "labels", "pixel_values_videos" (T, 3, S, S), ...}``.

    Per sample: a frame budget N from `frame_budgets` and a frame rate f ~ U[min_fps, max_fps]; the video gets
    min(N, duration x f) frames (rounded up to whole clips) planned by `plan_clip_frames` with clip_fps = f, so a
    long video gets N/4 clips at f fps and a short one is sampled at about f fps without repeated frames.

    The `LiteFrameProcessor` fixes everything else exactly as at inference: frame size and normalisation (its
    video processor), the clip headers and placeholders replacing ``<video>`` (`replace_video_token`, with the
    decoded frames' real time spans), the chat template and the tokenizer.
    """

    def __init__(self, table: VideoTable, cfg: LMAConfig, processor, seed: int, fixed: bool,
                 rows: list[int] | None = None, vocabulary: list[str] | None = None):
        rows = list(range(len(table))) if rows is None else list(rows)
        # With a caption vocabulary (token alignment), each sample also carries its grounded object: "object" (the
        # caption's index, -1 for a row without caption and box) and "box" (x, y, w, h; zeros without).
        self.objects = {c: i for i, c in enumerate(vocabulary)} if vocabulary is not None else None
        video_processor = processor.video_processor
        super().__init__(table, rows, len(rows), seed, fixed, video_processor)
        self.cfg, self.processor, self.clip_len = cfg, processor, int(video_processor.clip_len)
        self.clip_fps = float(video_processor.clip_fps)
        columns = table.records.column_names
        # A table without conversations but with MCQ fields (a needle manifest) trains on the eval's prompt.
        self.mcq = cfg.conversation_column not in columns and all(f in columns for f in MCQ_FIELDS)
        if cfg.conversation_column not in columns and not self.mcq:
            raise KeyError(f"{table.spec}: no {cfg.conversation_column!r} column and no multiple-choice fields "
                           f"{MCQ_FIELDS} (columns: {columns}); set --conversation_column")

    def _make(self, row_index: int, rng: np.random.Generator) -> dict:
        row = self.table.row(row_index)
        messages = normalize_conversation(mcq_conversation(row, self.cfg.mcq_answer) if self.mcq
                                          else row[self.cfg.conversation_column])
        budget = int(rng.choice(self.cfg.frame_budgets))
        fps = float(rng.uniform(self.cfg.min_fps, self.cfg.max_fps))
        # Optional row fields: `window` [start, end] (s) samples only that span of the video (e.g. the seconds a
        # grounded question is about); `frames` fixes the row's frame count instead of drawing from frame_budgets.
        start, duration = 0.0, self.duration(row_index)
        if row.get("window") is not None:
            start, end = (float(t) for t in row["window"])
            if not 0.0 <= start < end <= duration + 1e-3:
                raise SampleRejected(f"window {row['window']} is not inside the video's 0-{duration:.2f} s")
            duration = min(end, duration) - start
        if row.get("frames") is not None:
            budget = int(row["frames"])
        if self.cfg.frame_sampling == "processor":
            # As the video processor plans an explicit num_frames (rounded up to whole clips, its clip_fps).
            num_frames = -(-budget // self.clip_len) * self.clip_len
            plan = plan_clip_frames(duration, num_frames=num_frames, clip_len=self.clip_len, max_frames=None,
                                    clip_fps=self.clip_fps)
        else:
            wanted = -(-max(1, math.ceil(duration * fps)) // self.clip_len) * self.clip_len
            num_frames = max(self.clip_len, min(budget - budget % self.clip_len, wanted))
            plan = plan_clip_frames(duration, num_frames=num_frames, clip_len=self.clip_len, max_frames=None,
                                    clip_fps=min(max(fps, 1.0), 4.0))
        pixels, metadata = self.decode(row_index, start + plan.timestamps)
        block = self.processor.replace_video_token(
            {"pixel_values_videos": [pixels], "video_num_frames": [num_frames], "video_metadata": [metadata]}, 0)
        messages = [dict(m, content=m["content"].replace(VIDEO_MARKER, block)) for m in messages]
        input_ids, labels = tokenize_conversation(self.processor.tokenizer, messages, self.processor.chat_template)
        if self.cfg.max_length and len(input_ids) > self.cfg.max_length:
            raise SampleRejected(f"{len(input_ids)} tokens > max_length={self.cfg.max_length} with {num_frames} frames")
        sample = {"input_ids": torch.tensor(input_ids), "labels": torch.tensor(labels), "pixel_values_videos": pixels}
        if self.objects is not None:
            grounded = row.get("box") is not None and row.get("caption") in self.objects
            sample["object"] = torch.tensor(self.objects[row["caption"]] if grounded else -1)
            sample["box"] = torch.tensor(row["box"] if grounded else [0, 0, 0, 0], dtype=torch.float32)
            # which frames show the cut-out (`onscreen` rows: by the decoded frames' times; the others: all)
            times = metadata.timestamps if metadata.timestamps is not None else start + plan.timestamps
            sample["shown"] = torch.tensor(shows_cut_out(row, times) if grounded else [True] * len(times))
        return sample


@dataclass
class ConversationCollator:
    """Right-pads token sequences (pad id / IGNORE_INDEX / mask 0) and frames (zeros; `video_num_frames` says
    how many are real, so padded clips are never encoded)."""

    pad_token_id: int

    def __call__(self, samples: list[dict]) -> dict:
        b = len(samples)
        length = max(len(s["input_ids"]) for s in samples)
        frames = max(s["pixel_values_videos"].shape[0] for s in samples)
        input_ids = torch.full((b, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((b, length), dtype=torch.long)
        pixels = torch.zeros((b, frames, *samples[0]["pixel_values_videos"].shape[1:]))  # (B, T, 3, S, S)
        for i, s in enumerate(samples):
            n, t = len(s["input_ids"]), s["pixel_values_videos"].shape[0]
            input_ids[i, :n], labels[i, :n], attention_mask[i, :n] = s["input_ids"], s["labels"], 1
            pixels[i, :t] = s["pixel_values_videos"]
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
                "pixel_values_videos": pixels,
                "video_num_frames": torch.tensor([s["pixel_values_videos"].shape[0] for s in samples]),
                "key": torch.tensor([s["key"] for s in samples]),
                "skipped": torch.tensor(sum(s["skipped"] for s in samples)),
                **{k: torch.stack([s[k] for s in samples]) for k in ("object", "box") if k in samples[0]},
                **({"shown": torch.nn.utils.rnn.pad_sequence([s["shown"] for s in samples], batch_first=True)}
                   if "shown" in samples[0] else {})}

