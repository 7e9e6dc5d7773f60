"""Token alignment (training/align.py, issue 22): the cached tokens are exactly the projector's input at inference,
the loss sends covered tokens to their caption and the rest to background, and a real run on grounded clips of the
teacher VLM trains, evaluates, resumes, reuses its cache and writes a loadable model."""

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoProcessor

from liteframe_hf.cli import main as cli
from liteframe_hf.modeling.modeling_liteframe import LiteFrameForConditionalGeneration
from liteframe_hf.training.features import GroundedFeatures, build_feature_cache, caption_embeddings
from liteframe_hf.training.losses import token_alignment_loss
from liteframe_hf.training.models import load_align_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grounded(tmp_path_factory):
    """Grounded train (3 views) and val (2 views) manifests of the same 4 objects (seconds to write)."""
    out = tmp_path_factory.mktemp("grounded")
    for split, views in (("train", 3), ("val", 2)):
        assert cli(["data", "grounded", "--split", split, "--out", str(out), "--views", str(views), "--objects", "4",
                    "--seconds", "1"]) == 0
    return {split: out / split / "manifest.jsonl" for split in ("train", "val")}


@pytest.fixture(scope="module")
def teacher():
    return load_align_model("teacher-vlm-micro")


def _script(name: str, *argv: str) -> dict:
    """Run training/NAME.py's main in this process (quietly); its summary."""
    spec = importlib.util.spec_from_file_location(f"_{name}_script", ROOT / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(io.StringIO()):
        return module.main(list(argv))


def _align(*argv: str) -> dict:
    return _script("align", *argv)


def test_cached_tokens_are_the_projector_input_of_the_first_frame(grounded, teacher, tmp_path):
    model, processor = teacher
    path = build_feature_cache(Accelerator(cpu=True), model, processor, grounded["val"], tmp_path, frames=1)
    data = GroundedFeatures(path)
    assert len(data) == 8 and data.tokens_per_clip == 64 and data.tokens.dtype == torch.bfloat16
    rows = [json.loads(line) for line in grounded["val"].read_text().splitlines()]
    video = str(grounded["val"].parent / rows[0]["video"])
    pixels = processor.video_processor([video], num_frames=4, return_tensors="pt")["pixel_values_videos"]
    with torch.no_grad():
        seen = model.model.get_video_features(pixels).pooler_output[0, :64]  # the first frame's 64 LLM tokens
        from_cache = model.model.multi_modal_projector(data.tokens[0].float())
    torch.testing.assert_close(from_cache, seen, rtol=0.05, atol=0.05 * seen.abs().mean().item())  # bf16 cache
    # The object share follows the box: the covered cells are the tokens under the cut-out.
    share = data.object_share[0].view(8, 8)
    x, y, w, h = rows[0]["box"]
    column, row = int((x + w / 2) / 426 * 8), int((y + h / 2) / 240 * 8)
    cell_w, cell_h = 426 / 8, 240 / 8
    overlap_x = min(x + w, (column + 1) * cell_w) - max(x, column * cell_w)
    overlap_y = min(y + h, (row + 1) * cell_h) - max(y, row * cell_h)
    assert float(share[row, column]) == pytest.approx(overlap_x * overlap_y / (cell_w * cell_h), abs=2e-3)
    assert float(share[row, column]) > 0
    assert float(share.sum()) * (426 / 8) * (240 / 8) == pytest.approx(w * h, rel=0.01)  # fp16 shares
    assert data.vocabulary == sorted({r["caption"] for r in rows})
    assert build_feature_cache(Accelerator(cpu=True), model, processor, grounded["val"], tmp_path, frames=1) == path
    with pytest.raises(ValueError, match="outside the training vocabulary"):
        GroundedFeatures(path, vocabulary=data.vocabulary[:2])


def test_partial_views_show_the_cut_out_only_while_onscreen_and_their_cache_knows_which_frames(teacher, tmp_path):
    """`--partial`: a view's cut-out is pasted only on its onscreen frames (the same draws otherwise); the rows say
    when, and the feature cache marks the cut-out's cells only in frames that show it, and takes the first such frame
    when it caches one frame per clip (the distillation teacher's targets)."""
    import numpy as np

    from liteframe_hf.data.grounded import ViewRenderer, grounded_vocabulary
    from liteframe_hf.data.needle import haystack_sources

    stamp, sources = grounded_vocabulary(4)[0], haystack_sources("val")[:1]
    full, _, box = ViewRenderer(sources, np.random.default_rng(0), 8, 0.125, 1).view(stamp, False)
    part, _, same_box = ViewRenderer(sources, np.random.default_rng(0), 8, 0.125, 1).view(stamp, False, onscreen=(2, 5))
    assert box == same_box and torch.equal(full[2:5], part[2:5])
    assert not torch.equal(full[:2], part[:2]) and not torch.equal(full[5:], part[5:])

    out = tmp_path / "grounded"
    assert cli(["data", "grounded", "--split", "val", "--out", str(out), "--views", "2", "--objects", "4",
                "--seconds", "1", "--partial", "1"]) == 0
    manifest = out / "val" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all(r["id"].endswith("-p1") for r in rows)  # its own names: never another build's clips
    assert all(0.25 <= r["onscreen"][1] - r["onscreen"][0] <= 0.875 and r["onscreen"][1] <= 1.0 for r in rows)
    model, processor = teacher  # per frame: every frame has its own tokens and shares
    every = GroundedFeatures(build_feature_cache(Accelerator(cpu=True), model, processor, manifest, tmp_path, frames=4))
    one = GroundedFeatures(build_feature_cache(Accelerator(cpu=True), model, processor, manifest, tmp_path, frames=1))
    firsts = []
    for i, row in enumerate(rows):
        video = str(manifest.parent / row["video"])
        times = processor.video_processor([video], num_frames=4, return_tensors="pt",
                                          return_metadata=True)["video_metadata"][0].timestamps
        shown = [row["onscreen"][0] <= t < row["onscreen"][1] for t in times]
        assert any(shown)  # on screen for a quarter of the clip at least: one of the 4 sampled frames shows it
        per_frame = every.object_share[i].view(4, -1).sum(1)
        assert [bool(x > 0) for x in per_frame] == shown, (row, times)
        first = shown.index(True)
        firsts.append(first)
        assert torch.equal(one.tokens[i], every.tokens[i].view(4, -1, every.tokens.shape[-1])[first])
        assert torch.equal(one.object_share[i], every.object_share[i].view(4, -1)[first])
    assert max(firsts) > 0  # some view shows it only after its first frame: not frame 0 by luck


def test_token_alignment_loss_sends_covered_tokens_to_their_caption_and_the_rest_to_background():
    targets = torch.eye(3) * 2  # captions 0, 1 and background (row 2)
    share = torch.tensor([[0.9, 0.1]])  # token 0 covers the object, token 1 does not
    right = torch.stack([targets[1], targets[2]])[None]
    wrong = torch.stack([targets[2], targets[1]])[None]
    label = torch.tensor([1])
    assert token_alignment_loss(right, label, share, targets) < 0.01
    assert token_alignment_loss(wrong, label, share, targets) > 10
    # Background tokens weigh background_weight: with weight 0 a wrong background token costs nothing.
    half_wrong = torch.stack([targets[1], targets[0]])[None]
    assert token_alignment_loss(half_wrong, label, share, targets, background_weight=0.0, mse_weight=0.0) < 0.01
    per_clip = token_alignment_loss(torch.cat([right, wrong]), torch.tensor([1, 1]), share.repeat(2, 1), targets,
                                    reduce=False)
    assert per_clip.shape == (2,) and per_clip[0] < per_clip[1]


def test_align_run_trains_evaluates_resumes_and_writes_a_loadable_model(grounded, teacher, tmp_path):
    out = tmp_path / "run"
    common = ["--config", str(ROOT / "training" / "configs" / "align_teacher_micro.yaml"), "--output_dir", str(out),
              "--train_data", str(grounded["train"]), "--eval_data", str(grounded["val"]), "--per_device_batch_size",
              "4", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1"]
    first = _align(*common, "--max_steps", "2")
    assert first["step"] == 2 and 0.0 <= first["eval/four_way"] <= 1.0
    cache = sorted((out / "features").glob("*.safetensors"))
    assert [p.name.split("-")[0] for p in cache] == ["train", "val"]
    built = {p: p.stat().st_mtime_ns for p in cache}
    summary = _align(*common, "--max_steps", "4", "--resume_from_checkpoint", "latest")
    assert summary["step"] == 4 and summary["steps_this_run"] == 2
    assert {p: p.stat().st_mtime_ns for p in cache} == built  # the cache was read, not rebuilt
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert "eval/four_way" in metrics[0] and len([m for m in metrics[1:] if m.split(",")[0] == "4"]) >= 1
    aligned = LiteFrameForConditionalGeneration.from_pretrained(out / "aligned")
    AutoProcessor.from_pretrained(out / "aligned")
    base = teacher[0]
    moved = aligned.model.multi_modal_projector.linear_2.weight - base.model.multi_modal_projector.linear_2.weight
    assert moved.abs().max() > 0  # the projector trained
    for name, param in aligned.model.language_model.state_dict().items():  # nothing else did
        torch.testing.assert_close(param, base.model.language_model.state_dict()[name], rtol=0, atol=0)
    # The targets are the captions' mean input embeddings.
    data = GroundedFeatures(cache[0])
    emb = caption_embeddings(base, teacher[1].tokenizer, data.vocabulary)
    ids = teacher[1].tokenizer(" " + data.vocabulary[0], add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(emb[0], base.get_input_embeddings().weight[ids].mean(0))


def test_lma_alignment_weight_adds_the_token_alignment_loss_of_each_grounded_row(grounded, teacher, tmp_path):
    """lma.py --alignment_weight w: the first step's loss is the answer loss + w x the mean over the rows of the
    token-alignment loss of each row's projector tokens (computed here from `get_video_features`, not lma.py's
    hook), and the projector then trains on it."""
    from liteframe_hf.data.grounded import object_share
    from liteframe_hf.training.config import LMAConfig, parse_config
    from liteframe_hf.training.data import VideoConversationDataset, VideoTable, caption_vocabulary

    model, processor = teacher
    base = tmp_path / "base"
    model.save_pretrained(base)
    processor.save_pretrained(base)
    # one view of each object (4 rows: one step of the whole table keeps the three runs below cheap)
    rows = [{**r, "video": str(grounded["train"].parent / r["video"])}
            for r in map(json.loads, grounded["train"].read_text().splitlines()) if r["id"].endswith("-000")]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--config", str(ROOT / "training" / "configs" / "lma_caption_teacher_micro.yaml"), "--base_model",
              str(base), "--train_data", str(train), "--eval_data", str(grounded["val"]),
              "--per_device_batch_size", str(len(rows)), "--max_steps", "1", "--logging_steps", "1",
              "--eval_steps", "0",
              "--num_eval_samples", "2", "--no-save_merged", "--num_workers", "0"]
    first_loss = {}
    for weight in ("0", "2"):
        _script("lma", *common, "--output_dir", str(tmp_path / weight), "--alignment_weight", weight)
        metrics = (tmp_path / weight / "metrics.csv").read_text().splitlines()
        header, step1 = metrics[0].split(","), next(m.split(",") for m in metrics[1:] if m.startswith("1,"))
        first_loss[weight] = float(step1[header.index("loss")])

    cfg = parse_config(LMAConfig, common + ["--output_dir", str(tmp_path / "x")])
    table = VideoTable(cfg.train_data)
    vocabulary = caption_vocabulary(table)
    assert len(vocabulary) == 4
    data = VideoConversationDataset(table, cfg, processor, seed=0, fixed=True, vocabulary=vocabulary)
    targets = caption_embeddings(model, processor.tokenizer, vocabulary + ["background"])
    losses = []
    with torch.no_grad():
        for i in range(len(data)):
            sample = data[i]
            assert vocabulary[int(sample["object"])] == table.row(i)["caption"]
            tokens = model.get_video_features(sample["pixel_values_videos"][None]).pooler_output  # (1, 4 x 64, d)
            share = object_share(sample["box"][None], 8).repeat(1, 4)  # 8 x 8 tokens per frame, 4 frames
            losses.append(token_alignment_loss(tokens, sample["object"][None], share, targets))
    expected = 2 * torch.stack(losses).mean().item()
    assert expected > 0.1
    assert first_loss["2"] - first_loss["0"] == pytest.approx(expected, rel=2e-3)
    trained = [load_file_projector(tmp_path / w / "adapter") for w in ("0", "2")]
    assert not torch.allclose(trained[0], trained[1])  # the alignment term moved the projector

    # Rows whose cut-out is on screen for only part of the clip (`onscreen`, here the first half): a frame outside it
    # has no object token, all background. Same videos and answers, so the same answer loss as the run above.
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps({**r, "onscreen": [0.0, 0.5]}) + "\n" for r in rows))
    _script("lma", *[str(partial) if arg == str(train) else arg for arg in common], "--output_dir",
            str(tmp_path / "partial"), "--alignment_weight", "2")
    metrics = (tmp_path / "partial" / "metrics.csv").read_text().splitlines()
    header, step1 = metrics[0].split(","), next(m.split(",") for m in metrics[1:] if m.startswith("1,"))
    data = VideoConversationDataset(VideoTable(str(partial)), cfg, processor, seed=0, fixed=True, vocabulary=vocabulary)
    losses = []
    with torch.no_grad():
        for i in range(len(data)):
            sample = data[i]
            assert sample["shown"].tolist() == [True, True, False, False]  # frames at 0.125, 0.375, 0.625, 0.875 s
            tokens = model.get_video_features(sample["pixel_values_videos"][None]).pooler_output
            share = (object_share(sample["box"][None], 8)[:, None] * sample["shown"][None, :, None]).flatten(1)
            losses.append(token_alignment_loss(tokens, sample["object"][None], share, targets))
    expected_partial = 2 * torch.stack(losses).mean().item()
    assert abs(expected_partial - expected) > 0.01
    assert float(step1[header.index("loss")]) - first_loss["0"] == pytest.approx(expected_partial, rel=2e-3)


