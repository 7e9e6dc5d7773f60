"""Teacher-target cache: the WAP targets of a fixed clip plan as sharded safetensors.

With `clip_plan: fixed` item i is the same clip in every epoch, so the teacher's target for it can be computed once
(`build_target_cache`, split over all processes by shard) and read back in the DataLoader workers
(`TargetCache[i]`, memory-mapped) instead of running the teacher every step. ``index.json`` records a fingerprint
of everything the targets depend on (teacher, WAP, frames, clip plan, video list); a mismatch rebuilds the cache.

Layout: ``<folder>/targets-00000.safetensors`` ... (tensor ``targets``: (clips_in_shard, T', H', W', D)), ``index.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Subset

from ..teachers import Teacher
from .data import collate_clips

__all__ = ["TargetCache", "build_target_cache"]

INDEX = "index.json"


def _shard_name(shard: int) -> str:
    return f"targets-{shard:05d}.safetensors"


class TargetCache:
    """Read-only view of a built cache: ``cache[i]`` is the (T', H', W', D) target of item i (float32)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.index = json.loads((self.folder / INDEX).read_text())
        self.shard_size = int(self.index["shard_size"])
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return int(self.index["num_clips"])

    def __getitem__(self, i: int) -> torch.Tensor:
        shard, row = divmod(int(i), self.shard_size)
        if shard not in self._handles:  # opened lazily, so each DataLoader worker maps its own view
            self._handles[shard] = safe_open(str(self.folder / _shard_name(shard)), framework="pt")
        return self._handles[shard].get_slice("targets")[row : row + 1][0].float()

    def __getstate__(self):
        return {**self.__dict__, "_handles": {}}


def _matches(folder: Path, fingerprint: str) -> bool:
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        return False
    shards = -(-int(index["num_clips"]) // int(index["shard_size"]))
    return index.get("fingerprint") == fingerprint and all((folder / _shard_name(s)).is_file() for s in range(shards))


def build_target_cache(accelerator: Accelerator, dataset, teacher: Teacher, folder: str | Path, recipe: dict,
                       shard_size: int, batch_size: int, num_workers: int) -> tuple[TargetCache, float]:
    """Build the cache for every item of `dataset` (a fixed-plan CTDClipDataset) unless an identical one exists.

    `recipe` holds the teacher-side settings the targets depend on (spec, weighting, block, dtype). Every process
    builds the shards s with s % num_processes == rank. Returns (cache, seconds spent building; 0 when reused).
    """
    import time

    folder = Path(folder)
    fingerprint = hashlib.sha256(json.dumps({"data": dataset.fingerprint(), "teacher": recipe},
                                            sort_keys=True).encode()).hexdigest()[:20]
    start = time.perf_counter()
    if not _matches(folder, fingerprint):
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / INDEX).unlink(missing_ok=True)
        accelerator.wait_for_everyone()
        saved_targets, dataset.targets = dataset.targets, None
        shards = -(-len(dataset) // shard_size)
        for shard in range(accelerator.process_index, shards, accelerator.num_processes):
            items = range(shard * shard_size, min(len(dataset), (shard + 1) * shard_size))
            loader = DataLoader(Subset(dataset, items), batch_size=batch_size, num_workers=num_workers,
                                collate_fn=collate_clips)
            targets = [teacher.wap_targets(batch["pixel_values"]).cpu() for batch in loader]
            save_file({"targets": torch.cat(targets).contiguous()}, str(folder / _shard_name(shard)),
                      metadata={"fingerprint": fingerprint})
        dataset.targets = saved_targets
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (folder / INDEX).write_text(json.dumps(
                {"fingerprint": fingerprint, "num_clips": len(dataset), "shard_size": shard_size,
                 "recipe": recipe, "data": dataset.fingerprint()}, indent=2))
        accelerator.wait_for_everyone()
        return TargetCache(folder), time.perf_counter() - start
    return TargetCache(folder), 0.0
