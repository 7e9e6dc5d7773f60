"""Initialise a LiteFrame student encoder from a teacher ViT by clipping the teacher's weights.

Where it sits: teacher checkpoint (InternViT-300M from InternVL3, or DINOv2) -> **student init** -> CTD
training (`training/ctd.py`) or conversion into a full LiteFrame video LLM (`liteframe_hf.convert`).

The paper: "initialize the student's weights from those of the teacher, clipping them to match the
student's dimensions". Our reading, parameter by parameter (d = width, h = heads, hd = head dim):

* residual stream: the first ``d_s`` channels of every LayerNorm, LayerScale, bias and linear input;
* attention: q/k/v rows are head-major, so the student takes the first ``h_s`` heads and in each the first
  ``hd_s`` dims (rows ``head * hd_t + j``); the output projection takes the same columns. When
  ``hd_s < hd_t`` the query is scaled by ``sqrt(hd_s / hd_t)`` so the student's softmax sees exactly the
  teacher's logits restricted to the kept dims (the student's own scale is ``hd_s**-0.5``). When the
  student's heads do not fit inside the teacher's (``h_s > h_t`` or ``hd_s > hd_t``) the first ``d_s``
  rows are taken as one block (reported: attention is then only approximately the teacher's);
* MLP: the first ``intermediate_size`` hidden units (fc1 rows, fc2 columns);
* layers: student block ``i`` <- teacher block ``layer_map[i]``; default ``"even"`` = ``i * L_t // L_s``
  (every other block for 24 -> 12, starting at the first), ``"first"`` = the first ``L_s`` blocks, or an
  explicit list;
* embeddings: patch-embedding output channels (kernel resized, area-preserving, if patch sizes differ), CLS
  token, position embeddings (channels sliced; grid bicubic-resized like the teacher's own
  ``interpolate_pos_encoding``, so the student at its resolution sees what the teacher sees there);
  optional folding of a different pixel normalisation into the patch embedding;
* temporal mixers zero and token mergers average pooling, so the initial student *is* the clipped teacher
  run frame by frame up to the first token merger;
* head (``hidden -> out_hidden_size``, the teacher's width): ``"lstsq"`` (default) fits it by ridge
  regression of the teacher's WAP targets on the initial student's pre-head tokens over calibration clips
  (real frames when given, else synthetic 1/f-noise clips with motion). This also absorbs a teacher's
  final LayerNorm (DINOv2), which no slicing can express. ``"slice"`` is the transposed slicing
  ``W = [I; 0]`` (student channel c -> teacher channel c), the pseudo-inverse of the channel clipping.
  The report carries the cosine of the initial student output to the teacher's WAP targets, with the
  cosine of a constant head (the calibration targets' mean) as the floor. Measured on DINOv2-S ->
  liteframe-micro (half width, half depth) the fit generalises to unseen videos mostly through its
  intercept, so calibrate on frames like the training videos when you have them.

Supported teachers: transformers' ``InternVLVisionModel`` (also inside an InternVL model) and
``Dinov2Model`` / ``Dinov2WithRegistersModel`` (pre-LN blocks with LayerScale, GELU MLP), raw or wrapped in
:class:`liteframe_hf.teachers.Teacher`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .modeling.modeling_liteframe import (
    DenseTemporalConv,
    DepthwiseTemporalConv,
    LiteFrameTokenMerger,
    LiteFrameVisionModel,
    TemporalAttention,
)
from .modeling.video_processing_liteframe import INTERNVIT_MEAN, INTERNVIT_STD
from .teachers import Teacher, frozen_borrow

__all__ = [
    "init_student_from_teacher",
    "resolve_layer_map",
    "synthetic_clips",
    "StudentInitReport",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN, IMAGENET_STD = tuple(INTERNVIT_MEAN), tuple(INTERNVIT_STD)  # InternViT and DINOv2 share them
HEAD_INITS = ("lstsq", "slice")
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # relative ridge strengths tried by ridge="auto"

# Student module name -> the teacher's name for it inside `encoder.layer.{i}.` (first that exists wins).
# InternViT (InternVLVisionLayer) uses the student's names; DINOv2 its own (old and new transformers spellings).
_LAYER_SOURCES: dict[str, tuple[str, ...]] = {
    "layernorm_before": ("layernorm_before", "norm1"),
    "attention.q_proj": ("attention.q_proj", "attention.attention.query"),
    "attention.k_proj": ("attention.k_proj", "attention.attention.key"),
    "attention.v_proj": ("attention.v_proj", "attention.attention.value"),
    "attention.projection_layer": ("attention.projection_layer", "attention.o_proj", "attention.output.dense"),
    "lambda_1": ("lambda_1", "layer_scale1.lambda1"),
    "layernorm_after": ("layernorm_after", "norm2"),
    "mlp.fc1": ("mlp.fc1",),
    "mlp.fc2": ("mlp.fc2",),
    "lambda_2": ("lambda_2", "layer_scale2.lambda1"),
}


@dataclass
class StudentInitReport:
    """What `init_student_from_teacher` did.

    layer_map: student block i <- teacher block layer_map[i] (0-based).
    attention_slicing: "per-head" (first heads, first dims of each) or "channels" (first d_s rows as a block).
    sliced: (student parameter, teacher source, teacher shape, student shape) for every copied tensor.
    head: how the head was initialised: method, calibration samples, ridge, and on the calibration clips
        `cosine` = mean per-token cosine of the initial student output to the teacher's WAP targets,
        `mean_cosine` = the cosine of a constant head predicting the calibration targets' mean (the floor to
        beat), `r2` = 1 - SSE / SSE of that constant head; the same with an `eval_` prefix on `eval_clips`.
    notes: anything approximate (resized kernels, interpolated positions, dropped teacher parts).
    """

    teacher: str
    teacher_layers: int
    student_layers: int
    layer_map: list[int]
    attention_slicing: str
    sliced: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    head: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)  # JSON-ready: json writes the shape tuples as lists

    def summary(self) -> str:
        lines = [
            f"student initialised from {self.teacher} ({self.teacher_layers} -> {self.student_layers} blocks, "
            f"attention sliced {self.attention_slicing})",
            "  layer map (student <- teacher): " + ", ".join(f"{s}<-{t}" for s, t in enumerate(self.layer_map)),
        ]
        # the embeddings, the final norm and block 0; the other blocks are sliced alike
        lines += [f"  {name}: {source} {tuple(t_shape)} -> {tuple(s_shape)}" for name, source, t_shape, s_shape
                  in self.sliced if not name.startswith("layers.") or name.startswith("layers.0.")]
        if len(self.layer_map) > 1:
            lines.append(f"  (blocks 1..{len(self.layer_map) - 1} sliced the same way)")
        if self.head:
            head = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in self.head.items())
            lines.append(f"  head: {head}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = summary


# ----------------------------------------------------------------------------------------------- public API
def resolve_layer_map(layer_map: str | Sequence[int] | None, teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher block for every student block: ``"even"`` (default: ``i * L_t // L_s``, every other block for
    24 -> 12, starting at the first), ``"first"`` (blocks 0..L_s-1), or an explicit list / "0,2,4" string."""
    if layer_map is None:
        layer_map = "even"
    if isinstance(layer_map, str) and layer_map not in ("even", "first"):
        try:
            layer_map = [int(x) for x in layer_map.replace(" ", "").split(",") if x]
        except ValueError:
            raise ValueError(
                f"layer_map {layer_map!r} is neither 'even', 'first' nor a comma-separated list of teacher block indices"
            ) from None
    if isinstance(layer_map, str):
        if student_layers > teacher_layers:
            raise ValueError(
                f"the student has {student_layers} blocks but the teacher only {teacher_layers}: layer_map={layer_map!r} "
                f"cannot pick distinct teacher blocks; pass an explicit list (teacher blocks may repeat)"
            )
        if layer_map == "first":
            return list(range(student_layers))
        return [i * teacher_layers // student_layers for i in range(student_layers)]
    mapping = [int(i) for i in layer_map]
    if len(mapping) != student_layers:
        raise ValueError(f"layer_map has {len(mapping)} entries but the student has {student_layers} blocks: {mapping}")
    bad = [i for i in mapping if not 0 <= i < teacher_layers]
    if bad:
        raise ValueError(f"layer_map entries {bad} are outside the teacher's blocks 0..{teacher_layers - 1}")
    return mapping


@torch.no_grad()
def init_student_from_teacher(
    student: LiteFrameVisionModel,
    teacher: nn.Module | Teacher,
    layer_map: str | Sequence[int] | None = None,
    *,
    head_init: str = "lstsq",
    calibration_clips: torch.Tensor | None = None,
    calibration_groups: Sequence[int] | None = None,
    num_calibration_clips: int = 8,
    calibration_size: int | None = None,
    eval_clips: torch.Tensor | None = None,
    ridge: float | str = "auto",
    weighting: str | None = None,
    feature_layer: int | None = None,
    chunk_size: int = 4,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
    teacher_image_mean: Sequence[float] | None = None,
    teacher_image_std: Sequence[float] | None = None,
    seed: int = 0,
) -> StudentInitReport:
    """Initialise `student` in place from `teacher` by clipping (see the module docstring) and return a report.

    Args:
        student: the LiteFrame encoder to initialise (any device/dtype; its width must not exceed the teacher's).
        teacher: ``InternVLVisionModel``, ``Dinov2Model`` (raw, inside an InternVL model, or a ``Teacher``).
        layer_map: ``"even"`` (default), ``"first"``, a list of teacher block indices (one per student block) or
            a ``"0,2,4"`` string.
        head_init: ``"lstsq"`` (ridge fit to the teacher's WAP targets) or ``"slice"`` (``W = [I; 0]``).
        calibration_clips: (N, clip_len, 3, H, W) frames normalised the way the *student* will see them; by
            default ``num_calibration_clips`` synthetic clips at ``calibration_size`` px (default: the
            student's image size).
        calibration_groups: the video each calibration clip comes from (one id per clip). ``ridge="auto"``
            then cross-validates over whole videos. Clips of one video are near-copies: folds over clips of a
            few videos pick a weak ridge whose head has a large gain on the pre-head features, and the first CTD
            steps on such a head diverge (docs/ctd_stability.md). Default: every clip its own video.
        eval_clips: optional held-out clips on which the head's cosine is also measured (``eval_cosine``).
        ridge: ridge strength relative to the mean eigenvalue of the features' covariance, or ``"auto"``
            (default): the value of `RIDGE_GRID` with the lowest held-out MSE in 4-fold cross-validation over
            videos (`calibration_groups`); with clips of fewer than two videos, the strongest value of the grid.
        weighting, feature_layer: WAP weighting / teacher feature layer of the targets (default: the
            ``Teacher``'s settings, else ``cls_dot`` and the last layer).
        image_mean, image_std / teacher_image_mean, teacher_image_std: pixel normalisation of the student's
            and of the teacher's inputs; when both are given and differ, the difference is folded into the
            patch embedding (and calibration clips are re-normalised for the teacher). Default: same as the
            teacher's.
    """
    if head_init not in HEAD_INITS:
        raise ValueError(f"head_init={head_init!r}; choose one of {HEAD_INITS}")
    model, wrapper = _unwrap(teacher)
    cfg = student.config
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    info = _teacher_info(model, state)
    d_s, d_t = cfg.hidden_size, info["hidden_size"]
    if d_s > d_t:
        raise ValueError(
            f"the student is wider than the teacher (hidden_size {d_s} > {d_t}): clipping can only shrink; pick a "
            f"student with hidden_size <= {d_t}"
        )
    if cfg.intermediate_size > info["intermediate_size"]:
        raise ValueError(
            f"the student's intermediate_size {cfg.intermediate_size} exceeds the teacher's {info['intermediate_size']}"
        )
    if cfg.num_channels != info["num_channels"]:
        raise ValueError(f"the student takes {cfg.num_channels} input channels, the teacher {info['num_channels']}")

    mapping = resolve_layer_map(layer_map, info["num_layers"], cfg.num_hidden_layers)
    h_s, h_t = cfg.num_attention_heads, info["num_heads"]
    hd_s, hd_t = d_s // h_s, d_t // h_t
    per_head = h_s <= h_t and hd_s <= hd_t
    report = StudentInitReport(
        teacher=type(model).__name__,
        teacher_layers=info["num_layers"],
        student_layers=cfg.num_hidden_layers,
        layer_map=mapping,
        attention_slicing="per-head" if per_head else "channels",
        notes=list(info["notes"]),
    )
    if per_head:
        heads = (torch.arange(h_s)[:, None] * hd_t + torch.arange(hd_s)[None, :]).reshape(-1)  # teacher rows
        q_scale = math.sqrt(hd_s / hd_t)
        if hd_s != hd_t:
            report.notes.append(
                f"head_dim {hd_t} -> {hd_s}: first {hd_s} dims of the first {h_s} heads; queries scaled by "
                f"sqrt({hd_s}/{hd_t}) so the logits are the teacher's over the kept dims"
            )
    else:
        heads, q_scale = torch.arange(d_s), 1.0
        report.notes.append(
            f"student heads ({h_s} x {hd_s}) do not fit inside the teacher's ({h_t} x {hd_t}): q/k/v/o take the first "
            f"{d_s} channels as a block, so attention only approximates the teacher's"
        )
    if cfg.layer_norm_eps != info["layer_norm_eps"]:
        report.notes.append(f"layer_norm_eps differs: student {cfg.layer_norm_eps}, teacher {info['layer_norm_eps']}")
    if cfg.hidden_act != info["hidden_act"]:
        report.notes.append(f"activation differs: student {cfg.hidden_act}, teacher {info['hidden_act']}")

    params = dict(student.named_parameters())
    i_s = cfg.intermediate_size

    def put(name: str, value: torch.Tensor, source: str | None = None) -> None:
        """Copy `value`, computed from the teacher tensor `source` (default: the same name), into `name`."""
        target, source = params[name], source or name
        if tuple(value.shape) != tuple(target.shape):  # a bug here, not a user error
            raise RuntimeError(f"{name}: computed {tuple(value.shape)} for a {tuple(target.shape)} parameter")
        target.copy_(value.to(device=target.device, dtype=target.dtype))
        report.sliced.append((name, source, tuple(state[source].shape), tuple(value.shape)))

    # ---- embeddings
    _init_embeddings(student, state, info, put, report, image_mean, image_std, teacher_image_mean, teacher_image_std)

    # ---- blocks
    for s, t in enumerate(mapping):
        prefix = f"encoder.layer.{t}."
        for ours, candidates in _LAYER_SOURCES.items():
            theirs = _first_present(state, prefix, candidates)
            dst = f"layers.{s}.{ours}"
            if theirs is None:
                if ours.startswith("lambda"):  # a teacher without LayerScale behaves as lambda = 1
                    params[dst].fill_(1.0)
                    continue
                raise ValueError(f"teacher block {t} has no {' / '.join(candidates)}: not a supported ViT block")
            src = prefix + theirs
            if ours.startswith(("layernorm", "lambda")):
                key = src if ours.startswith("lambda") else src + ".weight"
                put(dst if ours.startswith("lambda") else dst + ".weight", state[key][:d_s], key)
                if ours.startswith("layernorm"):
                    put(dst + ".bias", state[src + ".bias"][:d_s], src + ".bias")
                continue
            w, b = state[src + ".weight"], state.get(src + ".bias")
            if ours in ("attention.q_proj", "attention.k_proj", "attention.v_proj"):
                scale = q_scale if ours == "attention.q_proj" else 1.0
                new_w, new_b = w[heads][:, :d_s] * scale, None if b is None else b[heads] * scale
            elif ours == "attention.projection_layer":
                new_w, new_b = w[:d_s][:, heads], None if b is None else b[:d_s]
            elif ours == "mlp.fc1":
                new_w, new_b = w[:i_s, :d_s], None if b is None else b[:i_s]
            else:  # mlp.fc2
                new_w, new_b = w[:d_s, :i_s], None if b is None else b[:d_s]
            put(dst + ".weight", new_w, src + ".weight")
            if dst + ".bias" in params:
                if new_b is None:
                    params[dst + ".bias"].zero_()
                else:
                    put(dst + ".bias", new_b, src + ".bias")
            elif new_b is not None and new_b.abs().max() > 0:
                report.notes.append(f"{dst}: the student has no bias; the teacher's {src}.bias was dropped")

    # ---- final LayerNorm (post_layernorm students, e.g. the `dinov2-s` tower): the teacher's, sliced; identity
    # for a teacher without one.
    if student.post_layernorm is not None:
        if info["final_norm"]:
            for suffix in ("weight", "bias"):
                put(f"post_layernorm.{suffix}", state[f"layernorm.{suffix}"][:d_s], f"layernorm.{suffix}")
            report.notes = [n for n in report.notes if not n.startswith("teacher final LayerNorm present")]
            report.notes.append("teacher final LayerNorm copied into post_layernorm")
        else:
            student.post_layernorm.weight.fill_(1.0)
            student.post_layernorm.bias.zero_()
            report.notes.append("the student has post_layernorm but the teacher no final norm: set to identity "
                                "(only the normalisation itself remains)")

    # ---- temporal mixers start at zero, token mergers as average pooling: the student starts as the clipped
    # image ViT run frame by frame.
    for module in student.modules():
        if isinstance(module, DepthwiseTemporalConv):
            module.weight.zero_()
            module.bias.zero_()
        elif isinstance(module, DenseTemporalConv):
            module.conv.weight.zero_()
            module.conv.bias.zero_()
        elif isinstance(module, TemporalAttention):
            module.attention.projection_layer.weight.zero_()
            module.attention.projection_layer.bias.zero_()
        elif isinstance(module, LiteFrameTokenMerger):
            module.weight.fill_(1.0 / module.weight[0].numel())
            module.bias.zero_()

    # ---- head
    if isinstance(student.head, nn.Linear):
        _init_head(student, model, wrapper, info, report, head_init=head_init, calibration_clips=calibration_clips,
                   calibration_groups=calibration_groups, num_calibration_clips=num_calibration_clips, calibration_size=calibration_size,
                   eval_clips=eval_clips, ridge=ridge, weighting=weighting, feature_layer=feature_layer,
                   chunk_size=chunk_size, image_mean=image_mean, image_std=image_std,
                   teacher_image_mean=teacher_image_mean, teacher_image_std=teacher_image_std, seed=seed)
    else:
        report.head = {"method": "none (student has no head: out_hidden_size=None)"}
    return report


def synthetic_clips(
    num_clips: int,
    clip_len: int = 4,
    size: int = 224,
    image_mean: Sequence[float] = IMAGENET_MEAN,
    image_std: Sequence[float] = IMAGENET_STD,
    seed: int = 0,
) -> torch.Tensor:
    """Calibration clips without data: coloured 1/f ("pink") noise images, which share natural images'
    power spectrum, panned by a random few pixels per frame. Returns (N, clip_len, 3, size, size), normalised
    with `image_mean` / `image_std`."""
    g = torch.Generator().manual_seed(seed)
    margin = 4 * clip_len
    canvas = size + 2 * margin
    fy = torch.fft.fftfreq(canvas)[:, None]
    fx = torch.fft.rfftfreq(canvas)[None, :]
    amplitude = 1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / canvas)  # 1/f
    mean = torch.tensor(image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_std).view(1, 3, 1, 1)
    clips = []
    for _ in range(num_clips):
        phase = torch.rand(3, canvas, fx.shape[1], generator=g) * 2 * math.pi
        spectrum = amplitude * torch.randn(3, canvas, fx.shape[1], generator=g).abs() * torch.exp(1j * phase)
        img = torch.fft.irfft2(spectrum, s=(canvas, canvas))  # (3, canvas, canvas)
        mix = torch.eye(3) + 0.6 * torch.rand(3, 3, generator=g)  # correlated colour channels
        img = torch.einsum("ij,jhw->ihw", mix, img)
        img = (img - img.mean(dim=(1, 2), keepdim=True)) / img.std(dim=(1, 2), keepdim=True)
        img = (0.45 + 0.22 * img + 0.1 * torch.rand(3, 1, 1, generator=g)).clamp(0, 1)
        velocity = (torch.rand(2, generator=g) * 2 - 1) * 3  # pixels per frame
        frames = []
        for t in range(clip_len):
            dy, dx = (margin + velocity * t).round().int().tolist()
            frames.append(img[:, dy : dy + size, dx : dx + size])
        clips.append((torch.stack(frames) - mean) / std)
    return torch.stack(clips)


