"""`liteframe bench decode`: LiteFrame's PyAV decoder against transformers' `load_video(backend="pyav")`.

Every method gets the same plan (docs/design.md "Clip sampling": clips from `plan_clip_frames`) and ends with uint8 frames at the
encoder size (448x448 by default, bicubic) through the one resize our decoder and video processor use
(`resize_frames`, torchvision's antialiased resize): ours resizes each frame as it is decoded, the stock path
decodes with `load_video(..., backend="pyav")` and is resized afterwards. When importable, torchcodec (its exact
and approximate seek modes, full-resolution frames then the same resize) and decord (through `load_video(..., backend="decord")`) are added
(`pip install liteframe[decode]`). Each (method, frame count) runs in its own subprocess, so the
peak memory column (peak RSS minus RSS before decoding, i.e. including FFmpeg's own buffers; the kernel's peak
mark is reset first, so import-time peaks do not count) is not polluted by earlier runs. The page cache is warmed
once before timing.

Without `--video` a long test video is generated once and cached (default: 10 minutes of 1280x720 H.264 at 25 fps,
keyint 250 with scene-cut keyframes, x264 veryfast CRF 20; libx264 if PyAV's FFmpeg has it, else libopenh264, else
MPEG-4 Part 2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..modeling import video_decoding_liteframe as vd

DEFAULT_FRAMES = [8, 16, 32, 64, 128, 256]


def pick_h264_encoder() -> str:
    """Name of an H.264 encoder in PyAV's bundled FFmpeg (libx264, else libopenh264), else "mpeg4"."""
    import av

    for name in ("libx264", "libopenh264", "h264"):
        try:
            codec = av.codec.Codec(name, "w")
        except Exception:
            continue
        if "264" in codec.name:
            return codec.name
    return "mpeg4"


