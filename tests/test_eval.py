"""`liteframe eval`, the `mcq_accuracy` evaluate module and the lmms-eval plugin, on real MP4s and a tiny model."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from liteframe_hf.assets import asset_path
from liteframe_hf.cli import main as cli
from liteframe_hf.eval.data import ANSWER_INSTRUCTION, ManifestError, load_manifest, mcq_prompt
from liteframe_hf.metrics import MCQ_ACCURACY_PATH
from liteframe_hf.metrics.mcq_accuracy.mcq_accuracy import parse_answer, score, wilson_interval


VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
LIMIT = 10  # questions of the tiny needle benchmark evaluated end to end
CATEGORIES = ("identity", "count")


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def videos() -> dict[str, Path]:
    try:
        return {name: Path(asset_path(name)) for name in VIDEOS}
    except Exception as error:  # noqa: BLE001 - report the fetch command
        pytest.fail(f"real sample videos are missing ({error}); run `liteframe assets fetch --only videos`")


def make_rows(videos: dict[str, Path], root: Path) -> list[dict]:
    """Two questions per real video (videos copied next to the manifest, paths relative as the builder writes)."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, source) in enumerate(videos.items()):
        shutil.copy(source, root / "videos" / name)
        for j, category in enumerate(CATEGORIES):
            rows.append({"id": f"tiny-{i:03d}-{category}", "video": f"videos/{name}", "question": "what is in the video ?",
                         "options": ["rabbit", "car", "bike", "cup"], "answer": "ABCD"[(i + 2 * j) % 4],
                         "category": category, "duration": 10.0})
    return rows


def write_manifest(root: Path, rows: list[dict], text_lines: list[str] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(line + "\n" for line in text_lines))
    return path


@pytest.fixture(scope="module")
def bench(needle_haystacks, tmp_path_factory) -> Path:
    """A tiny needle benchmark built by `liteframe data needle` (3 videos cut from the real clips, real stamps)."""
    from liteframe_hf.data import needle

    return needle.build_split("test", tmp_path_factory.mktemp("bench"), seed=3, videos=3, haystacks=needle_haystacks,
                              workers=2, progress=False)


# ------------------------------------------------------------------------------------------- the metric
@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("B.", "B"), ("(B)", "B"), ("B) a rabbit", "B"), ("[C]", "C"), ("**D**", "D"), ("b", "B"),
    ("The answer is B", "B"), ("The answer is B.", "B"), ("Answer: (C)", "C"), ("the answer is d.", "D"),
    ("I think C is right", "C"), ("The best answer is: A", "A"),
    ("banana", None), ("", None), ("E", None), ("E. none of them", None), ("A red car", None),
    ("the answer is a cat", None), ("I don't know", None),
])
def test_first_option_letter_is_parsed(text, letter):
    assert parse_answer(text, 4) == letter


def test_option_count_sets_valid_letters():
    assert parse_answer("E", 5) == "E" and parse_answer("E", 4) is None and parse_answer("C", 2) is None


