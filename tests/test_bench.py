"""The benchmark commands run end to end as users call them (`liteframe bench ...`), on small shapes.

Timings are not asserted (they belong to the benchmarks' output, see docs/benchmarks.md); what is tested is that
each command produces its rows, JSON, table and plot, reproduces the paper's FLOPs where it claims to, and that
the paper preset's code path (InternViT-300M teacher, Qwen2.5-7B-shaped LLM, bf16 - what a GPU runs) works on
the CPU with small frames and a truncated LLM.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def liteframe(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "liteframe_hf.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"liteframe {' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_arch_flops_only_reproduces_the_paper(tmp_path):
    out = tmp_path / "arch.json"
    proc = liteframe("bench", "arch", "--frames", "256", "--image-size", "448", "--flops-only", "--json", str(out))
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    for name in ("internvit-300m", "vit-b-12l", "dwtempconv", "spatiotempattn"):
        assert round(rows[name]["params_m"], 2) == rows[name]["paper_params_m"], name
        assert round(rows[name]["tflops"], 2) == rows[name]["paper_tflops"], name
    assert (rows["internvit-300m"]["paper_params_m"], rows["internvit-300m"]["paper_tflops"]) == (304.01, 158.80)
    assert (rows["dwtempconv"]["paper_params_m"], rows["dwtempconv"]["paper_tflops"]) == (87.15, 17.92)
    assert {"tempconv", "tempattn"} <= set(rows)  # our reading of the under-specified rows, printed beside the paper
    assert "| dwtempconv | 87.15 | 87.15 | 17.92 | 17.92 |" in proc.stdout


def test_arch_shows_progress_and_measures_the_cpu_sized_variants(tmp_path):
    """A CPU run of `bench arch` takes minutes: it reports one progress step per forward pass. It also measures the
    variants the paper has no figures for (liteframe-micro), so a micro checkpoint's card can show its own row."""
    out = tmp_path / "arch.json"
    proc = liteframe("bench", "arch", "--frames", "8", "--image-size", "56", "--variants", "liteframe-tiny",
                     "liteframe-micro", "--warmup", "1", "--repeats", "2", "--json", str(out))
    assert "bench arch: 100%" in proc.stderr and "6/6" in proc.stderr  # 2 variants x (1 warm-up + 2 timed)
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["liteframe-micro"]["latency_ms"] > 0 and rows["liteframe-micro"]["paper_latency_ms"] is None


def test_encoder_before_after_rows_agree_with_the_shipped_encoder(tmp_path):
    out = tmp_path / "encoder.json"
    liteframe("bench", "encoder", "--variant", "liteframe-tiny", "--frames", "8", "--image-size", "56",
              "--warmup", "0", "--repeats", "1", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["implementation"].split(":")[0] for r in rows][0] == "textbook" and len(rows) == 5
    assert all(r["rel_error_vs_fp32"] < 1e-4 for r in rows)
    assert all(r["latency_ms"] > 0 for r in rows)


def test_e2e_micro_writes_table_json_and_plot(tmp_path):
    out, plot, md = tmp_path / "e2e.json", tmp_path / "e2e.png", tmp_path / "e2e.md"
    proc = liteframe("bench", "e2e", "--preset", "micro", "--frames", "4", "32", "--image-size", "112",
                     "--text-layers", "2", "--warmup", "0", "--repeats", "1",
                     "--json", str(out), "--plot", str(plot), "--markdown", str(md))
    result = json.loads(out.read_text())
    rows = {(r["method"], r["frames"]): r for r in result["rows"]}
    assert set(rows) == {(m, f) for m in ("baseline", "posthoc", "liteframe") for f in (4, 32)}
    # 112 px, patch 14 -> an 8x8 grid: baseline 4x4 = 16 tokens/frame after pixel shuffle; WAP and LiteFrame 16x fewer.
    assert rows[("baseline", 4)]["visual_tokens"] == 4 * 16
    assert rows[("posthoc", 32)]["visual_tokens"] == rows[("liteframe", 32)]["visual_tokens"] == 32
    # real prompts: the same clip layout for post-hoc WAP and LiteFrame, a line per frame for the baseline
    assert rows[("posthoc", 32)]["text_tokens"] == rows[("liteframe", 32)]["text_tokens"]
    assert rows[("baseline", 32)]["text_tokens"] > 2 * rows[("liteframe", 32)]["text_tokens"]
    assert result["tokenizer"] == "smollm2" and result["video_seconds"] == 600
    for row in rows.values():
        assert row["prefill_tokens"] == row["text_tokens"] + row["visual_tokens"]
        assert row["total_ms"] == pytest.approx(row["encode_ms"] + row["prefill_ms"])
        assert row["encode_peak_mb"] is not None and row["prefill_peak_mb"] is not None
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert "| liteframe | 32 |" in md.read_text()
    assert "liteframe @ 32 frames vs baseline @ 4: total latency ratio" in proc.stdout  # the 8x-frames comparison
    assert "AttentionInterface" not in proc.stderr  # every model runs the attention it was asked for


