"""Training configuration: one dataclass per script, read from a YAML recipe and overridden on the command line.

Precedence, lowest first: the dataclass defaults (the paper's numbers where the paper gives one) < the YAML file
given with ``--config`` < command-line flags. Every field is a flag of the same name, and its ``help`` metadata
is what ``--help`` prints, so the recipe keys, the flags and the help text cannot drift apart. Unknown YAML keys
are an error (a typo would otherwise silently train with the default).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["TrainConfig", "CTDConfig", "LMAConfig", "AlignConfig", "parse_config", "load_config", "config_to_dict"]


def option(default, help: str, group: str = "run", choices: tuple | None = None):
    """A config field with its --help text; lists/dicts get a fresh copy per instance."""
    meta = {"help": help, "group": group, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Fields shared by CTD and LMA."""

    # --- run
    output_dir: str = option("outputs/run", "folder for checkpoints, metrics.csv, TensorBoard logs and the final model")
    seed: int = option(0, "seed of the model init, the data order and every per-sample random choice")
    max_steps: int = option(1000, "number of optimizer steps (each = per_device_batch_size x processes x "
                                  "gradient_accumulation_steps samples)")
    resume_from_checkpoint: str | None = option(
        None, "'latest' (newest complete checkpoint-N in output_dir) or a checkpoint folder; resumes model, "
              "optimizer, scheduler, RNG and data position exactly")
    overwrite_output_dir: bool = option(False, "delete existing checkpoints in output_dir when starting from scratch")
    # --- optimization
    per_device_batch_size: int = option(8, "samples (clips for CTD, videos for LMA) per process per micro-batch",
                                        "optimization")
    gradient_accumulation_steps: int = option(1, "micro-batches accumulated per optimizer step", "optimization")
    learning_rate: float = option(4e-5, "peak learning rate (paper: 4e-5)", "optimization")
    min_lr_ratio: float = option(0.0, "cosine decays to learning_rate x min_lr_ratio", "optimization")
    warmup_steps: int = option(0, "linear warm-up steps (overrides warmup_ratio when > 0)", "optimization")
    warmup_ratio: float = option(0.0, "linear warm-up as a fraction of max_steps", "optimization")
    weight_decay: float = option(0.05, "AdamW weight decay (not applied to biases, norms, embeddings, LayerScale)",
                                 "optimization")
    adam_beta1: float = option(0.9, "AdamW beta1", "optimization")
    adam_beta2: float = option(0.999, "AdamW beta2", "optimization")
    adam_epsilon: float = option(1e-8, "AdamW epsilon", "optimization")
    max_grad_norm: float = option(1.0, "gradient-norm clipping (paper: 1.0; 0 disables)", "optimization")
    # --- data
    train_data: str | None = option(
        None, "videos: a folder, a JSONL/JSON/CSV/Parquet manifest, a Hub dataset id, or asset:NAME (a cached "
              "LiteFrame asset, e.g. asset:videos)", "data")
    eval_data: str | None = option(None, "held-out videos, same forms as train_data (default: held-out clips of "
                                         "the training videos)", "data")
    data_split: str = option("train", "split to read from a Hub dataset", "data")
    video_column: str = option("video", "column with the video path (or {path, bytes} for Hub Video features)", "data")
    image_size: int | None = option(None, "frames are resized to image_size x image_size (default: the encoder "
                                          "config's image_size; 448 for liteframe-b)", "data")
    image_mean: list[float] = option([0.485, 0.456, 0.406], "pixel normalisation mean (ImageNet: InternViT, DINOv2)",
                                     "data")
    image_std: list[float] = option([0.229, 0.224, 0.225], "pixel normalisation std", "data")
    min_fps: float = option(1.0, "lowest frame rate inside a sampled clip (paper: 1)", "data")
    max_fps: float = option(4.0, "highest frame rate inside a sampled clip (paper: 4)", "data")
    num_workers: int = option(2, "DataLoader worker processes decoding videos", "data")
    # --- logging, evaluation, checkpoints
    logging_steps: int = option(10, "log train metrics every N steps (CSV + tracker)", "logging")
    eval_steps: int = option(0, "evaluate every N steps (0: only at the end)", "logging")
    eval_on_start: bool = option(False, "also evaluate before the first step (logged as step 0)", "logging")
    save_steps: int = option(500, "save a checkpoint every N steps (and always at the end)", "logging")
    save_total_limit: int | None = option(3, "keep only the newest N checkpoints (None: keep all)", "logging")
    report_to: str = option("tensorboard", "Accelerate tracker ('tensorboard', 'wandb', ... or 'none'); "
                                           "metrics.csv is always written", "logging")
    timing: bool = option(True, "time data/teacher/student/optimizer per step (synchronises the GPU)", "logging")
    trace_steps: bool = option(False, "write output_dir/trace/rank-<r>.jsonl: each step's sample keys, loss share and "
                                      "item count per process (audits data order and exact resume)", "logging")

    def validate(self) -> None:
        def fail(message: str):
            raise ValueError(f"Invalid {type(self).__name__}: {message}")

        if self.train_data is None:
            fail("train_data is not set: pass --train_data (a folder of videos, a manifest, a Hub dataset or asset:videos)")
        if not 0 < self.min_fps <= self.max_fps:
            fail(f"need 0 < min_fps <= max_fps; got {self.min_fps}, {self.max_fps}")
        for name in ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                fail(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.resume_from_checkpoint and self.overwrite_output_dir:
            fail("resume_from_checkpoint and overwrite_output_dir contradict each other: pick one")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            fail("image_mean and image_std need three values (R, G, B)")


@dataclass
class CTDConfig(TrainConfig):
    """Compressed Token Distillation: a frozen teacher's WAP-pooled tokens are the student's regression target."""

    output_dir: str = option("outputs/ctd", TrainConfig.__dataclass_fields__["output_dir"].metadata["help"])
    # --- teacher
    teacher: str = option("asset:dinov2", "teacher: a folder (InternVL3-*-hf, DINOv2, CLIP, SigLIP), a Hub id, "
                                          "asset:dinov2, or random:internvit-300m (benchmarks)", "teacher")
    teacher_weighting: str | None = option(None, "WAP weighting: cls_dot, cls_attn, mean (default: cls_dot when the "
                                                 "teacher has a CLS token, else mean)", "teacher")
    wap_block: list[int] = option([4, 2, 2], "WAP block (t, h, w): 16x compression by default", "teacher")
    teacher_chunk_size: int | None = option(None, "run the teacher on at most N clips at a time (memory bound)",
                                            "teacher")
    target_cache: str | None = option(
        None, "folder of sharded safetensors with the teacher's targets for a fixed clip plan (needs clip_plan: "
              "fixed): built on first use, then the teacher is not run during training. 'auto': "
              "<output_dir>/target_cache, so it follows --output_dir; None: no cache. A folder holding another "
              "plan's targets (other videos, --clips_per_video, --seed, teacher...) is refused, not rebuilt",
        "teacher")
    cache_shard_size: int = option(256, "clips per target-cache shard", "teacher")
    # --- student
    student_variant: str = option("liteframe-b", "named LiteFrameVisionConfig variant (liteframe-b, liteframe-micro, "
                                                 "liteframe-tiny, ablations)", "student")
    student_overrides: dict = option({}, "LiteFrameVisionConfig field overrides, e.g. '{num_hidden_layers: 6}' "
                                         "(out_hidden_size is always the teacher's width)", "student")
    student_init: str = option("teacher", "'teacher' (liteframe_hf.student_init: slice the teacher's weights), "
                                          "'random', or a LiteFrameVisionModel folder to continue from", "student")
    student_layer_map: str = option("even", "student_init: teacher: teacher block per student block ('even', "
                                            "'first' or '0,2,4,...')", "student")
    student_head_init: str = option("lstsq", "student_init: teacher: head fitted to the teacher's WAP targets on "
                                             "real training clips ('lstsq') or the identity slice ('slice')",
                                    "student", choices=("lstsq", "slice"))
    num_calibration_clips: int = option(8, "training clips used to fit the head (student_head_init: lstsq), one "
                                           "per video: fewer when there are fewer videos",
                                        "student")
    # --- objective and data plan
    clip_sigma: float = option(3.0, "ctd_loss clips (target - prediction) at clip_sigma x its std (paper: 3; "
                                    "0 = plain MSE)", "objective")
    clip_len: int = option(4, "frames per clip (the student's clip_len)", "objective")
    clip_plan: str = option("random", "'random': a new clip (start, fps) per sample and epoch; 'fixed': the same "
                                      "clip for a sample in every epoch (required by target_cache)", "objective",
                            choices=("random", "fixed"))
    clips_per_video: int = option(1, "clips drawn from each video per epoch", "objective")
    num_eval_clips: int = option(64, "held-out clips scored at each evaluation (MSE and cosine to the target)",
                                 "logging")

    def __post_init__(self) -> None:
        if self.target_cache == "auto":  # resolved here so config.yaml records the folder the run really uses
            self.target_cache = str(Path(self.output_dir) / "target_cache")

    def validate(self) -> None:
        super().validate()
        if len(self.wap_block) != 3:
            raise ValueError(f"Invalid CTDConfig: wap_block must be three ints (t, h, w); got {self.wap_block}")
        if self.target_cache and self.clip_plan != "fixed":
            raise ValueError(
                "Invalid CTDConfig: target_cache stores the targets of one fixed set of clips; set clip_plan: fixed "
                "(with clip_plan: random every epoch draws new clips, so cached targets would be wrong)"
            )


# The regex LoRA target: full match against module names, so only the LLM's projections are adapted (a plain
# list of suffixes such as ["q_proj", "v_proj"] would also hit the vision tower's attention).
LLM_LINEAR_LAYERS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass
class TokenAlignmentConfig(TrainConfig):
    """The token-alignment objective's settings (`losses.token_alignment_loss`): align.py's objective, and the
    term LMA adds with alignment_weight."""

    temperature: float = option(0.05, "token alignment: softmax temperature of the tokens' cosine similarity to the "
                                      "captions", "objective")
    min_object_share: float = option(0.3, "token alignment: a token is its object's when the cut-out's box covers at "
                                          "least this share of its cell; the others are background", "objective")
    background_weight: float = option(0.2, "token alignment: loss weight of a background token (an object token "
                                           "weighs 1)", "objective")
    mse_weight: float = option(1.0, "token alignment: weight of the MSE between a token and its target embedding "
                                    "(puts the tokens at the scale of the LLM's input embeddings)", "objective")

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if not 0.0 < self.min_object_share <= 1.0:
            raise ValueError(f"Invalid {name}: min_object_share must be in (0, 1], got {self.min_object_share}")
        if self.temperature <= 0 or self.background_weight < 0 or self.mse_weight < 0:
            raise ValueError(f"Invalid {name}: temperature must be positive, background_weight and mse_weight "
                             "non-negative")


@dataclass
class LMAConfig(TokenAlignmentConfig):
    """Language Model Adaptation: LoRA on the LLM (+ the projector) over (video, conversation) records."""

    output_dir: str = option("outputs/lma", TrainConfig.__dataclass_fields__["output_dir"].metadata["help"])
    # --- model
    base_model: str | None = option(None, "a LiteFrameForConditionalGeneration folder (e.g. liteframe-8b converted "
                                          "from InternVL3-8B); replaces vision_model + language_model", "model")
    vision_model: str = option("liteframe-micro", "the encoder: a LiteFrameVisionModel folder (CTD output "
                                                  "<output_dir>/student), a variant name (random init), or "
                                                  "micro:NAME, a whole micro video LLM from liteframe_hf.micro "
                                                  "(micro:teacher-vlm-micro: DINOv2-S copied exactly, the seeded "
                                                  "projector, SmolLM2)", "model")
    init_projector_from: str | None = option(None, "start the projector from the one in this folder: a PEFT adapter "
                                                   "(the teacher VLM's LMA adapter/) or a LiteFrame folder (paper: "
                                                   "LiteFrame's LMA starts from the teacher VLM's projector)", "model")
    language_model: str = option("asset:smollm2", "causal LM folder or Hub id, or asset:smollm2", "model")
    lora_r: int = option(4, "LoRA rank (paper: 4 beat 8 and 16)", "lora")
    lora_alpha: int = option(8, "LoRA alpha (paper: 8)", "lora")
    lora_dropout: float = option(0.05, "LoRA dropout (paper: 0.05)", "lora")
    lora_target_modules: str = option(LLM_LINEAR_LAYERS, "regex (full match) of the LLM linear layers to adapt",
                                      "lora")
    train_projector: bool = option(True, "train the projector fully (peft modules_to_save)", "lora")
    train_vision_tower: bool = option(False, "train the encoder fully too (peft modules_to_save)", "lora")
    gradient_checkpointing: bool = option(False, "recompute LLM activations in backward (long videos)", "lora")
    # --- data
    conversation_column: str = option("conversations", "column with LLaVA/ShareGPT turns ({from, value}) or "
                                                       "messages ({role, content})", "data")
    frame_budgets: list[int] = option([128, 256, 512], "a video's frame count is drawn from these (paper: 128, "
                                                       "256, 512), capped by duration x fps", "data")
    frame_sampling: str = option("random_fps", "'random_fps': min(budget, duration x fps) frames, fps ~ U[min_fps, "
                                               "max_fps]; 'processor': exactly the budget, planned as the video "
                                               "processor plans an explicit num_frames (what `liteframe eval "
                                               "--frames N` feeds the model)", "data",
                                 choices=("random_fps", "processor"))
    mcq_answer: str = option("letter", "what a multiple-choice row (no conversation column) trains: 'letter': the "
                                       "standard MCQ prompt, the answer letter as the reply (`liteframe eval`); "
                                       "'text': the question alone, the right option's text as the reply (the cloze "
                                       "formulation, `liteframe eval --scoring likelihood`)", "data",
                             choices=("letter", "text"))
    max_length: int | None = option(None, "drop (counted) samples whose tokens exceed this", "data")
    alignment_weight: float = option(0.0, "weight of the token-alignment loss (align.py's objective) beside the answer "
                                          "loss, on grounded rows (with caption and box; `liteframe data grounded`): "
                                          "keeps the projector's tokens of the object at its caption while LoRA "
                                          "trains; 0: off", "objective")
    num_eval_samples: int = option(32, "held-out records scored at each evaluation (answer-token loss)", "logging")
    # --- output
    save_merged: bool = option(False, "also save the LoRA-merged model to <output_dir>/merged", "output")

    def validate(self) -> None:
        super().validate()
        if not self.frame_budgets or any(n < 1 for n in self.frame_budgets):
            raise ValueError(f"Invalid LMAConfig: frame_budgets must be positive frame counts; got {self.frame_budgets}")
        if self.frame_sampling not in ("random_fps", "processor"):
            raise ValueError(f"Invalid LMAConfig: frame_sampling must be 'random_fps' or 'processor'; got "
                             f"{self.frame_sampling!r}")
        if self.alignment_weight < 0:
            raise ValueError(f"Invalid LMAConfig: alignment_weight must be >= 0; got {self.alignment_weight}")


# The recipe each script's --help names as the --config example.
EXAMPLE_RECIPES = {CTDConfig: "training/configs/ctd_micro.yaml", LMAConfig: "training/configs/lma_micro.yaml"}


# ----------------------------------------------------------------------------------------------- parsing
def _unwrap_optional(tp) -> tuple[type, bool]:
    """(inner type, is_optional) of `X | None`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _none_or(convert):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _parse_mapping(text: str) -> dict:
    value = yaml.safe_load(text)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML/JSON mapping such as '{{num_hidden_layers: 6}}', got {text!r}")
    return value


@dataclass
class AlignConfig(TokenAlignmentConfig):
    """Token alignment: the projector learns to put each object's caption into the visual tokens that see it."""

    output_dir: str = option("outputs/align", TrainConfig.__dataclass_fields__["output_dir"].metadata["help"])
    base_model: str = option("teacher-vlm-micro", "the LiteFrame model whose projector is aligned: a micro model name "
                                                  "(teacher-vlm-micro, liteframe-micro) or a LiteFrame folder", "model")
    cache_frames: int | None = option(None, "frames of each clip encoded and cached (default: one clip, the tower's "
                                            "clip_len; 1 for a per-frame tower such as the teacher VLM's)", "data")
    feature_cache: str | None = option(None, "folder of the frozen tower's cached tokens (default: "
                                             "output_dir/features); reused when it holds the same data and model", "data")
    train_blocks: int = option(0, "the vision tower's last N blocks train with the projector (with their token "
                                  "mergers and the tower's read-out); the blocks before them are the frozen stem whose "
                                  "output is cached. 0: the projector alone", "model")
    distill_from: str | None = option(None, "a teacher LiteFrame folder (the aligned teacher VLM): its projector's "
                                            "tokens, averaged onto this model's token grid, are distillation "
                                            "targets (compressed token distillation in the LLM's space)", "objective")
    distill_weight: float = option(0.0, "weight of the distillation term (MSE + 1 - cosine to the teacher's "
                                        "tokens); needs distill_from", "objective")
    distill_frames: int = option(1, "frames of each clip the teacher encodes for its targets (1: the first frame, "
                                    "the cache of align_teacher_micro.yaml; the first that shows the cut-out for a "
                                    "row with `onscreen`)", "objective")

    def __post_init__(self) -> None:
        if self.feature_cache is None:  # resolved here so config.yaml records the folder the run really uses
            self.feature_cache = str(Path(self.output_dir) / "features")

    def validate(self) -> None:
        super().validate()
        if self.cache_frames is not None and self.cache_frames < 1:
            raise ValueError(f"Invalid AlignConfig: cache_frames must be >= 1, got {self.cache_frames}")
        if self.train_blocks < 0 or self.distill_weight < 0 or self.distill_frames < 1:
            raise ValueError("Invalid AlignConfig: train_blocks and distill_weight must be >= 0, distill_frames >= 1")
        if bool(self.distill_from) != (self.distill_weight > 0):
            raise ValueError("Invalid AlignConfig: distill_from and distill_weight > 0 go together (the teacher whose "
                             "tokens are the targets, and their weight)")


def _add_field(group: argparse._ArgumentGroup, f: dataclasses.Field, hints: dict) -> None:
    tp, optional = _unwrap_optional(hints[f.name])
    help_text = f.metadata.get("help", "") + " (default: %(default)s)"
    flag = f"--{f.name}"
    if tp is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
    elif typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        group.add_argument(flag, type=inner, nargs="+", metavar=inner.__name__.upper(), help=help_text)
    elif tp is dict:
        group.add_argument(flag, type=_parse_mapping, metavar="MAPPING", help=help_text)
    else:
        convert = _none_or(tp) if optional else tp
        group.add_argument(flag, type=convert, choices=f.metadata.get("choices"), metavar=tp.__name__.upper()
                           if not f.metadata.get("choices") else None, help=help_text)


# Options that Accelerate owns: a recipe or flag setting them would silently fight the launcher.
_ACCELERATE_OWNED = {
    "cpu": "the device comes from Accelerate: `accelerate launch --cpu` (one process) or ACCELERATE_USE_CPU=1 "
           "(with --multi_gpu / a config file: N gloo processes)",
    "mixed_precision": "precision comes from Accelerate: `accelerate launch --mixed_precision bf16`, the "
                       "`mixed_precision:` of the --config_file YAML, or ACCELERATE_MIXED_PRECISION",
}


def _refuse_accelerate_owned(keys, where: str) -> None:
    for key in keys:
        if key in _ACCELERATE_OWNED:
            raise ValueError(f"{where}: {key!r} is not a recipe option: {_ACCELERATE_OWNED[key]}")


def load_config(cls: type[TrainConfig], path: str | Path) -> dict:
    """Read a YAML recipe into a dict of fields of `cls`, rejecting unknown keys with a suggestion."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping of option: value")
    _refuse_accelerate_owned(data, str(path))
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{path}: unknown option {key!r} for {cls.__name__}{hint} (see --help for the list)")
    return data


def build_parser(cls: type[TrainConfig], description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Every option can also be set in the --config YAML (same name); command-line "
                                            "flags override the file.")
    example = EXAMPLE_RECIPES.get(cls, "training/configs/<recipe>.yaml")
    parser.add_argument("--config", metavar="FILE", help=f"YAML recipe (e.g. {example})")
    hints = typing.get_type_hints(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        name = f.metadata.get("group", "run")
        if name not in groups:
            groups[name] = parser.add_argument_group(name)
        _add_field(groups[name], f, hints)
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                for f in dataclasses.fields(cls)}
    parser.set_defaults(**defaults)
    return parser


def parse_config(cls: type[TrainConfig], argv: list[str] | None = None, description: str | None = None) -> TrainConfig:
    """defaults < --config YAML < command line -> a validated `cls` instance."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _refuse_accelerate_owned([a[2:].split("=")[0] for a in argv if a.startswith("--")], "command line")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser(cls, description)
    if known.config:
        parser.set_defaults(**load_config(cls, known.config))
    args = vars(parser.parse_args(argv))
    args.pop("config")
    cfg = cls(**args)
    cfg.validate()
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
