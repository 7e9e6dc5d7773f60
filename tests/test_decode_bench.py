"""`liteframe bench decode`'s third-party rows decode the same frames as ours: torchcodec (both seek modes) and
decord, given the frame indices on screen at our planned instants. Skipped where the decoder is not installed
(`pip install liteframe[decode]`)."""

import numpy as np
import pytest

from liteframe_hf.bench.decode import decode_method, make_test_video
from liteframe_hf.modeling.video_decoding_liteframe import decode_frames, plan_clip_frames, probe_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = make_test_video(tmp_path_factory.mktemp("bench") / "v.mp4", seconds=6, fps=25, width=192, height=108,
                           keyint=50)
    info = probe_video(path)
    plan = plan_clip_frames(info.duration, 16)
    indices = np.minimum(np.floor(plan.timestamps * info.fps + 1e-6).astype(np.int64), info.total_num_frames - 1)
    return path, plan.timestamps.tolist(), indices.tolist()


@pytest.mark.parametrize("method", ["torchcodec-exact", "torchcodec-approximate", "decord"])
def test_third_party_rows_decode_our_frames(clip, method):
    pytest.importorskip(method.split("-")[0], reason=f"{method} is not installed (pip install liteframe[decode])")
    path, timestamps, indices = clip
    ours, ours_info = decode_method("exact", path, timestamps, indices, size=64)
    theirs, their_info = decode_method(method, path, timestamps, indices, size=64)
    assert ours_info["frames_indices"] == their_info["frames_indices"] == indices
    assert theirs.shape == ours.shape and theirs.dtype == np.uint8
    # Same frames through the same resize (`resize_frames`): equal up to FFmpeg builds' YUV->RGB rounding, which
    # the full-resolution test below allows (2 levels). The next planned frame is far off, so a one-frame slip fails.
    diff = np.abs(theirs.astype(np.int16) - ours.astype(np.int16)).mean()
    slip = np.abs(theirs[1:].astype(np.int16) - ours[:-1].astype(np.int16)).mean()
    assert diff < 0.5 and slip > 10, (diff, slip)


def test_torchcodec_full_resolution_frames_equal_ours(clip):
    pytest.importorskip("torchcodec", reason="torchcodec is not installed (pip install liteframe[decode])")
    from torchcodec.decoders import VideoDecoder

    path, _, indices = clip
    ours = decode_frames(path, indices=indices).frames
    for mode in ("exact", "approximate"):
        theirs = VideoDecoder(path, seek_mode=mode).get_frames_at(indices=indices).data.permute(0, 2, 3, 1).numpy()
        diff = np.abs(theirs.astype(np.int16) - ours.astype(np.int16))
        assert theirs.shape == ours.shape and diff.max() <= 2, (mode, diff.max())  # YUV -> RGB rounding at most