# ----------------------------------------------------------------------------------------------- internals
def _unwrap(teacher) -> tuple[nn.Module, Teacher | None]:
    """(bare vision model, the Teacher wrapper if one was given)."""
    wrapper = teacher if isinstance(teacher, Teacher) else None
    model = teacher.model if wrapper is not None else teacher
    # InternVLForConditionalGeneration / InternVLModel: take the vision tower.
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and isinstance(getattr(inner, "vision_tower", None), nn.Module):
        model = inner.vision_tower
    elif isinstance(getattr(model, "vision_tower", None), nn.Module):
        model = model.vision_tower
    return model, wrapper


def _first_present(state: dict, prefix: str, candidates: Sequence[str]) -> str | None:
    for name in candidates:
        if prefix + name + ".weight" in state or prefix + name in state:
            return name
    return None


def _teacher_info(model: nn.Module, state: dict) -> dict:
    """Sizes and quirks of a supported teacher, read from its weights (the config only for eps/activation)."""
    name = type(model).__name__
    required = ("embeddings.cls_token", "embeddings.patch_embeddings.projection.weight", "encoder.layer.0.mlp.fc1.weight")
    if any(k not in state for k in required):
        if any(".mlp.gate_proj." in k or ".mlp.weights_in." in k for k in state):
            raise ValueError(f"{name} uses a SwiGLU MLP, which a LiteFrame student (GELU MLP) cannot clip")
        raise ValueError(
            f"cannot initialise a LiteFrame student from {name}: supported teachers are transformers' "
            "InternVLVisionModel (InternViT, e.g. from an InternVL3-*-hf checkpoint) and Dinov2Model / "
            "Dinov2WithRegistersModel (pre-LN ViT blocks with a CLS token and a GELU MLP)"
        )
    if any(k.endswith(("q_norm.weight", "k_norm.weight")) for k in state):
        raise ValueError(f"{name} normalises queries/keys over the full width (use_qk_norm, InternViT-6B style); "
                         "clipping cannot reproduce that. Use an InternViT-300M-style teacher.")
    ln = _first_present(state, "encoder.layer.0.", _LAYER_SOURCES["layernorm_before"])
    if ln is None or f"encoder.layer.0.{ln}.bias" not in state:
        raise ValueError(f"{name} uses RMSNorm blocks (norm_type='rms_norm'); the LiteFrame student uses LayerNorm")
    config = getattr(model, "config", None)
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    patch = state["embeddings.patch_embeddings.projection.weight"]
    notes = []
    if "embeddings.register_tokens" in state:
        notes.append("the teacher's register tokens are not part of the student and were dropped")
    final_norm = "layernorm.weight" in state
    notes.append("teacher final LayerNorm present: absorbed by the head fit only" if final_norm
                 else "teacher has no final norm (InternViT mean-pooling layout)")
    return {
        "hidden_size": patch.shape[0],
        "num_heads": int(getattr(config, "num_attention_heads")),
        "intermediate_size": state["encoder.layer.0.mlp.fc1.weight"].shape[0],
        "num_layers": layers,
        "num_channels": patch.shape[1],
        "patch_size": patch.shape[-1],
        "layer_norm_eps": float(getattr(config, "layer_norm_eps", 1e-6)),
        "hidden_act": getattr(config, "hidden_act", "gelu"),
        "final_norm": final_norm,
        "notes": notes,
    }