@pytest.mark.slow
def test_e2e_paper_preset_code_path_runs_on_cpu_with_small_shapes(tmp_path):
    """The GPU benchmark's shapes (InternViT-300M, LiteFrame-B, Qwen2.5-7B widths, bf16) at 112 px, 4 frames,
    one LLM layer: the same code path as `--device cuda`, minus CUDA events."""
    out = tmp_path / "paper.json"
    liteframe("bench", "e2e", "--preset", "paper", "--device", "cpu", "--dtype", "bf16", "--frames", "4",
              "--image-size", "112", "--text-layers", "1", "--warmup", "0", "--repeats", "1", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["dtype"] == "bfloat16" and result["text_layers"] == 1 and result["image_size"] == 112
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["baseline"]["visual_tokens"] == 4 * 16 and rows["liteframe"]["visual_tokens"] == 4
    assert result["tokenizer"] == "qwen2.5" and rows["baseline"]["text_tokens"] > rows["liteframe"]["text_tokens"] > 20
    assert all(r["paper_total_ms"] is None for r in rows.values())  # paper columns only at the paper's 448 px


@pytest.mark.parametrize("tokenizer", ["smollm2", "qwen2.5"])
def test_e2e_prompts_are_the_methods_real_layouts(tokenizer):
    """bench e2e's prompts: the processor's clip headers (LiteFrame), the same through the post-hoc builder, and
    InternVL3's "FrameN:" lines (baseline), in the chat template, with the placeholder count checked."""
    from liteframe_hf.bench.e2e import QUESTION, build_prompt, load_tokenizer, prompt_ids
    from liteframe_hf.modeling.processing_liteframe import LiteFrameProcessor, video_prompt
    from liteframe_hf.modeling.video_decoding_liteframe import clip_spans, plan_clip_frames
    from liteframe_hf.modeling.video_processing_liteframe import LiteFrameVideoProcessor

    tok, name = load_tokenizer(tokenizer, "micro")
    assert name == tokenizer and "<IMG_CONTEXT>" in tok.get_vocab()
    processor = LiteFrameProcessor(LiteFrameVideoProcessor(), tok, tokens_per_clip=16)
    spans = clip_spans(plan_clip_frames(80.0, num_frames=32, max_frames=None).timestamps)
    assert len(spans) == 8 and spans[-1][1] < 80
    lite = build_prompt("liteframe", 32, 8 * 16, processor, QUESTION, 80.0)
    assert video_prompt(spans, 16) + "\n" + QUESTION in lite and lite.startswith("<|im_start|>user\n")
    assert build_prompt("posthoc", 32, 8 * 16, processor, QUESTION, 80.0) == lite
    base = build_prompt("baseline", 32, 32 * 64, processor, QUESTION, 80.0)
    assert base.count("<img>") == 32 and "Frame1: <img>" in base and "</img>\nFrame32: <img>" in base
    ids = {m: prompt_ids(m, 32, n, processor, QUESTION, 80.0)[0].tolist() for m, n in (("liteframe", 128), ("baseline", 2048))}
    question = len(prompt_ids("liteframe", 4, 16, processor, QUESTION, 8.0)[0]) - 16 - 6  # one "0-8s"-style clip
    # clips ending before 100 s cost at most 8 text tokens each (both tokenizers split digits one per token)
    assert len(ids["liteframe"]) - 128 - question <= 8 * 8
    assert len(ids["baseline"]) - 2048 - question >= 32 * 6  # "Frame12: <img></img>\n" per frame
    with pytest.raises(RuntimeError, match="placeholders|IMG_CONTEXT"):
        prompt_ids("liteframe", 32, 100, processor, QUESTION, 80.0)


def test_e2e_tokens_only_counts_the_paper_prompts_without_models(tmp_path):
    out = tmp_path / "tokens.json"
    liteframe("bench", "e2e", "--preset", "paper", "--tokens-only", "--video-seconds", "60",
              "--frames-for", "baseline=32", "liteframe=256", "--methods", "baseline", "liteframe", "--json", str(out))
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["baseline"]["visual_tokens"] == 32 * 256 and rows["liteframe"]["visual_tokens"] == 64 * 64
    # 64 clips of a 60-s video cost 6-8 header tokens each; the chat template and question fewer than 40
    assert 64 * 6 <= rows["liteframe"]["text_tokens"] <= 64 * 8 + 40
    assert rows["baseline"]["text_tokens"] >= 32 * 6  # "FrameN: <img>...</img>" lines
    assert all(r["prefill_tokens"] == r["text_tokens"] + r["visual_tokens"] for r in rows.values())


def test_time_budget_cuts_repeats_of_slow_calls():
    import time

    import torch

    from liteframe_hf.bench import time_call

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)

    times = time_call(slow, torch.device("cpu"), warmup=40, repeats=100, budget_s=0.5)
    # ~0.05 s a call: 70% of 0.5 s buys at most 7 timed calls (never fewer than 3), 30% at most 3 warm-ups after 2.
    assert 3 <= len(times) <= 7 and len(calls) <= 2 + 3 + 7
    assert all(t >= 50 for t in times)
    calls.clear()
    assert len(time_call(slow, torch.device("cpu"), warmup=1, repeats=4)) == 4 and len(calls) == 5


def test_e2e_frames_per_method_and_budget(tmp_path):
    out = tmp_path / "e2e.json"
    proc = liteframe("bench", "e2e", "--preset", "micro", "--methods", "baseline", "liteframe",
                     "--frames-for", "baseline=4", "liteframe=32", "--image-size", "112", "--text-layers", "1",
                     "--warmup", "2", "--repeats", "5", "--budget-s", "5", "--json", str(out))
    result = json.loads(out.read_text())
    assert [(r["method"], r["frames"]) for r in result["rows"]] == [("baseline", 4), ("liteframe", 32)]
    assert result["budget_s"] == 5 and all(3 <= r["encode_repeats"] <= 5 for r in result["rows"])
    assert "liteframe @ 32 frames vs baseline @ 4: total latency ratio" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "liteframe_hf.cli", "bench", "e2e", "--frames-for", "liteframe=6"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "multiples of 4" in bad.stderr
