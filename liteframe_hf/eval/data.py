"""Multiple-choice video QA manifests: reading, checking, and the standard MCQ prompt.

A manifest is JSONL, one question per line (what `liteframe data needle` writes):
    {"id": "test-000123-identity", "video": "videos/000123.mp4", "question": "...", "options": ["...", ...],
     "answer": "B", "category": "identity", ...}
`video` is relative to the manifest's folder (or absolute); other fields (duration, needles, ...) are kept.
Every row is checked before any model runs: a bad row stops the run with an error naming its line and id, or
with `skip_bad=True` is left out and reported.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Video-MME's instruction, which lmms-eval's video MCQ tasks also use.
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
NO_CATEGORY = "uncategorized"


class ManifestError(ValueError):
    """A manifest row cannot be evaluated; the message names the file, line and id."""


@dataclass
class Question:
    id: str
    video: Path  # absolute
    question: str
    options: list[str]
    answer: str  # "A".."Z"
    category: str
    line: int  # 1-based line in the manifest
    extra: dict = field(default_factory=dict)

    @property
    def num_options(self) -> int:
        return len(self.options)

    @property
    def prompt(self) -> str:
        return mcq_prompt(self.question, self.options)


@dataclass
class Manifest:
    path: Path
    questions: list[Question]
    skipped: list[dict]  # {"line", "id", "reason"} of rows left out with skip_bad

    @property
    def split(self) -> str:
        """The split's name: the manifest's folder (`.../test/manifest.jsonl` -> "test") or its stem."""
        return self.path.parent.name if self.path.stem == "manifest" else self.path.stem


def mcq_prompt(question: str, options: list[str]) -> str:
    """The standard MCQ prompt: the question, one "A. option" line per option, then the answer instruction."""
    lines = [question.strip()] + [f"{LETTERS[i]}. {str(option).strip()}" for i, option in enumerate(options)]
    return "\n".join(lines + [ANSWER_INSTRUCTION])


def _check_row(row) -> str | None:
    """The reason a parsed row is not a valid question (None when it is); the video file is checked later."""
    if not isinstance(row, dict):
        return f"a row must be a JSON object, got {type(row).__name__}"
    missing = [k for k in ("id", "video", "question", "options", "answer") if k not in row]
    if missing:
        return f"missing field(s) {missing}"
    if not isinstance(row["id"], (str, int)) or str(row["id"]).strip() == "":
        return f"'id' must be a non-empty string, got {row['id']!r}"
    if not isinstance(row["video"], str) or not row["video"]:
        return f"'video' must be a path string, got {row['video']!r}"
    if not isinstance(row["question"], str) or not row["question"].strip():
        return "'question' must be a non-empty string"
    options = row["options"]
    if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS) or not all(
        isinstance(o, (str, int, float)) and str(o).strip() for o in options
    ):
        return f"'options' must be a list of 2-{len(LETTERS)} non-empty strings, got {options!r}"
    valid = LETTERS[: len(options)]
    if not isinstance(row["answer"], str) or row["answer"].strip().upper() not in valid or len(row["answer"].strip()) != 1:
        return f"answer {row['answer']!r} is not one of the option letters {', '.join(valid)}"
    if "category" in row and not isinstance(row["category"], str):
        return f"'category' must be a string, got {row['category']!r}"
    return None


def _check_video(path: Path) -> str | None:
    """Why the video cannot be read (None when its container opens and has a video stream)."""
    from ..modeling.video_decoding_liteframe import probe_video

    if not path.is_file():
        return f"video {str(path)!r} does not exist"
    try:
        info = probe_video(str(path))
    except Exception as error:  # noqa: BLE001 - any decoder failure makes the row unreadable
        return f"video {str(path)!r} is unreadable ({type(error).__name__}: {error})"
    if not info.total_num_frames:
        return f"video {str(path)!r} has no frames"
    return None


def load_manifest(path: str | Path, skip_bad: bool = False, check_videos: bool = True) -> Manifest:
    """Read and check a manifest. Bad rows (not JSON, missing fields, answer outside the options, duplicated id,
    missing or unreadable video) raise `ManifestError` naming the row, or with `skip_bad` are left out and listed
    in `Manifest.skipped`. Each distinct video is opened once to check it."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {str(path)!r} does not exist")
    root = path.resolve().parent
    questions: list[Question] = []
    skipped: list[dict] = []
    seen: dict[str, int] = {}
    video_problem: dict[Path, str | None] = {}

    def bad(line: int, row_id, reason: str) -> None:
        where = f"{path}:{line}" + (f" (id {row_id!r})" if row_id is not None else "")
        if not skip_bad:
            raise ManifestError(f"{where}: {reason}. Fix the row, or pass --skip-bad to leave such rows out.")
        skipped.append({"line": line, "id": None if row_id is None else str(row_id), "reason": reason})

    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                bad(line, None, f"not valid JSON ({error.msg} at column {error.colno})")
                continue
            row_id = row.get("id") if isinstance(row, dict) else None
            reason = _check_row(row)
            if reason is None and str(row_id) in seen:
                reason = f"duplicated id (first used on line {seen[str(row_id)]})"
            if reason is None:
                video = Path(row["video"])
                video = (video if video.is_absolute() else root / video).resolve()
                if check_videos:
                    if video not in video_problem:
                        video_problem[video] = _check_video(video)
                    reason = video_problem[video]
            if reason is not None:
                bad(line, row_id, reason)
                continue
            seen[str(row_id)] = line
            known = {"id", "video", "question", "options", "answer", "category"}
            questions.append(Question(
                id=str(row_id), video=video, question=row["question"], options=[str(o) for o in row["options"]],
                answer=row["answer"].strip().upper(), category=row.get("category") or NO_CATEGORY, line=line,
                extra={k: v for k, v in row.items() if k not in known},
            ))
    if not questions:
        raise ManifestError(f"manifest {str(path)!r} has no valid questions" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return Manifest(path=path, questions=questions, skipped=skipped)


def category_counts(questions: list[Question]) -> dict[str, int]:
    return dict(sorted(Counter(q.category for q in questions).items()))


def asked_needle_index(options: list[str], answer: str, needles: list[dict]) -> int | None:
    """Which of a needle-benchmark row's `needles` an identity question asks about: the one whose caption is the
    right option (None when none is)."""
    right = options[LETTERS.index(answer)]
    return next((i for i, needle in enumerate(needles) if needle["caption"] == right), None)


__all__ = ["ANSWER_INSTRUCTION", "LETTERS", "Manifest", "ManifestError", "Question", "asked_needle_index",
           "category_counts", "load_manifest", "mcq_prompt"]
