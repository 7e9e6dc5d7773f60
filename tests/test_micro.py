"""Micro models by name (`liteframe_hf.micro`): LiteFrame-micro, the teacher VLM and its post-hoc WAP variant
as LiteFrame folders; the shared LLM/projector assembly; the trained-weights seam (LiteFrame folder, PEFT)."""

import json

import pytest
import torch

from liteframe_hf import LiteFrameConfig, LiteFrameForConditionalGeneration, LiteFrameVisionConfig
from liteframe_hf.bench.encoder import random_encoder
from liteframe_hf.micro import MICRO_MODELS, assemble_video_llm, default_model_dir, load_trained_weights

from tiny import tiny_liteframe_config, tiny_text_config, tiny_tokenizer


def test_names_variants_and_token_counts(tmp_path, monkeypatch):
    per_clip = {name: LiteFrameConfig(vision_config=LiteFrameVisionConfig.from_variant(m.vision_variant)).tokens_per_clip()
                for name, m in MICRO_MODELS.items()}
    assert per_clip == {"liteframe-micro": 16, "liteframe-micro-ctd": 16, "teacher-vlm-micro": 256,
                        "teacher-vlm-micro-posthoc": 16, "teacher-vlm-micro-caption": 256, "liteframe-micro-s": 16,
                        "liteframe-micro-s-base": 16, "liteframe-micro-s-qa": 16, "teacher-vlm-micro-qa": 256,
                        "teacher-vlm-micro-qa-posthoc": 16}
    # Trained parts: the post-hoc variant and the CTD-only model use the teacher VLM's adapter; LiteFrame's LMA
    # adapter goes on top of it (it was trained on liteframe-micro-ctd); the needle teachers keep DINOv2-S's encoder.
    assert MICRO_MODELS["teacher-vlm-micro-posthoc"].adapters == ("teacher-vlm-micro",)
    assert MICRO_MODELS["liteframe-micro-ctd"].adapters == ("teacher-vlm-micro",)
    assert MICRO_MODELS["liteframe-micro"].adapters == ("teacher-vlm-micro", "liteframe-micro")
    # Recognition: the caption stage was trained on the teacher VLM, LiteFrame-micro-S's LMA on the caption-stage one.
    caption = ("teacher-vlm-micro", "teacher-vlm-micro-caption")
    assert MICRO_MODELS["teacher-vlm-micro-caption"].adapters == caption
    assert MICRO_MODELS["liteframe-micro-s-base"].adapters == caption
    assert MICRO_MODELS["liteframe-micro-s"].adapters == (*caption, "liteframe-micro-s")
    # The multiple-choice stage: new LoRA on each caption-stage model (the post-hoc variant takes the teacher's).
    assert MICRO_MODELS["liteframe-micro-s-qa"].adapters == (*caption, "liteframe-micro-s", "liteframe-micro-s-qa")
    assert MICRO_MODELS["teacher-vlm-micro-qa"].adapters == (*caption, "teacher-vlm-micro-qa")
    assert MICRO_MODELS["teacher-vlm-micro-qa-posthoc"].adapters == (*caption, "teacher-vlm-micro-qa")
    # Trained encoders: the CTD one, LiteFrame-micro-S's, and the recognition teacher's aligned DINOv2-S blocks.
    assert {m.encoder_from for m in MICRO_MODELS.values()} == {None, "liteframe-micro", "liteframe-micro-s",
                                                               "teacher-vlm-micro-caption"}
    monkeypatch.setenv("LITEFRAME_HOME", str(tmp_path))
    assert default_model_dir() == tmp_path / "models" / "liteframe-micro-s"  # the default
    assert default_model_dir("teacher-vlm-micro") == tmp_path / "models" / "teacher-vlm-micro"
    with pytest.raises(ValueError, match="unknown micro model 'teacher-vlm'; choose one of liteframe-micro"):
        default_model_dir("teacher-vlm")


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = tmp_path_factory.mktemp("tiny_llm")
    tokenizer = tiny_tokenizer()
    fields = tiny_text_config(vocab_size=len(tokenizer))
    fields.pop("model_type")
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(**fields)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_tower(seed, **overrides):
    return random_encoder("liteframe-tiny", temporal_std=0.2, seed=seed, **overrides)


def test_one_assembly_for_every_tower(tiny_llm_dir):
    # Two encoders of the same output width (one pools its output like the post-hoc variant): the same LLM and the
    # same initial projector, whatever the encoder's size; the encoder's weights are copied in.
    a = tiny_tower(1)
    b = tiny_tower(2, downsample_layers={}, post_layernorm=True, output_wap_block=(4, 2, 2), num_hidden_layers=2)
    (model_a, proc_a), (model_b, proc_b) = assemble_video_llm(a, tiny_llm_dir), assemble_video_llm(b, tiny_llm_dir)
    projector_a, projector_b = model_a.model.multi_modal_projector.state_dict(), model_b.model.multi_modal_projector.state_dict()
    assert all(torch.equal(projector_a[k], projector_b[k]) for k in projector_a)
    assert projector_a["linear_1.weight"].std() > 0.01  # initialised, not left at zero
    for model, tower in ((model_a, a), (model_b, b)):
        theirs = tower.state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in model.model.vision_tower.state_dict().items())
    assert proc_a.tokens_per_clip == model_a.config.tokens_per_clip() == 4
    assert proc_b.tokens_per_clip == model_b.config.tokens_per_clip() == 4  # 8x8 grid -> WAP 4x4 -> shuffle 2x2
    assert model_b.config.video_token_id == proc_b.video_context_token_id
    assert proc_b.video_processor.size["height"] == 56