def make_test_video(
    path,
    seconds: float = 600.0,
    fps: int = 25,
    width: int = 1280,
    height: int = 720,
    keyint: int = 250,
    bframes: int = 3,
    codec: str | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    scenecut: bool = True,
    timestamps: list[float] | None = None,
    rotation: int | None = None,
    audio: bool = False,
    container_format: str | None = None,
    container_options: dict | None = None,
    seed: int = 0,
    progress=None,
) -> str:
    """Encode a synthetic but codec-realistic video (panning textures, moving objects, scene cuts).

    `timestamps` (seconds, increasing) makes a variable-frame-rate file (`seconds`/`fps` then only set the time
    base). `rotation` writes a display matrix (counter-clockwise degrees, as PyAV's `VideoFrame.rotation`).
    `container_options` go to the muxer (e.g. `{"movflags": "faststart"}`). `progress(done, total)` is called
    every second of video.
    """
    import av

    rng = np.random.default_rng(seed)
    codec = codec or pick_h264_encoder()
    n = len(timestamps) if timestamps is not None else int(round(seconds * fps))
    pad = 256
    # Multi-scale random texture (coarse blobs + mid-scale detail + grain): a plausible "natural" spectrum.
    th, tw = height + pad, width + pad

    def octave(cell: int) -> np.ndarray:
        import torch

        small = torch.from_numpy(rng.uniform(0, 1, size=(1, 1, th // cell + 2, tw // cell + 2)).astype(np.float32))
        big = torch.nn.functional.interpolate(small, scale_factor=cell, mode="bicubic", align_corners=False)
        return big[0, 0, :th, :tw].numpy()

    tex = 150 * octave(64) + 90 * octave(8) + rng.uniform(0, 5, size=(th, tw)) + 5
    tex = np.clip(tex, 0, 255).astype(np.uint8)
    cw, ch = width // 2, height // 2

    container = av.open(str(path), "w", format=container_format, options=container_options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if timestamps is not None:
        from fractions import Fraction

        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
    if codec in ("libx264", "h264"):
        params = f"keyint={keyint}:min-keyint={min(keyint, 25)}:bframes={bframes}"
        params += "" if scenecut else ":scenecut=0"
        stream.options = {"preset": preset, "crf": str(crf), "x264-params": params}
    else:
        stream.codec_context.gop_size = keyint
        stream.codec_context.bit_rate = 3_000_000
    if rotation:
        stream.set_display_rotation(rotation)
    astream = None
    if audio:
        astream = container.add_stream("aac", rate=16000)
        astream.layout = "mono"

    scene_len = max(1, int(12 * fps))
    for i in range(n):
        scene = i // scene_len
        # ping-pong pans (a wrap-around jump would look like a scene cut to the encoder)
        ox = abs((i * 3 + scene * 97) % (2 * pad - 2) - (pad - 1))
        oy = abs((i + scene * 53) % (2 * pad - 2) - (pad - 1))
        y = tex[oy : oy + height, ox : ox + width].copy()
        if scene % 2:
            y = 255 - y
        # a moving bright box, a moving dark bar, and a textured object moving against the pan (new content
        # every frame for the P/B frames to code)
        bs = max(2, min(64, height // 8))
        bx = int((i * 7) % max(1, width - bs))
        by = int((height - bs) * (0.5 + 0.4 * math.sin(i / 20)))
        y[by : by + bs, bx : bx + bs] = 235
        y[:, (i * 5) % width : (i * 5) % width + max(1, width // 80)] //= 3
        oh, ow = max(2, height * 2 // 9), max(2, width * 5 // 32)
        px = int((width - ow) * (0.5 + 0.45 * math.cos(i / 37)))
        py = int((height - oh) * (0.5 + 0.45 * math.sin(i / 23)))
        sy, sx = (2 * i) % pad, (5 * i) % pad
        y[py : py + oh, px : px + ow] = tex[sy : sy + oh, sx : sx + ow]
        u = np.full((ch, cw), 128 + 40 * math.sin(scene + i / 100), np.uint8)
        v = np.full((ch, cw), 128 + 40 * math.cos(scene * 1.7), np.uint8)
        u[(i % ch) :, : cw // 3] = 90
        planes = np.concatenate([y, u.reshape(-1, width), v.reshape(-1, width)])
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = int(round(timestamps[i] * 1000)) if timestamps is not None else i
        for packet in stream.encode(frame):
            container.mux(packet)
        if progress is not None and (i + 1) % fps == 0:
            progress(i + 1, n)
    for packet in stream.encode():
        container.mux(packet)
    if astream is not None:
        total = n / fps if timestamps is None else timestamps[-1]
        samples = int(total * 16000)
        for start in range(0, samples, 1024):
            k = min(1024, samples - start)
            t = (np.arange(start, start + k) / 16000).astype(np.float32)
            tone = (0.1 * np.sin(2 * np.pi * 440 * t))[None, :]
            aframe = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            aframe.sample_rate, aframe.pts = 16000, start
            for packet in astream.encode(aframe):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    container.close()
    return str(path)


# ----------------------------------------------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------------------------------------------


def default_video(cache_dir, seconds: float, height: int, fps: int, keyint: int, log=print) -> Path:
    """The cached generated benchmark video; generated (with progress) on first use."""
    width = int(round(height * 16 / 9 / 2)) * 2
    encoder = pick_h264_encoder()
    folder = Path(cache_dir).expanduser() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"decode_{int(seconds)}s_{width}x{height}_{fps}fps_k{keyint}_{encoder}_v1.mp4"
    if path.exists() and path.stat().st_size > 0:
        return path
    log(f"generating {path} ({seconds:g} s of {width}x{height} at {fps} fps, {encoder}, keyint {keyint}); once")
    tmp = path.with_suffix(".tmp.mp4")
    t0 = time.perf_counter()
    total = int(round(seconds * fps))
    step = max(fps, total // 20)

    def progress(done, n):
        if done % step == 0 or done == n:
            el = time.perf_counter() - t0
            left = el / done * (n - done)
            log(f"  {done}/{n} frames ({100 * done / n:.0f}%), {el:.0f} s elapsed, ~{left:.0f} s left")

    make_test_video(tmp, seconds=seconds, fps=fps, width=width, height=height, keyint=keyint, codec=encoder,
                    progress=progress)
    os.replace(tmp, path)
    log(f"  done in {time.perf_counter() - t0:.0f} s ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so imports before the measurement do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(reset_ok: bool) -> float:
    if reset_ok:
        return _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; includes import-time peaks


TORCHCODEC_MODES = {"torchcodec-exact": "exact", "torchcodec-approximate": "approximate"}


def _resize_nchw(x, size: int) -> np.ndarray:
    """(T, 3, H, W) uint8 tensor -> (T, size, size, 3) uint8, by the resize our decoder and video processor use."""
    return vd.resize_frames(x, size).permute(0, 2, 3, 1).contiguous().numpy()


def decode_method(method: str, video: str, timestamps: list[float], indices: list[int], size: int,
                  threads: str = "AUTO") -> tuple[np.ndarray, dict]:
    """Frames (T, size, size, 3) uint8 from one decoder, and what it reports. Ours takes the planned instants;
    the others take the frame indices on screen at those instants (what their APIs take)."""
    import torch

    if method in ("exact", "approximate"):
        result = vd.decode_frames(video, timestamps, size=(size, size), mode=method, threads=threads)
        return result.frames, {
            "frames_indices": list(map(int, result.metadata.frames_indices)),
            "frames_decoded": result.metadata.frames_decoded,
            "seeks": result.metadata.num_seeks,
            "strategy": result.metadata.decode_strategy,
            "max_time_error_s": float(np.max(np.abs(result.timestamps - np.asarray(timestamps)))),
            "repeats": int(sum(result.metadata.is_repeat)),
        }
    wanted = np.asarray(indices, dtype=np.int64)
    if method in TORCHCODEC_MODES:
        # torchcodec's "approximate" skips the scan of the file at open and derives each frame's position from
        # the header's frame rate; it still decodes the asked frame (ours, approximate: the nearest keyframe).
        from torchcodec.decoders import VideoDecoder

        decoder = VideoDecoder(video, seek_mode=TORCHCODEC_MODES[method], num_ffmpeg_threads=0)
        frames = _resize_nchw(decoder.get_frames_at(indices=wanted.tolist()).data, size)
        return frames, {"frames_indices": list(map(int, wanted))}
    # transformers' load_video with backend `method` (pyav, decord), then BaseVideoProcessor's resize
    from transformers.video_utils import load_video

    video_arr, _ = load_video(video, backend=method, sample_indices_fn=lambda metadata, **kw: wanted)
    x = torch.from_numpy(np.ascontiguousarray(video_arr)).permute(0, 3, 1, 2)
    del video_arr
    return _resize_nchw(x, size), {"frames_indices": list(map(int, wanted))}


def run_method(method: str, video: str, timestamps: list[float], indices: list[int], size: int, threads: str) -> dict:
    """One timed decode + resize to (size, size). Returns time, memory and what was decoded."""
    import torchvision.transforms.v2  # noqa: F401 - resize_frames imports it lazily: not inside the measurement

    before = _status_mb("VmRSS")
    reset_ok = _reset_peak_rss()
    t0 = time.perf_counter()
    frames, extra = decode_method(method, video, timestamps, indices, size, threads)
    elapsed = time.perf_counter() - t0
    assert frames.shape == (len(timestamps), size, size, 3) and frames.dtype == np.uint8, frames.shape
    return {
        "method": method,
        "seconds": elapsed,
        "peak_mb": max(0.0, _peak_rss_mb(reset_ok) - before),
        "output_mb": frames.nbytes / 2**20,
        **extra,
    }


def _run_in_subprocess(job: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "liteframe_hf.bench.decode", "--_worker", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"method": job["method"], "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"method": job["method"], "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def available_methods() -> list[str]:
    import importlib.util

    methods = ["exact", "approximate", "pyav"]
    if importlib.util.find_spec("torchcodec") is not None:
        methods += list(TORCHCODEC_MODES)
    if importlib.util.find_spec("decord") is not None:
        methods.append("decord")
    return methods


def environment(video: Path, info) -> list[str]:
    import av
    import torch
    import transformers

    from . import cpu_name

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    size = video.stat().st_size
    return [
        f"device: CPU {cpu_name()}, {cpus} cores available, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        f"python {platform.python_version()} | torch {torch.__version__} | transformers {transformers.__version__} | "
        f"av {av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})",
        f"video: {video} ({size / 1e6:.1f} MB, {8 * size / max(info.duration, 1e-9) / 1e6:.2f} Mbit/s)",
        f"  {info.codec} {info.width}x{info.height} @ {info.fps:.3f} fps, {info.duration:.1f} s, "
        f"{info.total_num_frames} frames ({'indexed' if info.has_frame_index else 'estimated'}), header says "
        f"{info.header_num_frames}",
    ]


def _keyframe_stats(path) -> str:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        entries = s.index_entries
        keys = [e.timestamp for e in entries if e.is_keyframe]
        if len(keys) > 1:
            gaps = np.diff(keys) * float(s.time_base)
            return f"  {len(keys)} keyframes, GOP mean {gaps.mean():.1f} s / max {gaps.max():.1f} s"
    return "  keyframes: not indexed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", default=None, help="video to decode (default: generate/cached long test video)")
    parser.add_argument("--frames", type=int, nargs="+", default=DEFAULT_FRAMES, help="frame counts to plan")
    parser.add_argument("--size", type=int, default=448, help="output (encoder) size, square")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="exact approximate pyav [torchcodec-exact torchcodec-approximate decord] "
                             "(default: all available)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per (method, frames); the best time is kept")
    parser.add_argument("--threads", default="AUTO", choices=["AUTO", "FRAME", "SLICE"], help="ours, exact mode")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run before giving up")
    parser.add_argument("--cache-dir", default=os.environ.get("LITEFRAME_CACHE", "~/.cache/liteframe"))
    parser.add_argument("--duration", type=float, default=600, help="generated video: seconds")
    parser.add_argument("--height", type=int, default=720, help="generated video: height (16:9)")
    parser.add_argument("--fps", type=int, default=25, help="generated video: frame rate")
    parser.add_argument("--keyint", type=int, default=250, help="generated video: maximum GOP length")
    parser.add_argument("--json", default=None, help="write all results as JSON here")
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)


def main(args) -> int:
    if args._worker:
        job = json.loads(args._worker)
        try:
            print(json.dumps(run_method(**job)), flush=True)
        except Exception as e:  # reported in the table, not a crash of the benchmark
            print(json.dumps({"method": job["method"], "error": f"{type(e).__name__}: {e}"}), flush=True)
        return 0

    log = lambda *a: print(*a, flush=True)  # noqa: E731
    video = Path(args.video) if args.video else default_video(args.cache_dir, args.duration, args.height, args.fps,
                                                              args.keyint, log)
    info = vd.probe_video(video)
    for line in environment(video, info):
        log(line)
    log(_keyframe_stats(video))
    with open(video, "rb") as fh:  # warm the page cache once, so no method pays the disk
        while fh.read(1 << 24):
            pass
    methods = args.methods or available_methods()
    log(f"methods: {', '.join(methods)}; output {args.size}x{args.size} uint8; best of {args.repeats}; "
        f"ours threads={args.threads}")

    rows, results = [], []
    for n in args.frames:
        plan = vd.plan_clip_frames(info.duration, n)
        # the stock loaders take frame indices: the frames on screen at the planned instants
        indices = np.minimum(np.floor(plan.timestamps * info.fps + 1e-6).astype(np.int64), info.total_num_frames - 1)
        per = {}
        for method in methods:
            best = None
            for _ in range(args.repeats):
                job = {"method": method, "video": str(video), "timestamps": plan.timestamps.tolist(),
                       "indices": indices.tolist(), "size": args.size, "threads": args.threads}
                r = _run_in_subprocess(job, args.timeout)
                if "error" in r:
                    best = r
                    break
                if best is None or r["seconds"] < best["seconds"]:
                    best = r
            per[method] = best
            status = best.get("error") or f"{best['seconds']:.2f} s, peak +{best['peak_mb']:.0f} MB"
            log(f"  {n:4d} frames ({plan.regime}): {method:12s} {status}")
        stock = per.get("pyav", {}).get("seconds")
        same = None
        if "exact" in per and "pyav" in per and "error" not in per["exact"] and "error" not in per["pyav"]:
            same = per["exact"]["frames_indices"] == per["pyav"]["frames_indices"]
        results.append({"frames": n, "regime": plan.regime, "plan_timestamps": plan.timestamps.tolist(),
                        "same_frames_as_stock": same, "results": per})
        rows.append((n, plan.regime, per, stock, same))

    log("")
    log(_table(rows, methods))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        payload = {"environment": environment(video, info), "keyframes": _keyframe_stats(video),
                   "size": args.size, "threads": args.threads, "repeats": args.repeats, "rows": results}
        Path(args.json).write_text(json.dumps(payload, indent=1))
        log(f"wrote {args.json}")
    return 0


def _table(rows, methods) -> str:
    others = [m for m in methods if m != "pyav"]
    headers = ["frames", "plan", "stock pyav s"] + [f"{m} s (speed-up)" for m in others]
    peak = "peak MB " + " / ".join(["stock"] + others)
    headers += ["frames decoded (exact / stock)", peak, "output MB", "same frames"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for n, regime, per, stock, same in rows:
        cells = [str(n), regime]
        for m in ["pyav", *others]:
            r = per.get(m)
            if r is None or "error" in r:
                cells.append("error" if r else "-")
            else:
                ratio = f" ({stock / r['seconds']:.1f}x)" if stock and m != "pyav" else ""
                cells.append(f"{r['seconds']:.2f}{ratio}")
        ex = per.get("exact") or {}
        stock_frames = (max(per["pyav"]["frames_indices"]) + 1) if per.get("pyav", {}).get("frames_indices") else None
        cells.append(f"{ex.get('frames_decoded', '-')} / {stock_frames or '-'}")
        mems = [per.get(m) for m in ["pyav"] + others]
        cells.append(" / ".join(f"{r['peak_mb']:.0f}" if r and "peak_mb" in r else "-" for r in mems))
        out = next((r["output_mb"] for r in per.values() if r and "output_mb" in r), None)
        cells.append(f"{out:.0f}" if out is not None else "-")
        cells.append({True: "yes", False: "NO", None: "-"}[same])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="liteframe bench decode", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
