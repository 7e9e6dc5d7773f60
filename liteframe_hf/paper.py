"""Facts from the LiteFrame paper (arXiv 2605.17260) that benchmarks compare against, kept in one place."""

from transformers import InternVLVisionConfig

# Architecture ablation at 256 frames of 448x448 on one A100: (latency ms, TFLOPs, params M).
ARCH_TABLE: dict[str, tuple[float, float, float]] = {
    "internvit-300m": (1043.33, 158.80, 304.01),
    "vit-b-12l": (338.01, 44.81, 86.31),
    "tempattn": (348.29, 32.77, 143.83),
    "spatiotempattn": (204.35, 17.92, 87.15),
    "tempconv": (202.08, 22.44, 109.54),
    "dwtempconv": (174.84, 17.92, 87.15),
}

# Main table: InternVL3-8B at 1x frames vs LiteFrame at 8x frames.
# (frames, tokens per frame, ViT ms, LLM-prefill ms, total ms, average accuracy)
MAIN_TABLE: dict[str, list[tuple[int, int, float, float, float, float]]] = {
    "internvl3-8b": [(8, 256, 40.0, 167.3, 208.4, 59.0), (16, 256, 74.0, 329.3, 403.6, 62.2), (32, 256, 144.5, 669.8, 814.5, 65.3)],
    "liteframe": [(64, 16, 54.8, 94.9, 150.1, 61.1), (128, 16, 105.3, 166.6, 272.6, 63.7), (256, 16, 204.0, 327.4, 532.3, 65.7)],
}


def internvit_300m_config(**overrides) -> InternVLVisionConfig:
    """The teacher: InternViT-300M-448px as configured inside InternVL3-8B-hf (304.01M parameters)."""
    fields = dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        attention_bias=True,
        use_qk_norm=False,
        norm_type="layer_norm",
        layer_norm_eps=1e-6,
        layer_scale_init_value=0.1,
        image_size=448,
        patch_size=14,
        use_mean_pooling=True,
    )
    fields.update(overrides)
    return InternVLVisionConfig(**fields)