def _init_embeddings(student, state, info, put, report, image_mean, image_std, teacher_mean, teacher_std) -> None:
    cfg = student.config
    d_s = cfg.hidden_size
    # Patch embedding: output channels sliced; kernel resized if the patch sizes differ.
    w = state["embeddings.patch_embeddings.projection.weight"][:d_s]  # (d_s, C, p_t, p_t)
    b = state["embeddings.patch_embeddings.projection.bias"][:d_s]
    p_t, p_s = info["patch_size"], cfg.patch_size
    if p_s != p_t:
        # Area-preserving resize: a constant patch gives the same response at either patch size.
        w = F.interpolate(w, size=(p_s, p_s), mode="bilinear", align_corners=False, antialias=p_s < p_t) * (p_t / p_s) ** 2
        report.notes.append(f"patch size {p_t} -> {p_s}: patch-embedding kernel resized (bilinear, area-preserving)")
    folded = _normalisation_fold(image_mean, image_std, teacher_mean, teacher_std)
    if folded is not None:
        # Student pixels x_s = (x - m_s) / s_s; the teacher expects x_t = (x_s * s_s + m_s - m_t) / s_t.
        scale, shift = folded  # x_t = scale * x_s + shift, per channel
        b = b + torch.einsum("ocij,c->o", w, shift)
        w = w * scale.view(1, -1, 1, 1)
        report.notes.append("student/teacher pixel normalisation differ: folded into the patch embedding")
    put("embeddings.patch_embeddings.projection.weight", w)
    put("embeddings.patch_embeddings.projection.bias", b)
    put("embeddings.cls_token", state["embeddings.cls_token"].reshape(1, 1, -1)[..., :d_s])
    # Position embeddings: channels sliced, grid resized like the teacher's own interpolate_pos_encoding.
    pos = state["embeddings.position_embeddings"][..., :d_s]  # (1, 1 + n*n, d_s)
    n_t = round((pos.shape[1] - 1) ** 0.5)
    n_s = cfg.image_size // cfg.patch_size
    if n_t != n_s:
        grid = pos[:, 1:].reshape(1, n_t, n_t, d_s).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(n_s, n_s), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, n_s * n_s, d_s)], dim=1)
        report.notes.append(f"position grid {n_t}x{n_t} -> {n_s}x{n_s} (bicubic, as the teacher interpolates)")
    put("embeddings.position_embeddings", pos)