def _perturbed(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _logits(model):
    torch.manual_seed(0)
    pixels = torch.randn(1, 4, 3, 56, 56)
    ids = torch.tensor([[5] * 3 + [255] * 4 + [9] * 3])
    with torch.no_grad():
        return model(input_ids=ids, pixel_values_videos=pixels).logits


def test_trained_weights_from_a_liteframe_folder(tmp_path):
    torch.manual_seed(0)
    trained = _perturbed(LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval(), 1)
    trained.save_pretrained(tmp_path / "trained")
    plain = LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval()
    assert (_logits(plain) - _logits(trained)).abs().max() > 1e-3
    assert load_trained_weights(plain, tmp_path / "trained") == "LiteFrame folder"
    torch.testing.assert_close(_logits(plain), _logits(trained), rtol=0, atol=0)
    # The post-hoc variant differs only in its output pooling (no weights): it takes the same trained weights.
    posthoc = LiteFrameForConditionalGeneration(tiny_liteframe_config(vision_overrides=dict(output_wap_block=(1, 2, 2))))
    load_trained_weights(posthoc, tmp_path / "trained")
    theirs = trained.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in posthoc.state_dict().items())
    # Another encoder architecture is refused, naming what differs.
    other = LiteFrameForConditionalGeneration(tiny_liteframe_config(vision_overrides=dict(downsample_layers={1: (4, 2, 2)})))
    with pytest.raises(ValueError, match=r"another encoder architecture than this model \(downsample_layers differ\)"):
        load_trained_weights(other, tmp_path / "trained")
    with pytest.raises(FileNotFoundError, match="neither a PEFT adapter"):
        load_trained_weights(plain, tmp_path)


@pytest.mark.parametrize("packed", [False, True])
def test_trained_weights_from_a_peft_adapter(packed, tmp_path):
    """A PEFT adapter folder merges into the model: exactly as saved, or from a weights set's packed file (int8
    matrices, `pack_weights`) to within the packing's rounding."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file

    from liteframe_hf.micro import pack_weights

    torch.manual_seed(0)
    base_state = LiteFrameForConditionalGeneration(tiny_liteframe_config()).state_dict()
    tuned = LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval()
    tuned.load_state_dict(base_state)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                      modules_to_save=["multi_modal_projector"], init_lora_weights=False)
    peft_model = get_peft_model(tuned, lora)
    with torch.no_grad():  # a "trained" projector
        peft_model.base_model.model.model.multi_modal_projector.modules_to_save["default"].linear_2.bias.add_(0.5)
    peft_model.eval()
    expected = _logits(peft_model)
    peft_model.save_pretrained(tmp_path / "adapter")
    if packed:
        stored = tmp_path / "adapter" / "adapter_model.safetensors"
        state = load_file(str(stored))
        save_file(pack_weights(state), str(stored))
        assert {t.dtype for t in load_file(str(stored)).values()} == {torch.int8, torch.float32, torch.bfloat16}
    fresh = LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval()
    fresh.load_state_dict(base_state)
    before = _logits(fresh)
    assert load_trained_weights(fresh, tmp_path / "adapter") == "PEFT adapter, merged"
    assert (before - expected).abs().max() > 1e-3
    tolerance = 2e-2 if packed else 1e-5
    torch.testing.assert_close(_logits(fresh), expected, rtol=tolerance, atol=tolerance)
    assert not any("lora" in name for name, _ in fresh.named_parameters())


@pytest.mark.slow
def test_posthoc_teacher_vlm_is_a_liteframe_folder_with_the_teacher_weights(tmp_path):
    """Real assets: the post-hoc variant is built once as a LiteFrame folder (idempotent), loads through the Auto
    classes with a processor that writes 16 placeholders per clip, runs on a real video, and holds exactly the
    teacher VLM's weights."""
    from transformers import AutoModel, AutoProcessor

    from liteframe_hf.assets import asset_path, ensure_assets
    from liteframe_hf.micro import assemble_micro_model, build_micro_model

    ensure_assets(["dinov2", "smollm2", "videos"], progress=None)
    messages = []
    folder = build_micro_model(tmp_path / "posthoc", name="teacher-vlm-micro-posthoc", progress=messages.append)
    assert any("DINOv2-S/14 copied" in m for m in messages)
    record = json.loads((folder / "liteframe_micro.json").read_text())
    assert record["name"] == "teacher-vlm-micro-posthoc" and record["tokens_per_clip"] == 16
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_micro_model(folder, name="teacher-vlm-micro-posthoc", progress=messages.append) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    assert model.config.vision_config.output_wap_block == (4, 2, 2)
    assert processor.tokens_per_clip == model.config.tokens_per_clip() == 16
    chat = [{"role": "user", "content": [{"type": "video", "video": str(asset_path("bikes.mp4"))},
                                         {"type": "text", "text": "What happens?"}]}]
    inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", processor_kwargs={"num_frames": 8})
    assert (inputs["input_ids"] == model.config.video_token_id).sum() == 2 * 16
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3

    teacher, _, teacher_record = assemble_micro_model("teacher-vlm-micro", progress=messages.append)
    assert teacher_record["tokens_per_clip"] == 256
    theirs = teacher.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())


