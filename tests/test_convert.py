"""InternVL3-*-hf -> LiteFrame conversion on a tiny random sharded InternVL checkpoint (fast), and its peak memory
on a ~1.3 GB checkpoint (slow)."""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, InternVLConfig, InternVLForConditionalGeneration

from liteframe_hf import LiteFrameForConditionalGeneration, LiteFrameVisionConfig, LiteFrameVisionModel
from liteframe_hf.cli import main as cli_main
from liteframe_hf.convert import (
    ConversionError,
    SafetensorsFile,
    TensorPlan,
    convert_internvl,
    internvl_to_liteframe_key,
    write_safetensors_shards,
)
from liteframe_hf.student_init import init_student_from_teacher

from tiny import TINY_VIDEO_TOKEN_ID, tiny_text_config, tiny_tokenizer

VISION = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, image_size=56,
              patch_size=7, attention_bias=True, use_mean_pooling=True)


# InternVL3-style: a system prompt, then ChatML turns with a <video> line per video item.
SOURCE_CHAT_TEMPLATE = (
    "{{ '<|im_start|>system\nYou are InternVL.<|im_end|>\n' }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}{% if item['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def internvl(tmp_path_factory):
    """A tiny InternVL3-style checkpoint saved sharded the way transformers saves InternVL3-*-hf, with a tokenizer
    that has InternVL's special tokens and an image-processor config."""
    torch.manual_seed(0)
    config = InternVLConfig(vision_config=VISION, text_config=tiny_text_config(), image_token_id=TINY_VIDEO_TOKEN_ID,
                            tie_word_embeddings=False)
    model = InternVLForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-trivial CLS / positions / LayerScale (constants at init)
        tower = model.model.vision_tower
        tower.embeddings.cls_token.normal_()
        tower.embeddings.position_embeddings.normal_(std=0.5)
        for layer in tower.encoder.layer:
            layer.lambda_1.uniform_(0.2, 1.0)
            layer.lambda_2.uniform_(0.2, 1.0)
    path = tmp_path_factory.mktemp("internvl")
    model.save_pretrained(path, max_shard_size="100KB")
    tiny_tokenizer().save_pretrained(path)
    (path / "chat_template.jinja").write_text(SOURCE_CHAT_TEMPLATE)
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "GotOcr2ImageProcessorFast", "image_mean": [0.485, 0.456, 0.406],
         "image_std": [0.229, 0.224, 0.225]}))
    assert len(json.loads((path / "model.safetensors.index.json").read_text())["weight_map"]) > 0
    assert len(list(path.glob("model-*.safetensors"))) > 3
    return path, model


@pytest.fixture(scope="module")
def converted(internvl, tmp_path_factory):
    src, _ = internvl
    out = tmp_path_factory.mktemp("liteframe")
    report = convert_internvl(src, out, student_config="liteframe-tiny", dtype="fp32", max_shard_size="150KB",
                              progress=False, overwrite=True)
    return out, report


def test_converted_folder_carries_the_published_auto_map_and_pipeline_entry(converted):
    # The same entries `liteframe push` writes, so `pipeline("video-text-to-text", model=out, trust_remote_code=True)`
    # works on a converted folder with plain transformers.
    out, _ = converted
    config = json.loads((out / "config.json").read_text())
    assert config["custom_pipelines"] == {"video-text-to-text": {"impl": "pipeline_liteframe.VideoTextToTextPipeline",
                                                                 "pt": ["AutoModelForImageTextToText"],
                                                                 "type": "multimodal"}}
    assert config["auto_map"]["AutoProcessor"] == "processing_liteframe.LiteFrameProcessor"
    assert (out / "pipeline_liteframe.py").is_file() and (out / "processing_liteframe.py").is_file()


