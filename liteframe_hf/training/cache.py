"""Teacher-target cache: the WAP targets of a fixed clip plan as sharded safetensors.

With `clip_plan: fixed` item i is the same clip in every epoch, so the teacher's target for it can be computed once
(`build_target_cache`, split over all processes by shard) and read back in the DataLoader workers
(`TargetCache[i]`, memory-mapped) instead of running the teacher every step. ``index.json`` records a fingerprint
of everything the targets depend on (teacher, WAP, frames, clip plan, video list). A folder that holds the targets
of another plan is never rebuilt in place (another run may still read it): it is refused, naming what differs. A
folder without index.json or with missing shards (a build that was killed) is built again.

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


# What each fingerprint entry comes from, for the message that refuses a cache of another plan.
_SOURCES = {"videos": "the video list (--train_data)", "length": "the number of clips (videos x --clips_per_video)",
            "seed": "--seed", "fixed": "--clip_plan", "image_size": "--image_size", "clip_len": "--clip_len",
            "fps": "--min_fps / --max_fps", "mean": "--image_mean", "std": "--image_std", "teacher": "--teacher",
            "weighting": "--teacher_weighting", "block": "--wap_block", "dtype": "the teacher's precision"}


def _read_index(folder: Path) -> dict | None:
    try:
        return json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        return None


def _complete(folder: Path, index: dict) -> bool:
    shards = -(-int(index["num_clips"]) // int(index["shard_size"]))
    return all((folder / _shard_name(s)).is_file() for s in range(shards))


def _differences(index: dict, data: dict, recipe: dict) -> list[str]:
    """'<what>: <cached> -> <this run>' for every setting in which the cached plan differs from this run's."""
    cached = {**index.get("data", {}), **index.get("recipe", {})}
    wanted = {**data, **recipe}
    return [f"{_SOURCES.get(key, key)}: {cached.get(key)!r} cached, {wanted.get(key)!r} now"
            for key in sorted(set(cached) | set(wanted)) if cached.get(key) != wanted.get(key)]


def build_target_cache(accelerator: Accelerator, dataset, teacher: Teacher, folder: str | Path, recipe: dict,
                       shard_size: int, batch_size: int, num_workers: int) -> tuple[TargetCache, float]:
    """Build the cache for every item of `dataset` (a fixed-plan CTDClipDataset) unless an identical one exists.

    `recipe` holds the teacher-side settings the targets depend on (spec, weighting, block, dtype). Every process
    builds the shards s with s % num_processes == rank. Returns (cache, seconds spent building; 0 when reused).
    """
    import time

    folder = Path(folder)
    data = dataset.fingerprint()
    fingerprint = hashlib.sha256(json.dumps({"data": data, "teacher": recipe},
                                            sort_keys=True).encode()).hexdigest()[:20]
    start = time.perf_counter()
    index = _read_index(folder)
    if index is not None and index.get("fingerprint") != fingerprint:
        # JSON round trip: the index stores lists where the recipe may hold tuples.
        differences = _differences(index, json.loads(json.dumps(data)), json.loads(json.dumps(recipe)))
        raise ValueError(
            f"target cache {folder} holds the teacher targets of another clip plan ("
            f"{'; '.join(differences) or 'fingerprint ' + str(index.get('fingerprint'))}). It is not rebuilt in "
            f"place: pass another --target_cache folder (or --target_cache auto for <output_dir>/target_cache), or "
            f"delete {folder} to rebuild it for this run")
    if index is None or not _complete(folder, index):
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