def test_a_trained_ctd_encoder_replaces_the_tower_without_its_student_init(monkeypatch):
    """liteframe-micro's tower comes whole from the shipped CTD encoder: the DINOv2-S initialisation it would replace
    (a head fit of seconds) is not run. Stopped before the LLM is assembled, so it takes a second."""
    from safetensors.torch import load_file

    import liteframe_hf.micro as micro
    import liteframe_hf.student_init as student_init

    class Assembled(Exception):
        pass

    def no_init(*args, **kwargs):
        raise AssertionError("the student init ran though the trained encoder replaces it")

    def stop(tower, *args, **kwargs):
        raise Assembled(tower)

    monkeypatch.setattr(student_init, "init_student_from_teacher", no_init)
    monkeypatch.setattr(micro, "assemble_video_llm", stop)
    with pytest.raises(Assembled) as assembled:
        micro.assemble_micro_model("liteframe-micro", progress=None)
    tower = assembled.value.args[0].state_dict()
    shipped = micro.unpack_weights(load_file(str(micro.WEIGHTS_DIR / "liteframe-micro" / micro.ENCODER_FILE)))
    assert tower.keys() == shipped.keys() and all(torch.equal(tower[k], shipped[k]) for k in tower)
    # Without trained weights the tower is initialised from DINOv2-S (the guard above fires).
    with pytest.raises(AssertionError, match="student init ran"):
        micro.assemble_micro_model("liteframe-micro", weights=None, progress=None)


@pytest.mark.parametrize("name, block", [("liteframe-micro-s", 5), ("teacher-vlm-micro-caption", 11)])
def test_a_partial_trained_encoder_keeps_the_student_init_for_the_rest(name, block, tmp_path, monkeypatch):
    """The encoder files of liteframe-micro-s and of the recognition teacher hold only the blocks align.py trained
    (packed: int8 matrices with a scale per row): those replace the initialised ones, and every other weight is the
    student init from DINOv2-S (the teacher's: DINOv2-S copied), as when the model is built untrained. A file with a
    weight the variant lacks, or an int8 matrix without its scales, is refused. Stopped before the LLM is assembled."""
    from safetensors.torch import save_file

    import liteframe_hf.micro as micro

    class Assembled(Exception):
        pass

    def stop(tower, *args, **kwargs):
        raise Assembled(tower)

    monkeypatch.setattr(micro, "assemble_video_llm", stop)
    spec = micro.MICRO_MODELS[name]
    with pytest.raises(Assembled) as untrained:
        micro.assemble_micro_model(spec.name, weights=None, progress=lambda *_: None)
    init = untrained.value.args[0].state_dict()
    generator = torch.Generator().manual_seed(0)
    trained = {k: v + 0.01 * torch.randn(v.shape, generator=generator) for k, v in init.items()
               if k.startswith(f"layers.{block}.")}
    assert trained
    packed = micro.pack_weights(trained)
    weights = tmp_path / "weights"
    (weights / spec.encoder_from).mkdir(parents=True)
    save_file(packed, str(weights / spec.encoder_from / micro.ENCODER_FILE))
    for entry in spec.adapters:  # never read: the assembly stops before the adapters are merged
        (weights / entry).mkdir(parents=True, exist_ok=True)
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            (weights / entry / file).touch()
    with pytest.raises(Assembled) as built:
        micro.assemble_micro_model(spec.name, weights=weights, progress=lambda *_: None)
    tower = built.value.args[0].state_dict()
    unpacked = micro.unpack_weights(packed)
    assert all(torch.equal(tower[k], unpacked[k]) for k in trained)
    assert all(not torch.equal(tower[k], init[k]) for k in trained)  # the trained values, not the init's
    assert all(torch.equal(tower[k], init[k]) for k in init if k not in trained)
    save_file({f"layers.{block + 1}.extra": torch.zeros(1)}, str(weights / spec.encoder_from / micro.ENCODER_FILE))
    with pytest.raises(ValueError, match="does not have"):
        micro.assemble_micro_model(spec.name, weights=weights, progress=lambda *_: None)
    matrix = next(k for k, v in trained.items() if v.dim() == 2)
    save_file({matrix: packed[matrix]}, str(weights / spec.encoder_from / micro.ENCODER_FILE))
    with pytest.raises(ValueError, match="no .*int8_scale"):
        micro.assemble_micro_model(spec.name, weights=weights, progress=lambda *_: None)
