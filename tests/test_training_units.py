"""Training building blocks, in process and fast: ctd_loss, schedule, config, data (real generated MP4s),
prompt labels, checkpoints, LoRA targets, the teacher-target cache and the resumable micro-batch stream."""

import json
import math
import re

import numpy as np
import pytest
import torch
import yaml
from accelerate import Accelerator

from liteframe_hf.modeling.processing_liteframe import CHAT_TEMPLATE
from liteframe_hf.training.cache import build_target_cache
from liteframe_hf.training.checkpoint import STATE_FILE, list_checkpoints, resolve_checkpoint
from liteframe_hf.training.config import CTDConfig, LMAConfig, build_parser, parse_config
from liteframe_hf.training.data import (
    IGNORE_INDEX,
    CTDClipDataset,
    ConversationCollator,
    EpochSampler,
    VideoConversationDataset,
    VideoTable,
    collate_clips,
    normalize_conversation,
    sample_clip_timestamps,
    tokenize_conversation,
)
from liteframe_hf.training.loop import make_loader, micro_batches
from liteframe_hf.training.losses import ctd_loss, ctd_metrics
from liteframe_hf.training.models import build_lma_model, build_student, lma_lora_config, load_teacher, student_config
from liteframe_hf.training.optim import build_optimizer, build_scheduler
from liteframe_hf.training.synthetic import write_synthetic_video_qa, write_synthetic_videos

from tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_synthetic_videos(tmp_path_factory.mktemp("videos"), 5, size=64, num_frames=24, fps=8)


@pytest.fixture(scope="module")
def qa_manifest(tmp_path_factory):
    return write_synthetic_video_qa(tmp_path_factory.mktemp("qa"), 4, size=64, num_frames=24, fps=8)


def ctd_cfg(train_data, **overrides):
    """The tiny CTD recipe's fields; a test that loads the teacher passes teacher=tiny_teacher."""
    fields = dict(student_variant="liteframe-tiny", student_init="random", image_size=56,
                  train_data=str(train_data), num_workers=0)
    fields.update(overrides)
    cfg = CTDConfig(**fields)
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------------------------- ctd_loss
def test_ctd_loss_is_mse_of_differences_clipped_at_3_sigma():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 1, 4, 4, 8, generator=g)
    prediction = target + 0.1 * torch.randn(2, 1, 4, 4, 8, generator=g)
    prediction[0, 0, 0, 0, :2] -= 50.0  # two outliers: target - prediction = +50
    prediction.requires_grad_(True)
    loss = ctd_loss(prediction, target)

    d = (target - prediction).detach().double()
    bound = 3 * d.std()
    expected = d.clamp(-bound, bound).square().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() < (d.square().mean().item() / 10)  # the outliers are capped, not squared

    loss.backward()
    grad = prediction.grad
    assert torch.all(grad[0, 0, 0, 0, :2] == 0)  # beyond 3 sigma: constant contribution, no gradient
    inside = (d.abs() < bound).float()
    torch.testing.assert_close(grad.double(), (-2 * d / d.numel() * inside), rtol=1e-4, atol=1e-9)


def test_ctd_loss_without_clipping_is_plain_mse_and_checks_shapes():
    a, b = torch.randn(3, 1, 2, 2, 4), torch.randn(3, 1, 2, 2, 4)
    assert ctd_loss(a, b, clip_sigma=0).item() == pytest.approx(torch.mean((a - b) ** 2).item(), rel=1e-6)
    with pytest.raises(ValueError, match="out_hidden_size"):
        ctd_loss(a, b[..., :3])
    metrics = ctd_metrics(a, a)
    assert torch.allclose(metrics["mse"], torch.zeros(3)) and torch.allclose(metrics["cosine"], torch.ones(3))