def test_wilson_interval_matches_hand_computation():
    # 7 of 20 correct, z = 1.96: p = 0.35, centre = (0.35 + 1.96^2/40) / (1 + 1.96^2/20), half-width by hand.
    z, n, p = 1.959963984540054, 20, 0.35
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = wilson_interval(7, 20)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.1812, 0.5671)  # published tables: 0.181-0.567
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_evaluate_module_loads_offline_from_its_path(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(MCQ_ACCURACY_PATH)
    predictions = ["B", "The answer is C.", "banana", "(D)", "A", "E"]
    references = ["B", "A", "D", "D", "C", "E"]
    result = metric.compute(predictions=predictions, references=references, num_options=[4, 4, 4, 4, 4, 5])
    assert result["correct"] == 3 and result["total"] == 6 and result["unparseable"] == 1
    assert result["accuracy"] == pytest.approx(0.5)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(wilson_interval(3, 6))
    assert result["chance"] == pytest.approx((5 * 0.25 + 0.2) / 6)
    assert {k: v for k, v in score(predictions, references, [4, 4, 4, 4, 4, 5]).items() if k != "parsed"} == result
    with pytest.raises(ValueError, match="reference 0"):
        metric.compute(predictions=["A"], references=["F"])


# ------------------------------------------------------------------------------------------- manifests
def test_prompt_is_the_standard_mcq_prompt():
    assert mcq_prompt("Which of these objects appears first?", ["A cup.", "A bike."]) == (
        "Which of these objects appears first?\nA. A cup.\nB. A bike.\n" + ANSWER_INSTRUCTION
    )
    assert ANSWER_INSTRUCTION == "Answer with the option's letter from the given choices directly."
    # The lmms-eval task asks exactly the same (its YAML's default pre/post prompts, or none given).
    from liteframe_hf.eval.lmms_task import doc_to_text

    doc = {"question": "Which of these objects appears first?", "options": ["A cup.", "A bike."]}
    assert doc_to_text(doc, {"pre_prompt": "", "post_prompt": "\n" + ANSWER_INSTRUCTION}) == mcq_prompt(**doc)
    assert doc_to_text(doc) == mcq_prompt(**doc)


def _bad_manifest(videos, root: Path, case: str) -> tuple[Path, int, str]:
    """A manifest with one bad row (line 3); returns (path, bad line, expected message part)."""
    rows = make_rows(videos, root)[:4]
    if case == "missing video":
        rows[2]["video"] = "videos/not_there.mp4"
        expected = "does not exist"
    elif case == "unreadable video":
        (root / "videos" / "broken.mp4").write_bytes(b"this is not an mp4 file" * 100)
        rows[2]["video"] = "videos/broken.mp4"
        expected = "unreadable"
    elif case == "answer outside the options":
        rows[2]["answer"] = "E"
        expected = "not one of the option letters A, B, C, D"
    elif case == "duplicated id":
        rows[2]["id"] = rows[0]["id"]
        expected = "duplicated id (first used on line 1)"
    else:
        raise AssertionError(case)
    return write_manifest(root, rows), 3, expected


@pytest.mark.parametrize("case", ["missing video", "unreadable video", "answer outside the options", "duplicated id"])
def test_bad_row_is_named_or_skipped_and_counted(videos, tmp_path, case):
    path, line, expected = _bad_manifest(videos, tmp_path / "bad", case)
    row_id = json.loads(path.read_text().splitlines()[line - 1])["id"]
    with pytest.raises(ManifestError) as error:
        load_manifest(path)
    assert f"{path}:{line} (id {row_id!r})" in str(error.value) and expected in str(error.value)
    assert "--skip-bad" in str(error.value)
    manifest = load_manifest(path, skip_bad=True)
    assert [q.line for q in manifest.questions] == [1, 2, 4]
    assert manifest.skipped == [{"line": line, "id": row_id, "reason": manifest.skipped[0]["reason"]}]
    assert expected in manifest.skipped[0]["reason"]


def test_cli_stops_on_a_bad_row_naming_it(videos, tiny_model, tmp_path, capsys):
    path, line, expected = _bad_manifest(videos, tmp_path / "bad", "answer outside the options")
    code = cli(["eval", str(tiny_model), "--data", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}:{line}" in err and expected in err


# ---------------------------------------------------------------------------------------- end to end
def _check_point(point: dict, predictions: list[dict], manifest_rows: dict[str, dict]) -> None:
    rows = [p for p in predictions if p["frames"] == point["frames"]]
    assert point["n"] == len(rows)
    for p in rows:  # the scored answer and option count are the manifest's
        assert p["answer"] == manifest_rows[p["id"]]["answer"]
        assert p["num_options"] == len(manifest_rows[p["id"]]["options"])
    correct = sum(p["parsed"] == p["answer"] for p in rows)
    assert point["correct"] == correct and point["accuracy"] == pytest.approx(correct / len(rows))
    assert point["unparseable"] == sum(p["parsed"] is None for p in rows)
    assert (point["ci_low"], point["ci_high"]) == pytest.approx(wilson_interval(correct, len(rows)))
    chance = sum(1 / p["num_options"] for p in rows) / len(rows)
    assert point["chance"] == pytest.approx(chance)
    assert point["chance_within_ci"] == (point["ci_low"] <= chance <= point["ci_high"])
    for category, part in point["per_category"].items():
        in_category = [p for p in rows if p["category"] == category]
        assert part["n"] == len(in_category)
        assert part["correct"] == sum(p["parsed"] == p["answer"] for p in in_category)
    for p in rows:
        assert p["parsed"] == parse_answer(p["prediction"], p["num_options"])
        assert all(p["timings"][s] >= 0 for s in ("decode", "preprocess", "encode", "prefill", "generate"))
        assert p["timings"]["decode"] > 0 and p["timings"]["encode"] > 0 and p["timings"]["prefill"] > 0
    latency = point["latency_ms"]
    stages = ("decode", "preprocess", "encode", "prefill", "generate")
    assert latency["total"]["mean"] == pytest.approx(sum(latency[s]["mean"] for s in stages), abs=0.05)


def test_eval_cli_end_to_end_on_real_videos(tiny_model, bench, tmp_path, capsys):
    out = tmp_path / "run.json"
    manifest_rows = [json.loads(line) for line in bench.read_text().splitlines()][:LIMIT]
    code = cli(["eval", str(tiny_model), "--data", str(bench), "--frames", "4", "6", "--json", str(out),
                "--limit", str(LIMIT),
                "--markdown", str(tmp_path / "run.md"), "--plot", str(tmp_path / "run.png"), "--warmup", "0",
                "--max-new-tokens", "4", "--no-progress"])
    stdout = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.read_text())
    for key in ("model", "data", "split", "frames", "n", "device", "dtype", "torch", "transformers", "date",
                "latency_protocol", "points", "predictions", "rows", "categories"):
        assert key in result, key
    assert result["split"] == "test" and result["n"] == LIMIT and result["limit"] == LIMIT
    assert result["device"] == "cpu" and result["dtype"] == "float32"
    assert result["categories"] == dict(sorted(Counter(r["category"] for r in manifest_rows).items()))
    assert len(result["categories"]) >= 3  # the needle builder's question types
    assert result["frames"] == [4, 8]  # 6 frames is rounded up to whole 4-frame clips
    assert [p["llm_video_tokens"] for p in result["points"]] == [4, 8]  # tiny model: 4 tokens per clip
    for point in result["points"]:
        _check_point(point, result["predictions"], {r["id"]: r for r in manifest_rows})
    assert [p["id"] for p in result["predictions"]] == [r["id"] for r in manifest_rows] * 2
    # Which sampled frames caught each needle (the processor's own timestamps), and identity questions grouped by it.
    from liteframe_hf import LiteFrameProcessor

    processor, rows = LiteFrameProcessor.from_pretrained(tiny_model), {r["id"]: r for r in manifest_rows}
    for prediction in result["predictions"]:
        row = rows[prediction["id"]]
        times = processor.video_processor([str(bench.parent / row["video"])], num_frames=prediction["frames"],
                                          return_tensors="pt", return_metadata=True)["video_metadata"][0].timestamps
        assert prediction["needle_frames"] == [sum(n["start"] <= t < n["end"] for t in times) for n in row["needles"]]
    for point in result["points"]:
        expected: dict[str, dict[str, int]] = {}
        for p in result["predictions"]:
            row = rows[p["id"]]
            if p["frames"] == point["frames"] and p["category"] == "identity":  # the needle the answer names
                right = row["options"]["ABCD".index(row["answer"])]
                (k,) = [k for n, k in zip(row["needles"], p["needle_frames"]) if n["caption"] == right]
                group = expected.setdefault(str(k) if k < 3 else "3+", {"correct": 0, "n": 0})
                group["n"], group["correct"] = group["n"] + 1, group["correct"] + p["correct"]
        assert expected and point["identity_by_needle_frames"] == dict(sorted(expected.items()))
    assert all(p["new_tokens"] <= 4 for p in result["predictions"])
    assert "| accuracy % [95 % CI] |" in stdout
    assert all(f"| {category} % [95 % CI] |" in stdout for category in result["categories"])  # per category too
    assert len([line for line in stdout.splitlines() if line.startswith("| ")]) == 3  # header + one row per point
    assert (tmp_path / "run.md").read_text().strip() == stdout.strip()
    assert (tmp_path / "run.png").stat().st_size > 10_000

    # The model card's accuracy table (`liteframe push --card-data run.json`).
    from liteframe_hf.hub import load_card_data

    (table,) = load_card_data([out])
    assert table.kind == "accuracy" and table.source == "run.json"
    assert table.headers[:8] == ["model", "benchmark", "frames", "questions", "accuracy (%)", "95 % CI (%)",
                                 "chance (%)", "unparseable"]
    assert "count (%)" in table.headers and "total (ms)" in table.headers
    point = result["points"][1]
    assert table.rows[1][2:6] == ["8", str(LIMIT), f"{100 * point['accuracy']:.2f}",
                                  f"{100 * point['ci_low']:.1f}-{100 * point['ci_high']:.1f}"]
    assert "device: cpu" in table.provenance and "split: test" in table.provenance

    # Several runs in one figure.
    second = json.loads(out.read_text()) | {"label": "second run"}
    (tmp_path / "second.json").write_text(json.dumps(second))
    assert cli(["eval", "plot", str(out), str(tmp_path / "second.json"), "--out", str(tmp_path / "both.png"),
                "--latency", "encode_prefill"]) == 0
    assert (tmp_path / "both.png").stat().st_size > 10_000 and "second run" in capsys.readouterr().out


def test_skip_bad_rows_are_counted_in_the_run(videos, tiny_model, tmp_path, capsys):
    path, line, _ = _bad_manifest(videos, tmp_path / "bad", "missing video")
    out = tmp_path / "run.json"
    assert cli(["eval", str(tiny_model), "--data", str(path), "--skip-bad", "--json", str(out), "--warmup", "0",
                "--max-new-tokens", "2", "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 3 and result["points"][0]["n"] == 3
    assert [row["line"] for row in result["skipped_rows"]] == [line]


def test_named_models_resolve_through_micro():
    from liteframe_hf.eval.run import named_models, resolve_model

    from liteframe_hf.micro import MICRO_MODELS

    assert set(MICRO_MODELS) <= set(named_models()) and "liteframe-micro" in named_models()
    with pytest.raises(ValueError, match="built-in name"):
        resolve_model("no-such-model")


# ---------------------------------------------------------------------------------------------- lmms-eval
def test_lmms_task_and_plugin_run_offline(tiny_model, bench, tmp_path):
    if importlib.util.find_spec("lmms_eval") is None:
        pytest.skip("lmms-eval is not installed (pip install --no-deps lmms-eval==0.7.3 && pip install -e '.[lmms]')")
    from importlib.metadata import entry_points

    assert any(ep.name == "liteframe" for ep in entry_points(group="lmms_eval.models")), \
        "the `liteframe` lmms-eval entry point is not installed: reinstall the package (pip install -e .)"
    tasks = tmp_path / "tasks"
    assert cli(["eval", "lmms-task", "--data", str(bench), "--out", str(tasks)]) == 0
    rows = bench.read_text().splitlines()
    assert (tasks / "needle_test.yaml").is_file() and len((tasks / "needle_test.jsonl").read_text().splitlines()) == len(rows)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf_home"))
    run = subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--model", "liteframe", "--model_args",
         f"pretrained={tiny_model},num_frames=8,max_new_tokens=4", "--tasks", "needle_test",
         "--include_path", str(tasks), "--limit", "4", "--output_path", str(tmp_path / "results")],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "needle_test" in run.stdout and "mcq_accuracy" in run.stdout
    files = list((tmp_path / "results").rglob("*_results.json"))
    assert len(files) == 1, files
    results = json.loads(files[0].read_text())["results"]["needle_test"]
    assert 0 <= results["mcq_accuracy,none"] <= 100 and 0 <= results["unparseable,none"] <= 4


def _run(label, frames, right, latency, first=None):
    """A minimal `liteframe eval --json` result: ten questions q0-q9 (q0-q4 identity, q5-q9 count)."""
    point = {"frames": frames, "accuracy": sum(right) / 10, "latency_ms": latency}
    if first:
        point["latency_ms_first"] = first
    predictions = [{"id": f"q{i}", "frames": frames, "category": "identity" if i < 5 else "count", "correct": r}
                   for i, r in enumerate(right)]
    return {"label": label, "split": "test", "points": [point], "predictions": predictions}


def test_eval_compare_pairs_the_same_questions(tmp_path, capsys):
    from liteframe_hf.eval.compare import compare_points

    ms = lambda enc, total: {"encode_prefill": {"median": enc}, "total": {"median": total}}
    a = _run("lite", 64, [i < 6 for i in range(10)], ms(5, 20), first=ms(50, 200))  # --reuse-video: first questions
    b = _run("teacher", 8, [4 <= i < 8 for i in range(10)], ms(100, 250))
    result = compare_points(a, 64, b, 8)
    # A alone right on q0-q3, B alone on q6-q7: +2 of 10; Wald half-width z * sqrt(6 - 2^2 / 10) / 10; McNemar's
    # exact p = 2 * P(X <= 2), X ~ Binomial(6, 1/2) = 2 * 22 / 64.
    overall = result["overall"]
    assert (overall["only_a"], overall["only_b"], overall["n"]) == (4, 2, 10)
    assert overall["difference"] == pytest.approx(0.2)
    assert overall["ci_high"] - overall["difference"] == pytest.approx(1.959964 * 5.6 ** 0.5 / 10, rel=1e-6)
    assert overall["mcnemar_p"] == pytest.approx(44 / 64)
    assert result["per_category"]["identity"]["only_a"] == 4 and result["per_category"]["count"]["only_b"] == 2
    assert result["latency_ratio"] == {"encode_prefill": 0.5, "total": 0.8}  # A's first questions, not follow-ups

    paths = []
    for name, run in (("a", a), ("b", b), ("other", _run("x", 8, [True] * 9 + [False], ms(1, 1)))):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(run))
    paths[2].write_text(paths[2].read_text().replace('"q9"', '"q10"'))  # another question set
    assert cli(["eval", "compare", f"{paths[0]}:64", f"{paths[1]}:8", "--json", str(tmp_path / "d.json")]) == 0
    assert "| all | 10 | +20.0 [" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text())["overall"]["only_a"] == 4
    assert cli(["eval", "compare", f"{paths[0]}:64", f"{paths[2]}:8"]) == 2
    assert "answered different questions" in capsys.readouterr().out
    assert cli(["eval", "compare", f"{paths[0]}:32", f"{paths[1]}:8"]) == 2
    assert "no 32-frame point" in capsys.readouterr().out
