"""`liteframe assets list`: what is in the LiteFrame asset cache, with sizes and paths."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from .assets import ENV_VAR, _fetch_command, cache_dir, list_assets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help=f"asset cache (default: ${ENV_VAR} or ~/.cache/liteframe/assets)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.add_argument("--time-loads", action="store_true",
                        help="also time loading the cached models (each load in a fresh process, after imports)")
    parser.add_argument("--repeats", type=int, default=3, help="loads per model for --time-loads (median shown)")


# Each timing runs in a fresh interpreter: imports first (not timed), then the load that is timed.
_LOADS = {
    "dinov2 (HF folder)": (
        "dinov2", "from transformers import Dinov2Model",
        "Dinov2Model.from_pretrained(P)"),
    "smollm2 (safetensors folder)": (
        "smollm2", "from transformers import AutoTokenizer, AutoModelForCausalLM",
        "AutoTokenizer.from_pretrained(P); AutoModelForCausalLM.from_pretrained(P)"),
    "smollm2 (GGUF, dequantised at load)": (
        "smollm2", "import torch; from transformers import AutoTokenizer, AutoModelForCausalLM",
        "AutoTokenizer.from_pretrained(P, gguf_file=G); "
        "AutoModelForCausalLM.from_pretrained(P, gguf_file=G, dtype=torch.float32)"),
}


def time_loads(root, repeats: int = 3) -> dict[str, list[float]]:
    """Seconds per load (fresh process each) of every cached model; {label: [seconds, ...]}."""
    from .assets import SMOLLM2_GGUF, is_cached

    results = {}
    for label, (name, imports, load) in _LOADS.items():
        if not is_cached(name, root):
            continue
        code = (
            f"import time, warnings; warnings.filterwarnings('ignore'); {imports}\n"
            "from transformers.utils import logging; logging.set_verbosity_error(); logging.disable_progress_bar()\n"
            f"from liteframe_hf.assets import asset_path\n"
            f"P = str(asset_path({name!r}, {str(root)!r})); G = {SMOLLM2_GGUF[0].split('/')[-1]!r}\n"
            f"t = time.perf_counter(); {load}; print('SECONDS', time.perf_counter() - t)\n"
        )
        runs = []
        for _ in range(max(1, repeats)):
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("SECONDS")]
            if proc.returncode != 0 or not line:
                raise RuntimeError(f"timing {label} failed:\n{proc.stderr[-2000:]}")
            runs.append(float(line[-1].split()[1]))
        results[label] = runs
    return results


def main(args: argparse.Namespace) -> int:
    root = cache_dir(args.cache_dir)
    rows = list_assets(root)
    if args.json:
        print(json.dumps({"cache_dir": str(root), "assets": rows}, indent=2))
        return 0
    print(f"asset cache: {root}")
    missing = []
    for row in rows:
        if row["cached"]:
            print(f"  {row['name']:8s} cached   {row['bytes'] / 1e6:8.1f} MB  {row['path']}")
            print(f"           {row['description']}; {len(row['files'])} files; source: {row['source']}")
        else:
            print(f"  {row['name']:8s} missing  {'':11s}  {row['path']}{'  (optional)' if row['optional'] else ''}")
            missing.append(row["name"])
    if missing:
        print(f"get the missing ones with: {_fetch_command(missing, root)}")
    if args.time_loads:
        print("load times (fresh process each, imports excluded):")
        for label, runs in time_loads(root, args.repeats).items():
            print(f"  {label:38s} median {statistics.median(runs):6.2f}s  runs {', '.join(f'{r:.2f}' for r in runs)}")
    return 0
