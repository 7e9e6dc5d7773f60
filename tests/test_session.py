"""Video sessions (issue 25): a video decoded, encoded and pre-filled once, every question answered from a copy of its
prefix cache exactly as the uncached path answers it; used by the pipeline and by `liteframe eval --reuse-video`."""

import copy
import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoProcessor, DynamicCache, pipeline

from liteframe_hf.assets import asset_path
from liteframe_hf.cli import main as cli
from liteframe_hf.eval.plot import path_latency
from liteframe_hf.eval.run import markdown_table
from liteframe_hf.modeling.session_liteframe import CACHE_ARG, NotCacheable, VideoSession


QUESTIONS = ["what is the rabbit doing ?", "how many cars are there ?", "which colour is the car ?"]
FRAMES = {"num_frames": 8}
GREEDY = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}


@pytest.fixture(scope="module")
def videos():
    try:
        return {name: str(asset_path(name)) for name in ("bigbuckbunny.mp4", "bikes.mp4")}
    except Exception as error:  # noqa: BLE001 - report the fetch command
        pytest.fail(f"real sample videos are missing ({error}); run `liteframe assets fetch --only videos`")


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return AutoModel.from_pretrained(tiny_model).eval(), AutoProcessor.from_pretrained(tiny_model)


@pytest.fixture
def encodes(tiny, monkeypatch):
    """Counts encoder runs (the session's, generate's pre-encoding and the pipeline's all go through here)."""
    model, calls = tiny[0], []
    original = model.model.get_video_features
    monkeypatch.setattr(model.model, "get_video_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def chat_of(video, question, before=None):
    content = ([{"type": "text", "text": before}] if before else []) + [{"type": "video", "video": video},
                                                                         {"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


def uncached_inputs(processor, chat):
    inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", processor_kwargs=FRAMES)
    inputs.pop("video_metadata", None)
    return inputs


def uncached(model, processor, chat, **generate_kwargs):
    with torch.inference_mode():
        return model.generate(**uncached_inputs(processor, chat), **{**GREEDY, **generate_kwargs})


# ------------------------------------------------------------------------------------------------- session
def test_session_answers_every_question_as_the_uncached_path(tiny, videos, encodes):
    model, processor = tiny
    video = videos["bigbuckbunny.mp4"]
    session = VideoSession(model, processor, video, processor_kwargs=FRAMES)
    assert len(encodes) == 1 and set(session.timings) == {"decode", "preprocess", "encode", "prefill"}
    assert session.prefix_ids[-1] == processor.clip_end_token_id  # the prefix ends with the video's last clip
    assert session.cache.get_seq_length() == session.prefix_tokens and session.cache_bytes > 0
    for question in QUESTIONS:
        out = session.generate(question=question, **GREEDY)
        reference = uncached(model, processor, chat_of(video, question))
        assert torch.equal(out.sequences, reference), question
        assert set(out.timings) == {"preprocess", "copy", "prefill", "generate"}
    assert len(encodes) == 1 + len(QUESTIONS)  # the references' encodes; the session encoded once
    assert session.cache.get_seq_length() == session.prefix_tokens  # questions ran on copies
    session.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        session.ask("what ?")


def test_generate_skips_the_encoder_when_the_cache_covers_the_video(tiny, videos, encodes):
    """transformers' prompt-reuse recipe with the processor's full inputs: the cache holds the video, so generate
    neither encodes it nor needs its pixels, and answers as without the cache."""
    model, processor = tiny
    chat = chat_of(videos["bikes.mp4"], QUESTIONS[0])
    reference = uncached(model, processor, chat)
    session = VideoSession(model, processor, videos["bikes.mp4"], processor_kwargs=FRAMES)
    inputs = uncached_inputs(processor, chat)
    before = len(encodes)
    with torch.inference_mode():
        out = model.generate(**inputs, **GREEDY, **{CACHE_ARG: copy.deepcopy(session.cache)})
    assert len(encodes) == before and torch.equal(out, reference)

    ids = inputs["input_ids"]
    first = int((ids[0] == model.config.video_token_id).nonzero()[0])
    partial = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=ids[:, :first + 2], use_cache=True, **{CACHE_ARG: partial})  # stops inside the video
        with pytest.raises(ValueError, match="covers only part of the video"):
            model.generate(**inputs, **GREEDY, **{CACHE_ARG: partial})


def test_sampling_and_beams_expand_the_cache_copy(tiny, videos):
    model, processor = tiny
    video = videos["bikes.mp4"]
    with VideoSession(model, processor, video, processor_kwargs=FRAMES) as session:
        sampled = session.generate(question=QUESTIONS[0], do_sample=True, num_return_sequences=3, max_new_tokens=4)
        assert sampled.sequences.shape[0] == 3
        beams = session.generate(question=QUESTIONS[0], num_beams=2, **GREEDY)
        assert torch.equal(beams.sequences, uncached(model, processor, chat_of(video, QUESTIONS[0]), num_beams=2))
    assert session.closed


def test_chats_a_session_cannot_serve_are_refused_saying_why(tiny, videos):
    model, processor = tiny
    a, b = videos["bigbuckbunny.mp4"], videos["bikes.mp4"]
    two = [{"role": "user", "content": [{"type": "video", "video": a}, {"type": "video", "video": b},
                                        {"type": "text", "text": "what ?"}]}]
    with pytest.raises(NotCacheable, match="2 videos"):
        VideoSession(model, processor, a, chat=two, processor_kwargs=FRAMES)
    with pytest.raises(NotCacheable, match="text before the video"):
        VideoSession(model, processor, a, chat=chat_of(a, "what ?", before="look :"), processor_kwargs=FRAMES)
    later = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello"}] + chat_of(a, "what ?")
    with pytest.raises(NotCacheable, match="first user turn"):
        VideoSession(model, processor, a, chat=later, processor_kwargs=FRAMES)
    # a template that writes the turn's text first, whatever the items' order
    texts_first = copy.deepcopy(processor)
    texts_first.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for i in m['content'] %}{% if i['type'] == 'text' %}"
        "{{ i['text'] }}{% endif %}{% endfor %}{% for i in m['content'] %}{% if i['type'] == 'video' %}<video>\n"
        "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(NotCacheable, match="template writes the turn's text before the video"):
        VideoSession(model, texts_first, a, chat=chat_of(a, "what ?"), processor_kwargs=FRAMES)
    # a session opened with a system prompt serves chats with that system prompt only
    system = [{"role": "system", "content": "you answer in one word ."}] + chat_of(a, "what ?")
    with VideoSession(model, processor, a, chat=system, processor_kwargs=FRAMES) as session:
        assert torch.equal(session.generate(system, **GREEDY).sequences, uncached(model, processor, system))
        with pytest.raises(NotCacheable, match="differs"):
            session.generate(chat_of(a, "what ?"), **GREEDY)
        with pytest.raises(NotCacheable, match="not this session's video"):
            session.generate([system[0]] + chat_of(b, "what ?"), **GREEDY)


# ------------------------------------------------------------------------------------------------ pipeline
def test_pipeline_questions_about_one_video_share_one_encode(tiny, videos, encodes):
    model, processor = tiny
    pipe = pipeline("video-text-to-text", model=model, processor=processor)
    video = videos["bigbuckbunny.mp4"]
    answers = pipe(video, text=QUESTIONS, return_timings=True, **FRAMES, **GREEDY)
    assert len(encodes) == 1
    plain = pipe(video, text=QUESTIONS, reuse_video=False, **FRAMES, **GREEDY)
    assert [a["generated_text"] for a in answers] == [p["generated_text"] for p in plain]
    assert [a["video_session"]["reused"] for a in answers] == [False, True, True]
    for answer in answers:
        assert set(answer["timings"]) == {"decode", "preprocess", "encode", "prefill", "generate"}
        assert set(answer["video_session"]["question"]) == {"preprocess", "copy", "prefill", "generate"}
    assert answers[0]["timings"]["encode"] > 0 and answers[0]["timings"]["decode"] > 0
    assert all(a["timings"]["encode"] == 0 and a["timings"]["decode"] == 0 for a in answers[1:])
    pipe.clear_video_sessions()
    assert len(pipe.video_sessions) == 0


def test_pipeline_multi_turn_chat_reuses_the_kept_session(tiny, videos, encodes):
    model, processor = tiny
    pipe = pipeline("video-text-to-text", model=model, processor=processor)
    chat = chat_of(videos["bikes.mp4"], QUESTIONS[0])
    first = pipe(chat, return_timings=True, **FRAMES, **GREEDY)
    chat += [{"role": "assistant", "content": [{"type": "text", "text": first["generated_text"]}]},
             {"role": "user", "content": [{"type": "text", "text": QUESTIONS[1]}]}]
    second = pipe(chat, return_timings=True, **FRAMES, **GREEDY)
    assert len(encodes) == 1 and second["video_session"]["reused"]
    assert second["generated_text"] == pipe(chat, reuse_video=False, **FRAMES, **GREEDY)["generated_text"]
    # other frame counts are another session
    pipe(chat, return_timings=True, num_frames=4, **GREEDY)
    assert len(encodes) == 3


def test_pipeline_falls_back_where_a_session_does_not_apply(tiny, videos):
    model, processor = tiny
    pipe = pipeline("video-text-to-text", model=model, processor=processor)
    chat = chat_of(videos["bikes.mp4"], "what ?", before="look :")
    answer = pipe(chat, return_timings=True, **FRAMES, **GREEDY)
    assert answer["video_session"]["used"] is False and "text before the video" in answer["video_session"]["reason"]
    assert answer["generated_text"] == pipe(chat, reuse_video=False, **FRAMES, **GREEDY)["generated_text"]
    assert len(pipe.video_sessions) == 0


def test_pipeline_keeps_at_most_max_video_sessions(tiny, videos, encodes):
    model, processor = tiny
    a, b = videos["bigbuckbunny.mp4"], videos["bikes.mp4"]
    pipe = pipeline("video-text-to-text", model=model, processor=processor, max_video_sessions=1)
    pipe(a, text="what ?", **FRAMES, **GREEDY)
    pipe(b, text="what ?", **FRAMES, **GREEDY)
    assert len(pipe.video_sessions) == 1 and len(encodes) == 2
    pipe(a, text="who ?", **FRAMES, **GREEDY)  # a's session was closed for b's
    assert len(encodes) == 3
    none_kept = pipeline("video-text-to-text", model=model, processor=processor, max_video_sessions=0)
    none_kept(a, text=QUESTIONS, **FRAMES, **GREEDY)  # still one encode within the call
    assert len(encodes) == 4 and len(none_kept.video_sessions) == 0
    # frames given as an array share a session within a call only
    frames = torch.randint(0, 255, (8, 3, 64, 64), dtype=torch.uint8)
    none_kept(frames, text=QUESTIONS[:2], **GREEDY)
    assert len(encodes) == 5


# -------------------------------------------------------------------------------------------- eval --reuse-video
def eval_both_ways(model, videos, tmp_path, *extra):
    """A 6-question manifest on the two videos (3 questions each), evaluated with `liteframe eval` in the default
    protocol and with --reuse-video (plus `extra` flags): (rows, {"default": JSON, "reuse": JSON})."""
    root = tmp_path / "bench"
    (root / "videos").mkdir(parents=True)
    rows = []
    for i, name in enumerate(videos):
        shutil.copy(videos[name], root / "videos" / name)
        rows += [{"id": f"{name}-{j}", "video": f"videos/{name}", "question": question, "options": ["rabbit", "car", "bike"],
                  "answer": "ABC"[(i + j) % 3], "category": "identity"} for j, question in enumerate(QUESTIONS)]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = {}
    for mode, flags in (("default", []), ("reuse", ["--reuse-video"])):
        out = tmp_path / f"{mode}.json"
        assert cli(["eval", str(model), "--data", str(root / "manifest.jsonl"), "--frames", "8", "--warmup", "0",
                    "--no-progress", "--json", str(out), *flags, *extra]) == 0
        runs[mode] = json.loads(out.read_text())
    return rows, runs


def test_eval_reuse_video_matches_the_default_protocol(tiny_model, videos, tmp_path):
    rows, runs = eval_both_ways(tiny_model, videos, tmp_path)
    default, reuse = runs["default"], runs["reuse"]
    assert reuse["reuse_video"] and not default["reuse_video"]
    assert [p["id"] for p in reuse["predictions"]] == [r["id"] for r in rows]  # manifest order
    assert [p["answer_ids"] for p in reuse["predictions"]] == [p["answer_ids"] for p in default["predictions"]]
    assert reuse["points"][0]["accuracy"] == default["points"][0]["accuracy"]
    assert [p["first_of_video"] for p in reuse["predictions"]] == [True, False, False] * 2
    point = reuse["points"][0]
    assert point["videos"] == 2 and point["latency_ms_first"]["total"]["median"] > 0 and point["wall_s"] > 0
    assert point["latency_ms_followup"]["encode"]["median"] == 0
    assert "latency_ms_first" not in default["points"][0] and "first_of_video" not in default["predictions"][0]
    # Tables and plots read a reuse run's first questions, the ones that pay for the video (the paper's protocol).
    assert path_latency(point) is point["latency_ms_first"] and path_latency(default["points"][0]) is \
        default["points"][0]["latency_ms"]
    table = markdown_table([reuse]).splitlines()
    assert table[0].endswith("| total ms | follow-up total ms |")
    assert table[2].endswith(f"| {point['latency_ms_first']['total']['median']:.1f} | "
                             f"{point['latency_ms_followup']['total']['median']:.1f} |")


def uncached_option_score(model, processor, video, question, option):
    """Mean log-probability per token of `option` + end of turn as the reply, from one plain forward of the whole
    prompt (no session, no cache)."""
    inputs = uncached_inputs(processor, chat_of(video, question))
    reply = processor.tokenizer(option + processor.tokenizer.eos_token, add_special_tokens=False, return_tensors="pt")
    ids = torch.cat([inputs["input_ids"], reply["input_ids"]], 1)
    with torch.inference_mode():
        logits = model(input_ids=ids, pixel_values_videos=inputs["pixel_values_videos"],
                       video_num_frames=inputs.get("video_num_frames")).logits
    n = reply["input_ids"].shape[1]
    logprobs = logits[0, -n - 1:-1].float().log_softmax(-1)
    return logprobs[torch.arange(n), reply["input_ids"][0]].mean().item()


def test_score_is_each_options_likelihood_as_the_reply(tiny, videos):
    model, processor = tiny
    options = ["rabbit", "a car on the road", "bike", "the sky"]  # different lengths: right padding must not leak
    with VideoSession(model, processor, videos["bikes.mp4"], processor_kwargs=FRAMES) as session:
        out = session.score(options, question=QUESTIONS[0])
        again = session.score(options[::-1], question=QUESTIONS[0])  # the cache is copied, never consumed
    expected = [uncached_option_score(model, processor, videos["bikes.mp4"], QUESTIONS[0], o) for o in options]
    assert out.scores == pytest.approx(expected, abs=1e-4)
    assert again.scores == pytest.approx(expected[::-1], abs=1e-4)
    assert out.best == max(range(4), key=expected.__getitem__)
    assert set(out.timings) == {"preprocess", "copy", "score"}
    with VideoSession(model, processor, videos["bikes.mp4"], processor_kwargs=FRAMES) as session:
        with pytest.raises(ValueError, match="non-empty strings"):
            session.score(["rabbit", " "], question=QUESTIONS[0])


def test_eval_likelihood_scoring_picks_the_most_likely_option(tiny_model, videos, tmp_path):
    rows, runs = eval_both_ways(tiny_model, videos, tmp_path, "--scoring", "likelihood")
    for run in runs.values():
        assert run["scoring"] == "likelihood"
        for p in run["predictions"]:
            assert p["prediction"] == "ABC"[max(range(3), key=p["option_scores"].__getitem__)]
            assert p["correct"] == (p["prediction"] == p["answer"])
    for reused, alone in zip(runs["reuse"]["predictions"], runs["default"]["predictions"]):
        assert reused["option_scores"] == pytest.approx(alone["option_scores"], abs=1e-3)
    model, processor = AutoModel.from_pretrained(tiny_model).eval(), AutoProcessor.from_pretrained(tiny_model)
    first = runs["default"]["predictions"][0]
    assert first["option_scores"][1] == pytest.approx(
        uncached_option_score(model, processor, videos["bigbuckbunny.mp4"], QUESTIONS[0], "car"), abs=1e-3)
    with pytest.raises(SystemExit):  # argparse refuses an unknown scoring by name
        cli(["eval", str(tiny_model), "--data", str(tmp_path / "bench" / "manifest.jsonl"), "--scoring", "letters"])


# ---------------------------------------------------------------------------------------- the real micro model
def test_liteframe_micro_session_answers_as_the_uncached_path(videos):
    """The real model and its byte-level BPE tokenizer (SmolLM2): the session's question tokens and answers are the
    uncached path's."""
    from liteframe_hf.eval.run import ask, load_model

    model, processor, _ = load_model("liteframe-micro", device="cpu", progress=lambda *_: None)
    video = videos["bikes.mp4"]
    questions = ["What is shown in the video?", "Which of these appears?\nA. A bicycle.\nB. A cat.\n"
                 "Answer with the option's letter from the given choices directly.", "  Describe it.\n\n"]
    with VideoSession(model, processor, video, processor_kwargs={"num_frames": 16}) as session:
        for question in questions:
            cached = session.ask(question, max_new_tokens=6)
            plain = ask(model, processor, video, question, num_frames=16, max_new_tokens=6)
            assert (cached.text, cached.prompt_tokens) == (plain.text, plain.prompt_tokens), question