def _normalisation_fold(mean_s, std_s, mean_t, std_t):
    """(scale, shift) with x_t = scale * x_s + shift per channel, or None when nothing is to be folded."""
    if mean_s is None or std_s is None or mean_t is None or std_t is None:
        return None
    mean_s, std_s, mean_t, std_t = (torch.tensor(v, dtype=torch.float32) for v in (mean_s, std_s, mean_t, std_t))
    if torch.allclose(mean_s, mean_t) and torch.allclose(std_s, std_t):
        return None
    return std_s / std_t, (mean_s - mean_t) / std_t


def _init_head(student, model, wrapper, info, report, *, head_init, calibration_clips, calibration_groups,
               num_calibration_clips,
               calibration_size, eval_clips, ridge, weighting, feature_layer, chunk_size, image_mean, image_std,
               teacher_image_mean, teacher_image_std, seed) -> None:
    cfg = student.config
    head: nn.Linear = student.head
    d_s, d_out, d_t = cfg.hidden_size, head.out_features, info["hidden_size"]
    if d_out != d_t:
        raise ValueError(
            f"the student's out_hidden_size {d_out} differs from the teacher's width {d_t}: the head must map into the "
            f"teacher's space (WAP targets); set out_hidden_size={d_t}"
        )
    # Start from the transposed slicing W = [I; 0] (also the result for head_init="slice").
    head.weight.zero_()
    head.weight[:d_s, :d_s] = torch.eye(d_s, dtype=head.weight.dtype, device=head.weight.device)
    head.bias.zero_()

    if calibration_clips is None and num_calibration_clips < 1:
        if head_init == "lstsq":
            raise ValueError("head_init='lstsq' needs calibration clips: pass calibration_clips or num_calibration_clips >= 1")
        report.head = {"method": "slice (W = [I; 0])", "cosine": None}
        return
    with frozen_borrow(model):  # Teacher() freezes and evals the model it wraps; we only borrow it
        teacher = _calibration_teacher(model, wrapper, weighting, feature_layer, chunk_size)
        mean, std = image_mean or teacher_image_mean or IMAGENET_MEAN, image_std or teacher_image_std or IMAGENET_STD
        fold = _normalisation_fold(image_mean, image_std, teacher_image_mean, teacher_image_std)
        if calibration_clips is None:
            size = calibration_size or cfg.image_size
            calibration_clips = synthetic_clips(num_calibration_clips, cfg.clip_len, size, mean, std, seed=seed)
            source = f"synthetic 1/f-noise clips ({num_calibration_clips} x {cfg.clip_len} frames, {size} px)"
        else:
            source = f"given clips {tuple(calibration_clips.shape)}"
        if calibration_groups is not None and len(calibration_groups) != calibration_clips.shape[0]:
            raise ValueError(f"calibration_groups has {len(calibration_groups)} entries for {calibration_clips.shape[0]} "
                             f"calibration clips: give the video of every clip")
        x, y, groups = _features_and_targets(student, teacher, calibration_clips, fold, chunk_size)
        result = {
            "method": "lstsq (ridge fit to the teacher's WAP targets)" if head_init == "lstsq" else "slice (W = [I; 0])",
            "weighting": teacher.weighting,
            "calibration": source,
            "samples": int(x.shape[0]),
        }
        if head_init == "lstsq":
            if ridge == "auto":
                if calibration_groups is not None:  # row -> clip -> video
                    groups = torch.as_tensor(list(calibration_groups))[groups]
                ridge = _choose_ridge(x, y, groups)
                count, unit = len(groups.unique()), "videos" if calibration_groups is not None else "clips"
                result["ridge_cv"] = (f"{min(4, count)}-fold over {count} {unit}" if count > 1 else
                                      f"1 {unit[:-1]}: nothing to hold out, the strongest ridge")
            weight, bias = _ridge_fit(x, y, float(ridge))
            head.weight.copy_(weight.to(head.weight))
            head.bias.copy_(bias.to(head.bias))
            result["ridge"] = float(ridge)
        reference = y.mean(0, keepdim=True)
        result.update(_fit_stats(head, x, y, reference))
        if eval_clips is not None:
            ex, ey, _ = _features_and_targets(student, teacher, eval_clips, fold, chunk_size)
            result.update({f"eval_{k}": v for k, v in _fit_stats(head, ex, ey, reference).items()})
            result["eval_samples"] = int(ex.shape[0])
        report.head = result


