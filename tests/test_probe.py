"""`liteframe probe`: grounded views rendered the needle benchmark's way, the linear probe, the command end to end."""

import json

import numpy as np
import pytest
import torch

from liteframe_hf.cli import main as cli
from liteframe_hf.data.needle import SCENES, haystack_sources
from liteframe_hf.data.grounded import grounded_vocabulary, render_views
from liteframe_hf.probe import linear_probe


def test_linear_probe_separates_what_is_separable_and_not_noise():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 32, generator=g) * 3
    y_train, y_test = torch.arange(5).repeat(20), torch.arange(5).repeat(8)
    x_train = centres[y_train] + torch.randn(100, 32, generator=g)
    x_test = centres[y_test] + torch.randn(40, 32, generator=g)
    good = linear_probe(x_train, y_train, x_test, y_test, 5)
    assert good["top1"] >= 0.95 and good["four_way"] >= 0.95 and good["n_test"] == 40
    # Labels unrelated to the features: the probe fits the train views but held-out accuracy stays near chance.
    noise = linear_probe(torch.randn(100, 32, generator=g), y_train, torch.randn(400, 32, generator=g),
                         torch.arange(5).repeat(80), 5)
    assert noise["train_top1"] > 0.5 and noise["top1"] < 0.4


def test_views_paste_the_object_on_the_right_footage():
    vocab = grounded_vocabulary(5, seed=1)
    assert len({s.caption for s in vocab}) == 5 and vocab == grounded_vocabulary(5, seed=1)
    heldout = haystack_sources("val")[:2]
    views = render_views(vocab[:2], heldout, 3, seed=0, starts_per_source=2)
    assert views.pixels.shape == (6, 4, 3, 224, 224) and views.pixels.dtype == torch.uint8
    assert views.labels.tolist() == [0, 0, 0, 1, 1, 1] and views.captions == [s.caption for s in vocab[:2]]
    assert {SCENES[name][0] for name in views.sources} == {"heldout"}
    again = render_views(vocab[:2], heldout, 3, seed=0, starts_per_source=2)
    assert torch.equal(views.pixels, again.pixels)
    # Against the bare background clip it was drawn from (same seed, so the same first draws): the cut-out changes
    # one box of every frame and leaves the rest of the frame alone.
    from liteframe_hf.modeling.video_decoding_liteframe import resize_frames
    from liteframe_hf.data.grounded import ViewRenderer

    backgrounds = ViewRenderer(heldout, np.random.default_rng(0), 4, starts_per_source=2).backgrounds
    changed = [(views.pixels[0].int() - resize_frames(clip, (224, 224)).int()).abs().amax(1) > 24
               for _, clip in backgrounds]
    share = min(float(c.float().mean()) for c in changed)  # the clip it was drawn from
    assert 0.01 < share < 0.6
    with pytest.raises(ValueError, match="objects must be 4"):
        grounded_vocabulary(2)


def test_probe_command_end_to_end(tmp_path):
    out = tmp_path / "probe.json"
    assert cli(["probe", "liteframe-micro", "--objects", "4", "--train-views", "4", "--heldout-views", "2",
                "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["models"]["liteframe-micro"]["features"]
    assert set(rows) == {"encoder mean", "encoder max", "projector mean", "projector max"}
    assert rows["projector mean"]["dim"] == 576 and rows["encoder mean"]["n_train"] == 16
    assert all(0.0 <= r["four_way"] <= 1.0 and r["n_test"] == 8 for r in rows.values())
    assert set(report["heldout_footage"]) == {n for n, (pool, _, _) in SCENES.items() if pool == "heldout"}
    assert cli(["probe", str(tmp_path / "nowhere")]) == 2


def test_bench_step_times_each_setting_in_its_own_process(tmp_path):
    out = tmp_path / "step.json"
    assert cli(["bench", "step", "--model", "liteframe-micro", "--batch", "2", "--steps", "1", "--settings", "fp32",
                "bf16-weights", "--policies", "PASSIVE", "--threads", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["setting"], r["omp_wait_policy"], r["processes"], r["threads"]) for r in rows] == [
        ("fp32", "PASSIVE", 1, 1), ("bf16-weights", "PASSIVE", 1, 1)]
    assert all(0 < r["min_s"] <= r["median_s"] <= r["max_s"] for r in rows)
    # --beside: the copies meet before their timed steps, and every copy's steps are counted.
    assert cli(["bench", "step", "--model", "liteframe-micro", "--batch", "2", "--steps", "2", "--settings",
                "bf16-weights", "--policies", "PASSIVE", "--beside", "1", "--threads", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["processes"] == 2 and row["timed_steps"] == 4 and row["load_before"] >= 0


def test_grounded_clips_and_manifest(tmp_path):
    from liteframe_hf.eval.data import load_manifest

    manifest = tmp_path / "g" / "val" / "manifest.jsonl"
    assert cli(["data", "grounded", "--split", "val", "--out", str(tmp_path / "g"), "--objects", "4", "--views", "2",
                "--seconds", "1", "--fps", "4"]) == 0
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 8 and sorted({r["answer"] for r in rows}) == ["A", "B", "C", "D"]
    for r in rows:
        assert r["options"][ord(r["answer"]) - 65] == r["caption"] and len(set(r["options"])) == 4
        assert SCENES[r["footage"]][0] == "heldout"
    from liteframe_hf.modeling.video_decoding_liteframe import probe_video

    info = probe_video(str(manifest.parent / rows[0]["video"]))
    assert (info.width, info.height) == (426, 240) and abs(info.duration - 1.0) < 0.3
    assert len(load_manifest(manifest).questions) == 8  # liteframe eval reads it as it is
    stamp = {r["id"]: r["video"] for r in rows}
    before = {p.name: p.stat().st_mtime_ns for p in (manifest.parent / "videos").iterdir()}
    assert cli(["data", "grounded", "--split", "val", "--out", str(tmp_path / "g"), "--objects", "4", "--views", "2",
                "--seconds", "1", "--fps", "4"]) == 0  # a rerun keeps what was written
    assert before == {p.name: p.stat().st_mtime_ns for p in (manifest.parent / "videos").iterdir()} and stamp
    assert cli(["data", "grounded", "--split", "val", "--out", str(tmp_path / "g"), "--objects", "2"]) == 2