# ----------------------------------------------------------------------------------------------- optimisation
def test_schedule_is_linear_warmup_then_cosine_to_floor():
    cfg = ctd_cfg("x", learning_rate=1.0, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    model = torch.nn.Linear(3, 3)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    lrs = []
    for _ in range(cfg.max_steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(x > y for x, y in zip(lrs[4:], lrs[5:]))
    assert scheduler.get_last_lr()[0] == pytest.approx(0.1)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == cfg.weight_decay and no_decay["weight_decay"] == 0.0
    assert [p.ndim for p in decay["params"]] == [2] and [p.ndim for p in no_decay["params"]] == [1]


# ----------------------------------------------------------------------------------------------- config
def test_config_precedence_yaml_then_cli_and_unknown_keys(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train_data": "v/", "learning_rate": 1e-3, "max_steps": 7, "wap_block": [2, 2, 2]}))
    cfg = parse_config(CTDConfig, ["--config", str(recipe), "--max_steps", "9", "--student_overrides", "{num_hidden_layers: 6}",
                                   "--no-timing", "--teacher_chunk_size", "none"])
    assert (cfg.learning_rate, cfg.max_steps, cfg.wap_block) == (1e-3, 9, [2, 2, 2])
    assert cfg.student_overrides == {"num_hidden_layers": 6} and cfg.timing is False and cfg.teacher_chunk_size is None
    assert cfg.clip_sigma == 3.0 and cfg.max_grad_norm == 1.0  # paper defaults
    recipe.write_text("train_data: v/\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        parse_config(CTDConfig, ["--config", str(recipe)])
    with pytest.raises(ValueError, match="clip_plan: fixed"):
        parse_config(CTDConfig, ["--train_data", "v/", "--target_cache", "c/"])


@pytest.mark.parametrize("cls", [CTDConfig, LMAConfig])
def test_help_documents_every_option(cls):
    text = build_parser(cls).format_help()
    for name, field in cls.__dataclass_fields__.items():
        assert f"--{name}" in text, name
        assert field.metadata["help"].split()[0] in text, name


def test_recipes_parse(tmp_path):
    for recipe, cls in [("tests/configs/ctd_tiny", CTDConfig), ("training/configs/ctd_micro", CTDConfig),
                        ("training/configs/ctd_paper", CTDConfig), ("tests/configs/lma_tiny", LMAConfig),
                        ("training/configs/lma_micro", LMAConfig), ("training/configs/lma_paper", LMAConfig)]:
        cfg = parse_config(cls, ["--config", f"{recipe}.yaml", "--train_data", "x"])
        assert cfg.max_steps > 0
    paper = parse_config(CTDConfig, ["--config", "training/configs/ctd_paper.yaml"])
    assert (paper.learning_rate, paper.per_device_batch_size * 8, paper.clip_sigma, paper.wap_block) == (4e-5, 512, 3.0, [4, 2, 2])
    lma = parse_config(LMAConfig, ["--config", "training/configs/lma_paper.yaml"])
    assert (lma.lora_r, lma.lora_alpha, lma.lora_dropout, lma.frame_budgets) == (4, 8, 0.05, [128, 256, 512])
    assert lma.per_device_batch_size * lma.gradient_accumulation_steps * 8 == 128 and lma.max_steps == 25000


# ----------------------------------------------------------------------------------------------- data
def test_clip_timestamps_follow_the_fps_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ts = sample_clip_timestamps(10.0, rng, 4, 1.0, 4.0)
        spacing = np.diff(ts)
        assert np.allclose(spacing, spacing[0]) and 0.25 - 1e-9 <= spacing[0] <= 1.0 + 1e-9
        assert ts[0] >= 0 and ts[-1] < 10.0
    short = sample_clip_timestamps(0.5, rng, 4, 1.0, 4.0)  # shorter than any window: dense over the whole video
    assert short[-1] < 0.5


def test_sampler_order_depends_on_seed_and_epoch_only():
    s = EpochSampler(6, seed=3)
    s.set_epoch(1)
    keys = list(s)
    assert sorted(k - 6 for k in keys) == list(range(6)) and list(EpochSampler(6, 3).__iter__()) != keys
    s2 = EpochSampler(6, seed=3)
    s2.set_epoch(1)
    assert list(s2) == keys


def test_video_tables_folder_manifest_and_unknown_column(tmp_path, videos):
    folder = VideoTable(str(videos[0].parent))
    assert len(folder) == 5 and folder.source(0) == str(videos[0])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video": f"clips/{p.name}"}) + "\n" for p in videos[:2]))
    (tmp_path / "clips").symlink_to(videos[0].parent)
    table = VideoTable(str(manifest))
    assert table.source(1) == str(tmp_path / "clips" / videos[1].name)
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_text("path\n" + "\n".join(str(p) for p in videos[:3]) + "\n")
    assert len(VideoTable(str(csv_manifest), video_column="path")) == 3
    with pytest.raises(KeyError, match="--video_column"):
        VideoTable(str(csv_manifest))


def test_video_feature_tables_are_decoded_from_bytes(tmp_path, videos):
    import datasets

    features = datasets.Features({"video": datasets.Video(decode=False)})
    rows = datasets.Dataset.from_dict({"video": [{"path": None, "bytes": p.read_bytes()} for p in videos[:2]]},
                                      features=features)
    rows.to_parquet(str(tmp_path / "hub_style.parquet"))
    table = VideoTable(str(tmp_path / "hub_style.parquet"))
    assert isinstance(table.source(1), bytes)
    dataset = CTDClipDataset(table, ctd_cfg(tmp_path), 56, seed=0, fixed=True)
    assert dataset[1]["pixel_values"].shape == (4, 3, 56, 56) and dataset[1]["skipped"] == 0


def test_ctd_samples_are_deterministic_and_unreadable_videos_are_skipped(tmp_path, videos):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 300)
    manifest = tmp_path / "m.jsonl"
    names = [str(broken), str(videos[0]), str(tmp_path / "missing.mp4"), str(videos[1])]
    manifest.write_text("".join(json.dumps({"video": n}) + "\n" for n in names))
    cfg = ctd_cfg(manifest)
    dataset = CTDClipDataset(VideoTable(str(manifest)), cfg, 56, seed=0, fixed=False)
    with pytest.warns(UserWarning, match="skipping .*broken.mp4"):
        first = dataset[0]  # broken -> falls through to videos[0]
    assert first["skipped"] == 1 and first["pixel_values"].shape == (4, 3, 56, 56)
    with pytest.warns(UserWarning, match="missing.mp4"):
        assert dataset[2]["skipped"] == 1
    assert dataset[1]["skipped"] == 0
    again = CTDClipDataset(VideoTable(str(manifest)), cfg, 56, seed=0, fixed=False)
    with pytest.warns(UserWarning):
        torch.testing.assert_close(again[0]["pixel_values"], first["pixel_values"])
    assert not torch.equal(dataset[1]["pixel_values"], dataset[1 + len(dataset)]["pixel_values"])  # new epoch, new clip
    fixed = CTDClipDataset(VideoTable(str(manifest)), cfg, 56, seed=0, fixed=True)
    torch.testing.assert_close(fixed[1]["pixel_values"], fixed[1 + len(fixed)]["pixel_values"])
    batch = collate_clips([dataset[1], dataset[3]])
    assert batch["pixel_values"].shape == (2, 4, 3, 56, 56) and int(batch["skipped"]) == 0


# ----------------------------------------------------------------------------------------------- LMA data
def test_conversations_normalise_and_train_on_answers_only():
    llava = normalize_conversation([{"from": "human", "value": "What is it?"}, {"from": "gpt", "value": "a cup"}])
    assert llava == [{"role": "user", "content": "<video>\nWhat is it?"}, {"role": "assistant", "content": "a cup"}]
    chat = normalize_conversation([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe"}]},
                                   {"role": "assistant", "content": [{"type": "text", "text": "a man walks"}]}])
    assert chat[0]["content"] == "<video>\nDescribe"
    tokenizer = tiny_tokenizer()
    messages = [{"role": "user", "content": "what is the video"}, {"role": "assistant", "content": "a red car"},
                {"role": "user", "content": "how many"}, {"role": "assistant", "content": "two"}]
    ids, labels = tokenize_conversation(tokenizer, messages, CHAT_TEMPLATE)
    trained = tokenizer.decode([i for i, l in zip(ids, labels) if l != IGNORE_INDEX])
    assert trained.split() == ["a", "red", "car", "<|im_end|>", "two", "<|im_end|>"]
    assert len(ids) == len(labels) and "user" not in trained


def test_lma_dataset_frames_prompt_and_collate(qa_manifest, tiny_language_model):
    cfg = LMAConfig(train_data=str(qa_manifest), vision_model="liteframe-tiny", language_model=tiny_language_model,
                    image_size=56, frame_budgets=[4, 8, 512], num_workers=0)
    model, processor = build_lma_model(cfg)
    tpc = model.config.tokens_per_clip()
    assert processor.tokens_per_clip == tpc and processor.video_processor.size["height"] == 56
    dataset = VideoConversationDataset(VideoTable(str(qa_manifest)), cfg, processor, seed=0, fixed=False)
    for key in range(8):
        sample = dataset[key]
        frames = sample["pixel_values_videos"].shape[0]
        assert frames % 4 == 0 and frames <= 3 * 4 * 4  # budget capped by 3 s x fps <= 4
        assert int((sample["input_ids"] == model.config.video_token_id).sum()) == frames // 4 * tpc
    text = processor.tokenizer.decode(dataset[0]["input_ids"])
    assert re.search(r"0 - \d s <img>", text) and "</img>" in text  # the processor's clip headers, real time spans
    batch = ConversationCollator(processor.tokenizer.pad_token_id)([dataset[0], dataset[1]])
    assert batch["pixel_values_videos"].shape[0] == 2 and batch["attention_mask"].sum() == sum(
        len(dataset[k]["input_ids"]) for k in (0, 1))
    out = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values_videos", "video_num_frames", "labels")})
    assert torch.isfinite(out.loss)


def test_lora_adapts_only_the_language_model(tiny_language_model):
    from peft import get_peft_model

    cfg = LMAConfig(train_data="x", vision_model="liteframe-tiny", language_model=tiny_language_model)
    model = get_peft_model(build_lma_model(cfg)[0], lma_lora_config(cfg))
    lora = [n for n, m in model.named_modules() if hasattr(m, "lora_A")]
    assert len(lora) == 2 * 7 and all(".language_model." in n for n in lora)
    trainable = {n.split(".")[3] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"language_model", "multi_modal_projector"}
    assert model.peft_config["default"].r == 4 and model.peft_config["default"].lora_alpha == 8


def test_student_initialised_from_the_teacher_starts_close_to_its_targets(videos, tiny_teacher):
    cfg = ctd_cfg(videos[0].parent, teacher=tiny_teacher, student_init="teacher", student_layer_map="0,0,1,1")
    teacher = load_teacher(cfg, torch.device("cpu"))
    dataset = CTDClipDataset(VideoTable(cfg.train_data), cfg, 56, seed=0, fixed=True)
    clips = torch.stack([dataset[i]["pixel_values"] for i in range(len(dataset))])
    cosine = {}
    for init in ("random", "teacher"):
        cfg.student_init = init
        student, report = build_student(cfg, teacher, student_config(cfg, teacher), calibration_clips=clips[:4])
        with torch.no_grad():
            cosine[init] = ctd_metrics(student(clips).last_hidden_state, teacher.wap_targets(clips))["cosine"].mean()
    assert report.layer_map == [0, 0, 1, 1] and report.head["method"].startswith("lstsq")
    assert cosine["teacher"] > 0.8 > cosine["random"]


# ----------------------------------------------------------------------------------------------- checkpoints
def test_latest_checkpoint_ignores_incomplete_folders(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / STATE_FILE).write_text(json.dumps({"step": step}))
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]
    assert resolve_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-4"
    assert resolve_checkpoint(tmp_path, None) is None
    with pytest.raises(FileNotFoundError, match=r"no checkpoint-\* under .*empty; drop --resume_from_checkpoint"):
        resolve_checkpoint(tmp_path / "empty", "latest")
    (tmp_path / "killed" / "checkpoint-2").mkdir(parents=True)  # killed while writing its first checkpoint
    with pytest.raises(FileNotFoundError, match="only incomplete ones.*checkpoint-2"):
        resolve_checkpoint(tmp_path / "killed", "latest")
    with pytest.raises(FileNotFoundError, match="not a complete"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-6"))


# ----------------------------------------------------------------------------------------------- cache + stream
def test_target_cache_holds_the_teacher_targets(tmp_path, videos, tiny_teacher):
    cfg = ctd_cfg(videos[0].parent, teacher=tiny_teacher, clip_plan="fixed", clips_per_video=2)
    accelerator = Accelerator(cpu=True)
    teacher = load_teacher(cfg, accelerator.device)
    student, report = build_student(cfg, teacher, student_config(cfg, teacher))
    assert student.config.out_hidden_size == teacher.hidden_size == 48 and report is None
    dataset = CTDClipDataset(VideoTable(cfg.train_data), cfg, 56, seed=0, fixed=True)
    recipe = {"teacher": cfg.teacher}
    cache, seconds = build_target_cache(accelerator, dataset, teacher, tmp_path / "c", recipe, shard_size=4,
                                        batch_size=3, num_workers=0)
    assert len(cache) == 10 and seconds > 0 and len(list((tmp_path / "c").glob("targets-*.safetensors"))) == 3
    for i in (0, 5, 9):
        expected = teacher.wap_targets(dataset[i]["pixel_values"][None])[0]
        torch.testing.assert_close(cache[i], expected, rtol=1e-5, atol=1e-5)
    _, again = build_target_cache(accelerator, dataset, teacher, tmp_path / "c", recipe, 4, 3, 0)
    assert again == 0.0  # same fingerprint: reused
    built = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").iterdir()}
    # Another plan (here 3 clips per video instead of 2, or another teacher) is refused, naming what differs and the
    # fix, and the cache is left as it was: it used to be rebuilt in place under a run that still read it.
    other_plan = CTDClipDataset(VideoTable(cfg.train_data), ctd_cfg(videos[0].parent, clip_plan="fixed",
                                                                    clips_per_video=3), 56, seed=0, fixed=True)
    with pytest.raises(ValueError, match=r"another clip plan \(the number of clips \(videos x --clips_per_video\): "
                                         r"10 cached, 15 now\).*--target_cache auto.*or delete"):
        build_target_cache(accelerator, other_plan, teacher, tmp_path / "c", recipe, 4, 3, 0)
    with pytest.raises(ValueError, match=re.escape(f"--teacher: {tiny_teacher!r} cached, 'other' now")):
        build_target_cache(accelerator, dataset, teacher, tmp_path / "c", {"teacher": "other"}, 4, 3, 0)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").iterdir()} == built
    (tmp_path / "c" / "index.json").unlink()  # a build killed before its index: built again
    _, rebuilt = build_target_cache(accelerator, dataset, teacher, tmp_path / "c", recipe, 4, 3, 0)
    assert rebuilt > 0


def test_target_cache_auto_follows_the_output_dir(tmp_path):
    recipe = "training/configs/ctd_micro.yaml"
    cfg = parse_config(CTDConfig, ["--config", recipe, "--output_dir", str(tmp_path / "mine")])
    assert cfg.target_cache == str(tmp_path / "mine" / "target_cache")
    assert parse_config(CTDConfig, ["--config", recipe]).target_cache == "outputs/ctd_micro/target_cache"
    assert parse_config(CTDConfig, ["--config", recipe, "--target_cache", "c/"]).target_cache == "c/"
    assert parse_config(CTDConfig, ["--config", recipe, "--target_cache", "none"]).target_cache is None


def test_micro_batch_stream_resumes_at_any_position(videos):
    cfg = ctd_cfg(videos[0].parent)
    accelerator = Accelerator(cpu=True)
    dataset = CTDClipDataset(VideoTable(cfg.train_data), cfg, 56, seed=0, fixed=False)

    def keys(start, n):
        loader = accelerator.prepare(make_loader(dataset, 2, collate_clips, 0, EpochSampler(len(dataset), 0), 0))
        stream = micro_batches(accelerator, loader, start)
        return [(epoch, batch["key"].tolist(), batch["pixel_values"].sum().item()) for epoch, batch in
                (next(stream) for _ in range(n))]

    full = keys(0, 8)  # 3 batches per epoch (5 clips): crosses two epoch boundaries
    assert [e for e, _, _ in full] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert keys(4, 4) == full[4:]


class _Keys(torch.utils.data.Dataset):
    """Samples that are their sampler keys: the data order without decoding anything."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        return {"key": key}


@pytest.mark.parametrize("process_index", [0, 1])
def test_resumed_stream_keeps_the_epoch_order_on_every_process(process_index):
    """With the loader sharded over 2 processes, resuming inside epoch 1 must give epoch 1's keys (offset n),
    not replay epoch 0's order: set_epoch has to reach the sampler under skip_first_batches' wrapper too."""
    from accelerate.data_loader import prepare_data_loader

    accelerator, n = Accelerator(cpu=True), 8

    def keys(start, count):
        loader = prepare_data_loader(make_loader(_Keys(n), 2, None, 0, EpochSampler(n, 0), 0), num_processes=2,
                                     process_index=process_index, put_on_device=False)
        stream = micro_batches(accelerator, loader, start)
        return [(epoch, batch["key"].tolist()) for epoch, batch in (next(stream) for _ in range(count))]

    full = keys(0, 6)  # 8 keys / (2 processes x 2) = 2 batches per process and epoch
    assert [e for e, _ in full] == [0, 0, 1, 1, 2, 2]
    assert all(k // n == e for e, batch in full for k in batch)  # keys carry their epoch: epoch * n + i
    assert keys(3, 3) == full[3:]  # resumed after one batch of epoch 1
    assert keys(2, 4) == full[2:]  # resumed at an epoch boundary


def test_device_and_precision_are_refused_as_recipe_options(tmp_path):
    """They belong to Accelerate (launch flags, its config file, its environment): a recipe key or script flag
    would fight the launcher, so both are errors that say where to put them."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mixed_precision: bf16\n")
    with pytest.raises(ValueError, match="accelerate launch --mixed_precision bf16"):
        parse_config(CTDConfig, ["--config", str(recipe), "--train_data", "x"])
    with pytest.raises(ValueError, match="ACCELERATE_USE_CPU=1"):
        parse_config(LMAConfig, ["--train_data", "x", "--cpu"])


def test_training_pixels_are_the_video_processors(tmp_path):
    # One normalisation: a clip of real footage decoded for training and the same frames through the video processor
    # are the same tensor, bit for bit (the CTD recipe's mean / std go to the processor). Dividing by 255 first, as
    # the training data once did, is an ulp off.
    from liteframe_hf import LiteFrameVideoProcessor
    from liteframe_hf.assets import asset_path, ensure_assets
    from liteframe_hf.modeling.video_decoding_liteframe import decode_frames

    ensure_assets(["videos"], progress=None)
    (tmp_path / "bikes.mp4").symlink_to(asset_path("bikes.mp4"))
    cfg = ctd_cfg(tmp_path, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
    dataset = CTDClipDataset(VideoTable(cfg.train_data), cfg, 56, seed=0, fixed=True)
    times = np.array([0.1, 0.4, 0.7, 1.0])
    pixels, _ = dataset.decode(0, times)
    frames = decode_frames(dataset.table.source(0), times, size=(56, 56), threads=False).frames  # uint8 (T, S, S, 3)
    processor = LiteFrameVideoProcessor(size={"height": 56, "width": 56}, image_mean=cfg.image_mean,
                                        image_std=cfg.image_std)
    processed = processor(videos=[frames], do_sample_frames=False, return_tensors="pt")["pixel_values_videos"][0]
    assert processed.dtype == pixels.dtype == torch.float32 and torch.equal(processed, pixels)
    mean, std = torch.tensor(cfg.image_mean)[:, None, None], torch.tensor(cfg.image_std)[:, None, None]
    divided_first = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert not torch.equal(divided_first, pixels)
