"""lmms-eval plugin: `python -m lmms_eval --model liteframe --model_args pretrained=DIR,num_frames=64 --tasks ...`.

lmms-eval 0.7.3 finds plugin models through the Python entry-point group `lmms_eval.models` (setup.py registers
`liteframe = liteframe_hf.lmms_eval_plugin:model_manifest`); install with `pip install "liteframe-hf[lmms]"`.
A task for a QA manifest is written by `liteframe eval lmms-task` (see `liteframe_hf.eval.lmms_task`).
Nothing here imports lmms_eval until lmms-eval itself loads the entry point.
"""

MODEL_ID = "liteframe"
MODEL_CLASS_PATH = "liteframe_hf.lmms_eval_plugin.model.LiteFrameLMM"


def model_manifest():
    """The entry-point payload: lmms-eval's `ModelManifest` for the `liteframe` model (a simple model)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS_PATH)
