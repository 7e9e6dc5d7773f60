"""Test-only launcher shim: run a training script under FSDP2 on CPU processes (gloo).

Accelerate 1.x turns FSDP on for accelerator process groups only (MULTI_GPU, XPU, NPU, ...): launched with
ACCELERATE_USE_CPU=1 it silently trains with DDP instead, and the scripts refuse such a launch. torch's FSDP2
(`fully_shard`) itself runs on CPU tensors over gloo, so for the tests this shim makes Accelerate take the gloo CPU
group for an accelerator group (device: cpu) and leaves everything else - the FSDP plugin from
training/accelerate/fsdp.yaml, `prepare`, sharded `save_state` / `load_state`, the full state dict for the final
model - to Accelerate and the script, unchanged.

    accelerate launch --config_file training/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \
        tests/fsdp_on_cpu.py training/ctd.py --config ...
"""

import os
import runpy
import sys

import accelerate.state
from accelerate.utils import DistributedType


def _gloo_as_accelerator_group(self, cpu=False, sagemaker_dp=False, backend=None):
    return "gloo", DistributedType.MULTI_GPU


if __name__ == "__main__":
    accelerate.state.PartialState._prepare_backend = _gloo_as_accelerator_group
    os.environ["ACCELERATE_TORCH_DEVICE"] = "cpu"  # Accelerate's own device override
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
