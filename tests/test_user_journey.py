"""The training-to-publishing path as a new user walks it (issue 16): the traps a first run falls into must end in
errors or log lines that say what to do, and every model folder a script writes must load with plain transformers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """training/<name>.py as a module, so its main(argv) runs in this process (no 30 s interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"_journey_{name}", ROOT / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lma_before_ctd_says_to_run_ctd_first(tmp_path, monkeypatch):
    # The micro recipe's vision_model is the CTD output folder (relative to the working directory): before CTD ran,
    # the error names the folder and both ways out instead of huggingface_hub's repo-id validation message.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        _script("lma").main(["--config", str(ROOT / "training/configs/lma_micro.yaml"), "--output_dir", "out"])
    message = str(err.value)
    assert "'outputs/ctd_micro/student' does not exist" in message
    assert "training/ctd.py" in message and "--vision_model liteframe-micro" in message


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    from liteframe_hf.training.synthetic import write_synthetic_video_qa

    return str(write_synthetic_video_qa(tmp_path_factory.mktemp("qa"), 6, size=64, num_frames=24))


@pytest.fixture(scope="module")
def tiny_lma(tiny_recipes):
    """qa, out, *extra -> (summary, log) of training/lma.py run in this process on the tiny recipe."""
    import contextlib
    import io

    def run(qa: str, out: Path, *extra: str) -> tuple[dict, str]:
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            summary = _script("lma").main(["--config", tiny_recipes["lma"], "--train_data", qa,
                                           "--output_dir", str(out), *extra])
        return summary, log.getvalue()

    return run


@pytest.fixture(scope="module")
def lma_run(tmp_path_factory, qa, tiny_lma):
    out = tmp_path_factory.mktemp("lma")
    summary, log = tiny_lma(qa, out, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--save_merged")
    return out, log


def test_lma_log_says_which_rows_are_held_out(lma_run, qa):
    _, log = lma_run  # lma_tiny holds out num_eval_samples=2 of the 6 rows
    assert f"training on the first 4 of the 6 rows of {qa}; the last 2 are held out for eval/loss" in log


def test_lma_too_few_rows_for_the_held_out_set_is_refused(tmp_path, qa, tiny_lma):
    with pytest.raises(ValueError, match=r"has 6 rows and num_eval_samples is 8: .*--num_eval_samples N with N < 6"):
        tiny_lma(qa, tmp_path / "out", "--num_eval_samples", "8")


def test_resume_latest_on_an_empty_or_mistyped_output_dir_is_refused(tmp_path, qa, tiny_lma):
    # A typo in --output_dir used to start a new run whose config.yaml said it was resumed.
    with pytest.raises(FileNotFoundError, match=r"no checkpoint-\* under .*typo; drop --resume_from_checkpoint"):
        tiny_lma(qa, tmp_path / "typo", "--resume_from_checkpoint", "latest")
    assert not (tmp_path / "typo" / "config.yaml").exists()


def test_resume_latest_continues_a_run(tmp_path, lma_run, qa, tiny_lma):
    out, _ = lma_run  # its checkpoint-2 is complete: 'latest' finds it and the run goes on to step 3
    summary, log = tiny_lma(qa, out, "--max_steps", "3", "--eval_steps", "2", "--save_steps", "2",
                             "--resume_from_checkpoint", "latest")
    assert "resumed from" in log and "checkpoint-2" in log


FRESH_PIPELINE = '''
import sys
sys.modules["liteframe_hf"] = None  # plain transformers + the folder's remote code, as on a user's machine
import transformers
folder, video = sys.argv[1], sys.argv[2]
pipe = transformers.pipeline("video-text-to-text", model=folder, trust_remote_code=True)
assert type(pipe.model).__module__.startswith("transformers_modules"), type(pipe.model).__module__
print("ANSWER", type(pipe).__name__, repr(pipe(video, text="what happens ?", max_new_tokens=3)))
'''


def test_merged_folder_works_with_the_plain_transformers_pipeline(lma_run, qa, tmp_path):
    # merged/ carries the same auto_map and custom_pipelines entry as a pushed folder (one writer for both).
    import json
    import os
    import subprocess
    import sys

    out, _ = lma_run
    config = json.loads((out / "merged" / "config.json").read_text())
    assert config["custom_pipelines"]["video-text-to-text"]["impl"] == "pipeline_liteframe.VideoTextToTextPipeline"
    assert config["auto_map"]["AutoProcessor"] == "processing_liteframe.LiteFrameProcessor"
    assert (out / "merged" / "pipeline_liteframe.py").is_file()
    video = next(Path(qa).parent.rglob("*.mp4"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-c", FRESH_PIPELINE, str(out / "merged"), str(video)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "ANSWER VideoTextToTextPipeline {'generated_text':" in result.stdout


def test_merged_folder_uses_the_registered_pipeline_without_trust_remote_code(lma_run, qa):
    import transformers

    from liteframe_hf import VideoTextToTextPipeline

    out, _ = lma_run
    pipe = transformers.pipeline("video-text-to-text", model=str(out / "merged"))  # liteframe_hf is imported here
    assert type(pipe) is VideoTextToTextPipeline
    video = next(Path(qa).parent.rglob("*.mp4"))
    assert set(pipe(str(video), text="what happens ?", max_new_tokens=3)) == {"generated_text"}


def test_readme_publishing_example_pushes_the_folders_the_recipes_write():
    import re

    import yaml

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Publishing"):]
    block = block[block.index("```bash"):block.index("```\n", block.index("```bash") + 7)]
    output_dirs = {yaml.safe_load(p.read_text()).get("output_dir"): p.stem
                   for p in (ROOT / "training" / "configs").glob("*.yaml")}
    writes = {"ctd": {"student"}, "lma": {"adapter", "merged"}}  # what ctd.py / lma.py save in output_dir
    pushed = re.findall(r"liteframe push (\S+)", block)
    assert len(pushed) >= 3
    for folder in pushed:
        parent, sub = folder.rsplit("/", 1)
        assert parent in output_dirs, f"{folder}: no recipe writes {parent}"
        assert sub in writes[output_dirs[parent].split("_")[0]], f"{folder}: {output_dirs[parent]} writes no {sub}/"
        if sub == "merged":  # lma.py writes merged/ only when asked
            assert f"--config training/configs/{output_dirs[parent]}.yaml --save_merged" in block


def test_merged_folder_publishes_as_documented(lma_run, tmp_path, capsys):
    # README: `liteframe push outputs/lma_micro/merged --repo ... --dry-run DIR` (no --build-processor: merged/ holds it)
    from liteframe_hf.cli import main as cli_main

    out, _ = lma_run
    code = cli_main(["push", str(out / "merged"), "--repo", "my-org/liteframe-micro", "--dry-run",
                     str(tmp_path / "hub_folder"), "--skip-remote-check"])
    assert code == 0, capsys.readouterr().err
    config = __import__("json").loads((tmp_path / "hub_folder" / "config.json").read_text())
    assert "video-text-to-text" in config["custom_pipelines"]
    assert (tmp_path / "hub_folder" / "processor_config.json").is_file()


# ------------------------------------------------------------------------------------------ the walk, end to end
def _walk_commands(text: str) -> list[str]:
    """The command lines of the `## Your own videos, end to end` bash block (comments and the asset fetch left out)."""
    section = text[text.index("## Your own videos, end to end"):]
    start = section.index("```bash") + len("```bash")
    block = section[start:section.index("```", start)]
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and not line.startswith("liteframe assets")]


def test_training_readme_walks_the_same_commands_as_the_readme():
    assert _walk_commands((ROOT / "README.md").read_text()) == \
        _walk_commands((ROOT / "training" / "README.md").read_text())


def test_readme_walk_fetches_the_assets_its_recipes_read():
    import re

    import yaml

    from liteframe_hf.assets import ASSET_NAMES

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Your own videos, end to end"):]
    fetched = set(re.search(r"liteframe assets fetch --only (\S+)", section).group(1).split(","))
    assert fetched <= set(ASSET_NAMES), fetched - set(ASSET_NAMES)
    read = set()
    for recipe in ("ctd_micro", "lma_micro"):
        config = yaml.safe_load((ROOT / "training/configs" / f"{recipe}.yaml").read_text())
        read |= {v.split(":", 1)[1] for k, v in config.items() if k != "train_data" and str(v).startswith("asset:")}
    assert read == fetched, (read, fetched)  # train_data is the user's own videos / manifest


def test_own_videos_to_published_model_walk(tmp_path, monkeypatch, needle_haystacks, capsys, tiny_recipes):
    """README's walk, command for command, in a fresh folder: own videos -> manifest -> CTD -> LMA -> eval ->
    push --dry-run -> load in a fresh process with plain transformers. The micro recipes become the tiny ones
    (random tiny teacher and LLM: the point is the plumbing) writing to the micro recipes' folders, and steps are cut
    to 2; everything else is the README's text."""
    import json
    import os
    import shlex
    import subprocess
    import sys

    import yaml

    from liteframe_hf.cli import main as cli_main

    commands = _walk_commands((ROOT / "README.md").read_text())
    assert [c.split()[:2] for c in commands] == [["python", "training/ctd.py"], ["python", "training/lma.py"],
                                                 ["liteframe", "eval"], ["liteframe", "push"], ["python", "-c"]]
    monkeypatch.chdir(tmp_path)
    # 1. own videos (three real clips) and a manifest beside them, in the format the README shows
    videos = tmp_path / "my_videos"
    videos.mkdir()
    scenes = list(json.loads((needle_haystacks / "scenes.json").read_text()).items())  # clip -> description
    with (videos / "manifest.jsonl").open("w") as f:
        for index, (clip, scene) in enumerate(scenes):
            name = "abc"[index] + ".mp4"
            os.symlink(needle_haystacks / clip, videos / name)
            row = {"id": f"{name[0]}-1", "video": name, "question": "What is shown?",
                   "options": [s for _, s in scenes], "answer": "ABC"[index]}
            f.write(json.dumps(row) + "\n")

    recipes = {name: yaml.safe_load((ROOT / "training/configs" / f"{name}.yaml").read_text())
               for name in ("ctd_micro", "lma_micro")}
    ctd_out, lma_out = recipes["ctd_micro"]["output_dir"], recipes["lma_micro"]["output_dir"]
    assert recipes["lma_micro"]["vision_model"] == f"{ctd_out}/student"  # LMA trains on what CTD wrote
    tiny = {"ctd": ["--output_dir", ctd_out, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2"],
            "lma": ["--output_dir", lma_out, "--vision_model", f"{ctd_out}/student", "--num_eval_samples", "1",
                    "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2"]}
    for command in commands:
        words = shlex.split(command)
        if words[:2] == ["python", "-c"]:
            # 6. a fresh interpreter where liteframe_hf cannot be imported: only the folder's remote code
            code = "import sys; sys.modules['liteframe_hf'] = None\n" + words[2]
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
            result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-4000:]
            assert "'generated_text':" in result.stdout
        elif words[0] == "python":
            # 2.-3. CTD and LMA in this process (each script's main(argv)), on the tiny recipes
            stage = Path(words[1]).stem
            args = [tiny_recipes[stage] if w == f"training/configs/{stage}_micro.yaml" else w for w in words[2:]]
            assert args != words[2:], f"{command}: not a micro recipe"
            _script(stage).main(args + tiny[stage])
        else:
            # 4.-5. the CLI; offline, so push skips its look-up of the remote repo
            extra = {"eval": ["--no-progress", "--warmup", "0", "--max-new-tokens", "2"],
                     "push": ["--skip-remote-check"]}[words[1]]
            assert cli_main(words[1:] + extra) == 0, capsys.readouterr().err

    assert (tmp_path / ctd_out / "student" / "config.json").is_file()
    assert (tmp_path / lma_out / "merged" / "config.json").is_file()
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["n"] == 3 and report["frames"] == [8] and len(report["predictions"]) == 3
    pushed = json.loads((tmp_path / "hub_folder" / "config.json").read_text())
    assert "video-text-to-text" in pushed["custom_pipelines"]