def test_converted_checkpoint_loads_with_no_missing_or_unexpected_keys(internvl, converted):
    src, source = internvl
    out, report = converted
    model, info = LiteFrameForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert (out / "model.safetensors.index.json").is_file() and report.shards > 1
    assert len(list(out.glob("model-*.safetensors"))) == report.shards

    # projector + LLM + lm_head: bit-identical to the source
    theirs = source.state_dict()
    ours = model.state_dict()
    copied = [k for k in theirs if not k.startswith("model.vision_tower.")]
    assert len(copied) == report.tensors_copied
    for key in copied:
        assert torch.equal(ours[key], theirs[key]), key

    # config built from the InternVL config
    cfg = model.config
    assert cfg.video_token_id == source.config.image_token_id
    assert cfg.pixel_shuffle_ratio == source.config.downsample_ratio
    assert cfg.vision_config.out_hidden_size == 64 and cfg.vision_config.hidden_size == 32
    assert cfg.text_config.to_dict() | {"dtype": None} == source.config.text_config.to_dict() | {"dtype": None}
    assert cfg.tie_word_embeddings is False
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModel"].endswith("LiteFrameForConditionalGeneration")

    # the tower = the student initialised from the source's InternViT (deterministic synthetic calibration)
    student = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("liteframe-tiny", out_hidden_size=64))
    init_student_from_teacher(student, source.model.vision_tower)
    for name, p in student.state_dict().items():
        torch.testing.assert_close(ours["model.vision_tower." + name], p, rtol=1e-5, atol=1e-6, msg=name)

    recorded = json.loads((out / "liteframe_conversion.json").read_text())
    assert recorded["student_init"]["layer_map"] == [0, 1, 2, 3]
    assert recorded["student_init"]["head"]["cosine"] > 0.5
    print("\n" + report.summary())


def test_converted_model_generates_with_its_processor(converted):
    import numpy as np

    from liteframe_hf.modeling.processing_liteframe import LiteFrameProcessor
    from liteframe_hf.modeling.video_processing_liteframe import LiteFrameVideoProcessor

    out, report = converted
    model = LiteFrameForConditionalGeneration.from_pretrained(out).eval()
    processor_dict, _ = LiteFrameProcessor.get_processor_dict(out)
    assert processor_dict["tokens_per_clip"] == model.config.tokens_per_clip() == report.tokens_per_clip == 4
    parts = {"video_processor": LiteFrameVideoProcessor.from_pretrained(out), "tokenizer": AutoTokenizer.from_pretrained(out)}
    processor = LiteFrameProcessor.from_args_and_dict([parts[a] for a in LiteFrameProcessor.get_attributes()], processor_dict)
    video = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what happens ?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert processor.chat_template == SOURCE_CHAT_TEMPLATE and text.startswith("<|im_start|>system\nYou are InternVL.")
    assert "LiteFrameProcessor" in report.processor and "source's chat template" in report.processor
    inputs = processor(text=[text], videos=[video], num_frames=8, return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == 2 * 4  # 2 clips x 4 tokens
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, inputs["input_ids"].shape[1] + 4)


