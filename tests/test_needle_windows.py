"""scripts/needle_windows.py: identity questions cut down to windows centred on the needle they ask about."""

import importlib.util
import json
from pathlib import Path

import av

from liteframe_hf.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("needle_windows", ROOT / "scripts" / "needle_windows.py")
needle_windows = importlib.util.module_from_spec(spec)
spec.loader.exec_module(needle_windows)


def test_windows_keep_the_asked_needle_inside_a_cut_of_the_video(needle_haystacks, tmp_path):
    bench = tmp_path / "needle"
    assert cli_main(["data", "needle", "--split", "val", "--out", str(bench), "--videos", "2", "--seed", "3",
                     "--haystacks", str(needle_haystacks), "--workers", "1"]) == 0
    rows = {json.loads(line)["id"]: json.loads(line) for line in (bench / "val" / "manifest.jsonl").open()}
    assert needle_windows.main([str(bench / "val"), "--out", str(tmp_path / "win"), "--seconds", "4", "1000"]) == 0
    for seconds in (4, 1000):
        cut = [json.loads(line) for line in (tmp_path / "win" / f"L{seconds}" / "manifest.jsonl").open()]
        assert cut and [r["id"] for r in cut] == [i for i, r in rows.items() if r["category"] == "identity"]
        for row in cut:
            source = rows[row["id"]]
            video, start, end = row["window_of"]
            assert video == source["video"] and 0 <= start < end <= source["duration"]
            # 4 s windows are 4 s; a window longer than the video is the whole video
            assert row["duration"] == round(min(seconds, source["duration"]), 3)
            needle = needle_windows.asked_needle(row)  # still there, shifted into the window's time
            original = needle_windows.asked_needle(source)
            assert needle["start"] == round(original["start"] - start, 3) and needle["end"] < row["duration"] + 3
            with av.open(str(tmp_path / "win" / f"L{seconds}" / row["video"])) as container:
                stream = container.streams.video[0]
                frames = sum(1 for _ in container.decode(stream))
                assert abs(frames / float(stream.average_rate) - row["duration"]) <= 2 / float(stream.average_rate)