def load_file_projector(adapter: Path) -> torch.Tensor:
    """The trained projector's linear_2 weight in a saved LMA adapter (peft modules_to_save)."""
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return next(v for k, v in weights.items() if "multi_modal_projector" in k and k.endswith("linear_2.weight"))


@pytest.fixture(scope="module")
def micro_s(tmp_path_factory):
    """LiteFrame-micro-S as initialised (DINOv2-S's first six blocks, seeded projector, SmolLM2), saved."""
    from liteframe_hf.micro import MICRO_S_BASE_NAME, build_micro_model

    return build_micro_model(tmp_path_factory.mktemp("micro_s") / "base", name=MICRO_S_BASE_NAME, weights=None,
                             progress=lambda *_: None)


def test_stem_cache_then_tail_is_the_video_features_and_its_first_blocks_are_dinov2s(grounded, micro_s, tmp_path):
    """A stem cache (the tower's first blocks) run through `StemTail` gives the LLM tokens `get_video_features`
    gives from pixels; LiteFrame-micro-S's first block is DINOv2-S's own."""
    from transformers import Dinov2Model

    from liteframe_hf.assets import asset_path
    from liteframe_hf.training.features import StemTail

    model, processor = load_align_model(str(micro_s))
    path = build_feature_cache(Accelerator(cpu=True), model, processor, grounded["val"], tmp_path, stem_blocks=2)
    data = GroundedFeatures(path)
    assert data.tokens.shape == (8, 2, 1 + 8 * 8, 384)  # 4 frames x 16 x 16 merged (2, 2, 2) after block 1
    assert data.tokens_per_clip == 16 and data.object_share.shape == (8, 16)
    rows = [json.loads(line) for line in grounded["val"].read_text().splitlines()]
    pixels = processor.video_processor([str(grounded["val"].parent / r["video"]) for r in rows[:2]], num_frames=4,
                                       return_tensors="pt")["pixel_values_videos"]
    with torch.no_grad():
        want = model.model.get_video_features(pixels).pooler_output  # (2, 16, d)
        got = StemTail(model, 2, 224)(data.tokens[:2].float())
        torch.testing.assert_close(got, want, rtol=0.05, atol=0.05 * want.abs().mean().item())  # bf16 cache
        dinov2 = Dinov2Model.from_pretrained(asset_path("dinov2"), dtype=torch.float32).eval()
        frame = pixels[:1, 0]
        tower = model.model.vision_tower
        x = tower.layers[0](tower.embed(pixels[:1])[0])  # (1, 4, L, D): block 1, before its merger
        hidden = dinov2(pixel_values=frame, output_hidden_states=True).hidden_states[1]  # after DINOv2's block 1
    torch.testing.assert_close(x[0, 0], hidden[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at least one to train"):
        build_feature_cache(Accelerator(cpu=True), model, processor, grounded["val"], tmp_path, stem_blocks=6)


def test_a_per_frame_teachers_stem_cache_of_one_frame_then_tail_is_its_projector_input(grounded, teacher, tmp_path):
    """The teacher VLM's tower (per frame, clip_len 4) caches its first 8 blocks on each clip's first frame alone, and
    `StemTail` from there gives what the projector gives on the whole tower's cached tokens of that frame."""
    from liteframe_hf.training.features import StemTail

    model, processor = teacher
    accelerator = Accelerator(cpu=True)
    stem = GroundedFeatures(build_feature_cache(accelerator, model, processor, grounded["val"], tmp_path, frames=1,
                                                stem_blocks=8))
    whole = GroundedFeatures(build_feature_cache(accelerator, model, processor, grounded["val"], tmp_path, frames=1))
    assert stem.tokens.shape == (8, 1, 1 + 16 * 16, 384) and stem.tokens_per_clip == whole.tokens_per_clip == 64
    torch.testing.assert_close(stem.object_share, whole.object_share)
    with torch.no_grad():
        got = StemTail(model, 8, 224)(stem.tokens[:2].float())
        want = model.model.multi_modal_projector(whole.tokens[:2].float())
    torch.testing.assert_close(got, want, rtol=0.05, atol=0.05 * want.abs().mean().item())  # bf16 caches


def test_align_train_blocks_trains_only_the_tower_after_its_stem_and_distils_the_teacher(grounded, teacher, micro_s,
                                                                                         tmp_path):
    """align.py --train_blocks 2 --distill_from TEACHER on LiteFrame-micro-S: blocks 5-6, the final LayerNorm and the
    projector move, the stem and the LLM do not; the distillation term is on (its eval metric, and a run without it
    ends elsewhere); the exported encoder file holds exactly the trained tensors, packed as a weights set stores them."""
    from liteframe_hf.micro import INT8_SCALE, pack_weights, unpack_weights
    from liteframe_hf.training.reproduce import trained_encoder_weights

    teacher_dir = tmp_path / "teacher"
    teacher[0].save_pretrained(teacher_dir)
    teacher[1].save_pretrained(teacher_dir)
    common = ["--config", str(ROOT / "training" / "configs" / "align_liteframe_micro_s.yaml"), "--base_model",
              str(micro_s), "--train_data", str(grounded["train"]), "--eval_data", str(grounded["val"]),
              "--feature_cache", str(tmp_path / "features"), "--train_blocks", "2", "--per_device_batch_size", "4",
              "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1",
              "--warmup_steps", "0"]
    summary = _align(*common, "--output_dir", str(tmp_path / "run"), "--distill_from", str(teacher_dir))
    assert summary["train_blocks"] == 2 and summary["eval/distill"] > 0
    plain = _align(*common, "--output_dir", str(tmp_path / "plain"), "--distill_weight", "0", "--distill_from", "none")
    assert "eval/distill" not in plain and plain["eval/loss"] != summary["eval/loss"]
    base = LiteFrameForConditionalGeneration.from_pretrained(micro_s).state_dict()
    aligned = LiteFrameForConditionalGeneration.from_pretrained(tmp_path / "run" / "aligned").state_dict()
    moved = {k for k in base if not torch.equal(base[k], aligned[k])}
    tower = "model.vision_tower."
    blocks = {k for k in moved if k.startswith(tower + "layers.")}
    assert blocks and all(k.startswith((tower + "layers.4.", tower + "layers.5.")) for k in blocks)
    assert any(k.startswith(tower + "post_layernorm.") for k in moved)
    assert any("multi_modal_projector" in k for k in moved)
    assert not any("language_model" in k or "embeddings" in k or "token_mergers" in k for k in moved)
    exported = trained_encoder_weights(tmp_path / "run" / "aligned")
    assert {tower + k for k in exported} >= {k for k in moved if k.startswith(tower)}
    assert not any(k.startswith(("layers.0.", "layers.1.", "layers.2.", "layers.3.", "embeddings")) for k in exported)
    # Stored packed: int8 matrices with a scale per row (the shorter side), the rest bf16; unpacked within half a step.
    packed = pack_weights(exported)
    assert packed["layers.5.mlp.fc1.weight"].dtype == torch.int8
    assert packed["post_layernorm.weight"].dtype == torch.bfloat16
    assert packed["layers.5.mlp.fc1.weight" + INT8_SCALE].shape == (1, 384)  # fc1 is (1536, 384): per column
    unpacked = unpack_weights(packed)
    assert unpacked.keys() == exported.keys()
    for name, weight in exported.items():
        step = packed[name + INT8_SCALE] if weight.dim() == 2 else weight.abs() / 128
        assert ((unpacked[name] - weight).abs() <= step / 2 + 1e-7).all(), name