def _calibration_teacher(model, wrapper, weighting, feature_layer, chunk_size) -> Teacher:
    if wrapper is not None and weighting is None and feature_layer is None:
        return wrapper
    param = next(model.parameters())
    return Teacher(
        model,
        weighting=weighting if weighting is not None else (wrapper.weighting if wrapper is not None else None),
        feature_layer=feature_layer if feature_layer is not None else (wrapper.feature_layer if wrapper else None),
        device=param.device,
        dtype=param.dtype,
        chunk_size=chunk_size,
    )


def _features_and_targets(student, teacher, clips, fold, chunk_size):
    """Pre-head student tokens X (M, d_s), WAP targets Y (M, d_t) (float64, CPU) and each row's clip index (M,)."""
    if clips.ndim != 5:
        raise ValueError(f"calibration clips must be (N, clip_len, 3, H, W); got {tuple(clips.shape)}")
    captured = []
    hook = student.head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    was_training = student.training
    student.eval()
    xs, ys = [], []
    try:
        for start in range(0, clips.shape[0], chunk_size):
            chunk = clips[start : start + chunk_size]
            param = next(student.parameters())
            captured.clear()
            out = student(chunk.to(param.device, param.dtype), return_dict=True).last_hidden_state  # (n, T', H', W', D)
            teacher_in = chunk if fold is None else chunk * fold[0].view(1, 1, 3, 1, 1) + fold[1].view(1, 1, 3, 1, 1)
            target = teacher.wap_targets(teacher_in)  # (n, T/4, h/2, w/2, D_t)
            if tuple(target.shape[:4]) != tuple(out.shape[:4]):
                raise ValueError(
                    f"the student's output grid {tuple(out.shape[1:4])} differs from the teacher's WAP grid "
                    f"{tuple(target.shape[1:4])} on {tuple(chunk.shape[-2:])} px clips (different patch sizes or "
                    f"merging schedule): use head_init='slice'"
                )
            xs.append(captured[0].reshape(-1, captured[0].shape[-1]).double().cpu())
            ys.append(target.reshape(-1, target.shape[-1]).double().cpu())
    finally:
        hook.remove()
        student.train(was_training)
    x, y = torch.cat(xs), torch.cat(ys)
    return x, y, torch.arange(clips.shape[0]).repeat_interleave(x.shape[0] // clips.shape[0])


def _ridge_fit(x: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """min ||X W^T + b - Y||^2 + lam ||W||^2 with lam = ridge * mean eigenvalue of cov(X). Returns (W, b)."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc  # (d_s, d_s)
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    weight_t = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)  # (d_s, d_t)
    return weight_t.T.float(), (my - mx @ weight_t).float()


def _choose_ridge(x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, folds: int = 4) -> float:
    """Relative ridge strength with the lowest held-out MSE (the CTD loss) in k-fold cross-validation over
    whole groups (clips or videos: correlated tokens never straddle a split). With one group there is nothing
    to hold out: the strongest ridge, the head with the least gain on the pre-head features."""
    clips = groups.unique()
    folds = min(folds, len(clips))
    if folds < 2:
        return RIDGE_GRID[-1]
    fold_of = {int(c): i % folds for i, c in enumerate(clips.tolist())}
    fold = torch.tensor([fold_of[int(g)] for g in groups])
    errors = []
    for ridge in RIDGE_GRID:
        sse = 0.0
        for k in range(folds):
            train, test = fold != k, fold == k
            weight, bias = _ridge_fit(x[train], y[train], ridge)
            pred = x[test] @ weight.double().T + bias.double()
            sse += float(((pred - y[test]) ** 2).sum())
        errors.append(sse)
    return RIDGE_GRID[min(range(len(errors)), key=errors.__getitem__)]


def _fit_stats(head: nn.Linear, x: torch.Tensor, y: torch.Tensor, reference: torch.Tensor) -> dict:
    """Mean per-token cosine of head(x) to the targets y; `mean_cosine`, the cosine of the constant head that
    always predicts `reference` (the calibration targets' mean: the floor any fitted head should beat); and
    `r2` = 1 - SSE / SSE of that constant head (> 0: better than the constant)."""
    pred = x @ head.weight.double().cpu().T + head.bias.double().cpu()
    constant = reference.expand_as(y)
    return {
        "cosine": float(F.cosine_similarity(pred, y, dim=-1).mean()),
        "mean_cosine": float(F.cosine_similarity(constant, y, dim=-1).mean()),
        "r2": float(1 - ((pred - y) ** 2).sum() / ((constant - y) ** 2).sum()),
    }
