"""Where recognition is lost in a long video: the needle benchmark's identity questions on windows of L seconds
centred on the needle they ask about, one split per L.

    python scripts/needle_windows.py outputs/reproduce_micro/needle/val --out outputs/needle_windows --seconds 4 8 16 32
    liteframe eval liteframe-micro-s-qa --data outputs/needle_windows/L8/manifest.jsonl --frames 8 --scoring likelihood

Each window is cut from the question's video (re-encoded, H.264) and kept inside it; its manifest row is the
question's, with the video, duration and needles (shifted, those outside dropped) of the window. Evaluated with
as many frames as seconds, every L samples the video as densely and shows the needle in about as many frames; only
the context around it grows, from one 4-frame clip to the whole video (docs/reproduce_micro.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np

from liteframe_hf.eval.data import asked_needle_index
from liteframe_hf.training.synthetic import write_video


def asked_needle(row: dict) -> dict:
    """The needle an identity question asks about (its caption is the right option)."""
    index = asked_needle_index(row["options"], row["answer"], row["needles"])
    if index is None:
        raise SystemExit(f"{row['id']}: no needle is captioned with its right option")
    return row["needles"][index]


def window_of(row: dict, seconds: float) -> tuple[float, float]:
    """[start, end) of `seconds` centred on the asked-about needle, shifted to lie inside the video."""
    needle, duration = asked_needle(row), float(row["duration"])
    start = min(max(0.0, (needle["start"] + needle["end"]) / 2 - seconds / 2), max(0.0, duration - seconds))
    return start, min(duration, start + seconds)


def read_video(path: Path) -> tuple[int, list[float], np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        return round(float(stream.average_rate)), [t for t, _ in frames], np.stack([a for _, a in frames])


def write_windows(split: Path, out: Path, lengths: list[float], category: str = "identity") -> dict[float, Path]:
    rows = [json.loads(line) for line in (split / "manifest.jsonl").open()]
    rows = [r for r in rows if r["category"] == category]
    if not rows:
        raise SystemExit(f"{split}/manifest.jsonl has no {category} questions")
    manifests, decoded = {}, {}
    for seconds in lengths:
        folder = out / f"L{seconds:g}"
        (folder / "videos").mkdir(parents=True, exist_ok=True)
        manifests[seconds] = folder / "manifest.jsonl"
        with manifests[seconds].open("w") as manifest:
            for row in rows:
                if row["video"] not in decoded:  # rows of one video are consecutive: keep only the current one
                    decoded = {row["video"]: read_video(split / row["video"])}
                fps, times, frames = decoded[row["video"]]
                start, end = window_of(row, seconds)
                keep = [i for i, t in enumerate(times) if start <= t < end]
                write_video(folder / "videos" / f"{row['id']}.mp4", frames[keep], fps)
                needles = [dict(n, start=round(n["start"] - start, 3), end=round(n["end"] - start, 3))
                           for n in row["needles"] if n["end"] > start and n["start"] < end]
                cut = {k: v for k, v in row.items() if k != "source_segments"}
                manifest.write(json.dumps(cut | {"video": f"videos/{row['id']}.mp4", "duration": round(end - start, 3),
                                                 "needles": needles, "window_of": [row["video"], start, end]}) + "\n")
        print(f"L {seconds:g} s: {len(rows)} questions -> {manifests[seconds]}")
    return manifests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", type=Path, help="a needle benchmark split folder (its manifest.jsonl and videos/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--category", default="identity")
    args = parser.parse_args(argv)
    write_windows(args.split, args.out, args.seconds, args.category)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