def test_bf16_output_custom_layer_map_and_cli(internvl, tmp_path):
    src, source = internvl
    config_file = tmp_path / "student.yaml"
    config_file.write_text("variant: liteframe-tiny\nnum_attention_heads: 4\n")
    out = tmp_path / "out"
    code = cli_main(["convert", "--internvl", str(src), "--out", str(out), "--student-config", str(config_file),
                     "--layer-map", "3,2,1,0", "--dtype", "bf16", "--max-shard-size", "1MB", "--head-init", "slice",
                     "--quiet"])
    assert code == 0
    model, info = LiteFrameForConditionalGeneration.from_pretrained(out, dtype="auto", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.dtype == torch.bfloat16 and model.config.vision_config.num_attention_heads == 4
    assert (out / "model.safetensors").is_file() and not (out / "model.safetensors.index.json").exists()  # one shard
    theirs = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("model.vision_tower."):
            assert torch.equal(value, theirs[key].to(torch.bfloat16)), key
    recorded = json.loads((out / "liteframe_conversion.json").read_text())
    assert recorded["student_init"]["layer_map"] == [3, 2, 1, 0]
    assert recorded["student_init"]["head"]["method"].startswith("slice")
    # block 1 of the student came from teacher block 3: 4 heads of 8 = the first 8 dims of each 16-dim teacher head
    rows = torch.cat([torch.arange(h * 16, h * 16 + 8) for h in range(4)])
    teacher_k = source.model.vision_tower.encoder.layer[3].attention.k_proj.weight[rows][:, :32]
    assert torch.equal(model.model.vision_tower.layers[0].attention.k_proj.weight, teacher_k.to(torch.bfloat16))


def test_help_keeps_examples_and_bullets_on_their_own_lines_and_names_a_tiny_path(capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main(["convert", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "\n    liteframe convert --internvl InternVL3-8B-hf --out liteframe-8b-init\n" in text
    assert "\n* weights: " in text and "\n* liteframe_conversion.json: " in text
    # the tiny path it names is the test above (`-k cli` selects it), which converts a tiny InternVL with the CLI
    assert "\n    pytest tests/test_convert.py -k cli\n" in text
    assert "cli" in test_bf16_output_custom_layer_map_and_cli.__name__


def test_tied_embeddings(tmp_path):
    """A tied InternVL (no lm_head tensor saved) converts into a tied LiteFrame that loads completely."""
    torch.manual_seed(1)
    config = InternVLConfig(vision_config=VISION, text_config=tiny_text_config(tie_word_embeddings=True),
                            image_token_id=TINY_VIDEO_TOKEN_ID, tie_word_embeddings=True)
    source = InternVLForConditionalGeneration(config).eval()
    source.save_pretrained(tmp_path / "src")
    report = convert_internvl(tmp_path / "src", tmp_path / "out", student_config="liteframe-tiny", dtype="fp32",
                              head_init="slice", num_calibration_clips=0, progress=False)
    model, info = LiteFrameForConditionalGeneration.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.config.tie_word_embeddings and report.shards == 1
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert torch.equal(model.lm_head.weight, source.lm_head.weight)


def test_clear_errors(internvl, tmp_path, capsys):
    src, _ = internvl
    with pytest.raises(ConversionError, match="not a folder"):
        convert_internvl(tmp_path / "nope", tmp_path / "o1", progress=False)

    other = tmp_path / "dino"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    with pytest.raises(ConversionError, match="'dinov2' checkpoint, not InternVL3-\\*-hf"):
        convert_internvl(other, tmp_path / "o2", progress=False)
    (other / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(ConversionError, match="original OpenGVLab format"):
        convert_internvl(other, tmp_path / "o2", progress=False)

    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    victim = sorted(broken.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(ConversionError, match=f"missing 1 of the .* shards .*{victim.name}"):
        convert_internvl(broken, tmp_path / "o3", progress=False)

    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({"variant": "liteframe-tiny", "hidden_size": 128, "num_attention_heads": 4}))
    with pytest.raises(ConversionError, match="wider than the InternViT teacher .*128 > 64"):
        convert_internvl(src, tmp_path / "o4", student_config=wide, progress=False)
    assert not (tmp_path / "o4").exists()  # checked before anything is written

    with pytest.raises(ConversionError, match="neither a variant"):
        convert_internvl(src, tmp_path / "o5", student_config="liteframe-xxl", progress=False)

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ConversionError, match="not empty"):
        convert_internvl(src, busy, student_config="liteframe-tiny", progress=False)

    assert cli_main(["convert", "--internvl", str(other), "--out", str(tmp_path / "o6"), "--quiet"]) == 2
    assert "liteframe convert: error:" in capsys.readouterr().err


def test_key_mapping_covers_saved_and_in_memory_layouts():
    assert internvl_to_liteframe_key("language_model.lm_head.weight") == "lm_head.weight"
    assert internvl_to_liteframe_key("language_model.model.layers.0.mlp.up_proj.weight") == "model.language_model.layers.0.mlp.up_proj.weight"
    assert internvl_to_liteframe_key("language_model.norm.weight") == "model.language_model.norm.weight"
    assert internvl_to_liteframe_key("vision_tower.encoder.layer.0.lambda_1") == "model.vision_tower.encoder.layer.0.lambda_1"
    assert internvl_to_liteframe_key("multi_modal_projector.linear_1.bias") == "model.multi_modal_projector.linear_1.bias"
    assert internvl_to_liteframe_key("model.language_model.embed_tokens.weight") == "model.language_model.embed_tokens.weight"
    assert internvl_to_liteframe_key("lm_head.weight") == "lm_head.weight"
    assert internvl_to_liteframe_key("mlp1.0.weight") is None


def test_streaming_shard_writer_is_safetensors_compatible(tmp_path):
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.randn(7).to(torch.bfloat16),
        "c": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "d": torch.tensor([True, False, True]),
        "e": torch.tensor(2.5),
        "f": torch.randn(4, 4, dtype=torch.float16),
    }
    plans = [TensorPlan(k, v.dtype, tuple(v.shape), (lambda v=v: v)) for k, v in tensors.items()]
    index = write_safetensors_shards(plans, tmp_path, max_shard_size=64, progress=False)
    files = sorted({*index["weight_map"].values()})
    assert len(files) > 1 and (tmp_path / "model.safetensors.index.json").is_file()
    loaded = {}
    for name in files:
        loaded.update(load_file(tmp_path / name))  # the reference reader accepts our files
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v), k
    # and our reader reads the reference writer's files
    save_file(tensors, tmp_path / "ref.safetensors")
    reader = SafetensorsFile(tmp_path / "ref.safetensors")
    for k, v in tensors.items():
        assert reader.dtype(k) == v.dtype and torch.equal(reader.read(k), v), k


# ------------------------------------------------------------------------------------------ slow: peak memory
MAKE_BIG = textwrap.dedent(
    """
    import sys, torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    text = dict(model_type="qwen2", hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=False)
    vision = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, image_size=112,
                  patch_size=14, attention_bias=True, use_mean_pooling=True)
    config = InternVLConfig(vision_config=vision, text_config=text, image_token_id=31999, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config)
    model.save_pretrained(sys.argv[1], max_shard_size="300MB")
    print(sum(p.numel() * p.element_size() for p in model.parameters()))
    """
)
CONVERT_AND_MEASURE = textwrap.dedent(
    """
    import json, sys
    import liteframe_hf, torch
    from liteframe_hf.convert import convert_internvl
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec from the forking parent (pytest,
    # possibly big after other tests), while VmHWM is this process image's own high-water mark.
    def status_mb(field):
        return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024
    baseline = status_mb("VmRSS")
    student = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=512, image_size=112,
                   downsample_layers={2: [2, 2, 2], 3: [2, 1, 1]})
    report = convert_internvl(sys.argv[1], sys.argv[2], student_config=student, dtype=sys.argv[3],
                              max_shard_size="300MB", num_calibration_clips=2, progress=False)
    peak = status_mb("VmHWM")
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "bytes_written": report.bytes_written,
                      "shards": report.shards}))
    """
)


@pytest.mark.slow
def test_conversion_peak_memory_stays_far_below_the_model_size(tmp_path):
    src, out = tmp_path / "big", tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    made = subprocess.run([sys.executable, "-c", MAKE_BIG, str(src)], capture_output=True, text=True, env=env, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    model_bytes = int(made.stdout.strip().splitlines()[-1])
    shards = sorted(src.glob("model-*.safetensors"))
    largest_shard = max(f.stat().st_size for f in shards)
    largest_tensor = max(
        max(math.prod(r.shape(k)) * r.dtype(k).itemsize for k in r.keys())
        for r in map(SafetensorsFile, shards)
    )
    results = {}
    for dtype in ("fp32", "bf16"):
        run = subprocess.run([sys.executable, "-c", CONVERT_AND_MEASURE, str(src), str(out / dtype), dtype],
                             capture_output=True, text=True, env=env, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        results[dtype] = json.loads(run.stdout.strip().splitlines()[-1])
        model, info = LiteFrameForConditionalGeneration.from_pretrained(out / dtype, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"]
        del model
    mb = 2**20
    print(f"\n[convert peak memory] source {model_bytes / mb:.0f} MB fp32 in {len(shards)} shards "
          f"(largest shard {largest_shard / mb:.0f} MB, largest tensor {largest_tensor / mb:.0f} MB)")
    for dtype, r in results.items():
        print(f"  --dtype {dtype}: peak RSS {r['peak_mb']:.0f} MB (after imports {r['baseline_mb']:.0f} MB, "
              f"conversion adds {r['peak_mb'] - r['baseline_mb']:.0f} MB); wrote {r['bytes_written'] / mb:.0f} MB "
              f"in {r['shards']} shards")
        added = (r["peak_mb"] - r["baseline_mb"]) * mb
        assert added < largest_shard + 3 * largest_tensor, r  # ~ one shard at most, never the model
        assert added < 0.5 * model_bytes, r


def test_convert_keeps_the_source_dtype_unless_told_and_says_what_it_wrote(internvl, tmp_path, capsys):
    src, _ = internvl  # saved in float32
    args = ["convert", "--internvl", str(src), "--student-config", "liteframe-tiny", "--head-init", "slice", "--quiet"]
    assert cli_main(args + ["--out", str(tmp_path / "kept")]) == 0
    out = capsys.readouterr().out
    assert "GB (float32)" in out and "weights kept in the source's dtype (float32)" in out
    assert LiteFrameForConditionalGeneration.from_pretrained(tmp_path / "kept", dtype="auto").dtype == torch.float32
    assert cli_main(args + ["--out", str(tmp_path / "cast"), "--dtype", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "GB (bfloat16)" in out and "weights cast from the source's float32 to bfloat16 (dtype='bf16')" in out
    assert LiteFrameForConditionalGeneration.from_pretrained(tmp_path / "cast", dtype="auto").dtype == torch.bfloat16
