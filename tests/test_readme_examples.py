"""Every python example of the README runs as written, in a fresh process (so `import liteframe_hf` is what registers
LiteFrame, and nothing asks for trust_remote_code), in a folder where the names the examples use exist:
`path/to/liteframe` is the default model's folder (LiteFrame-micro, what `liteframe demo` builds) and `clip.mp4`,
`a.mp4`, `b.mp4` are real clips."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_every_readme_python_example_runs_as_written(tmp_path):
    from liteframe_hf.assets import asset_path, ensure_assets
    from liteframe_hf.micro import build_micro_model

    ensure_assets(["videos"], progress=None)
    (tmp_path / "path" / "to").mkdir(parents=True)
    (tmp_path / "path" / "to" / "liteframe").symlink_to(build_micro_model(progress=lambda message: None))
    for name, clip in (("clip.mp4", "bikes.mp4"), ("a.mp4", "carphone_pristine.mp4"), ("b.mp4", "bigbuckbunny.mp4")):
        (tmp_path / name).symlink_to(asset_path(clip))
    examples = readme_examples()
    assert len(examples) >= 3, "the README's python examples moved: update this test"
    # The video-session example uses the `model` and `processor` the AutoModel example (after it) loads.
    session = next(i for i, code in enumerate(examples) if "VideoSession(model, processor" in code)
    order = [i for i in range(len(examples)) if i != session] + [session]
    script = "\n".join(f"# README example {i + 1}\n{examples[i]}" for i in order) + (
        "\nassert type(pipe).__module__ == 'liteframe_hf.modeling.pipeline_liteframe', type(pipe)"
        "\nprint('GENERATED', answer.shape[1] > inputs['input_ids'].shape[1])\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "GENERATED True" in result.stdout
