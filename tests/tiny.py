"""Tiny, fast models for the tests (CPU, milliseconds per forward): configs, a word-level tokenizer, and the
random DINOv2 teacher and LLM that tests/conftest.py saves as folders for the tiny recipes (tests/configs)."""

from __future__ import annotations

from pathlib import Path

from liteframe_hf.modeling.configuration_liteframe import LiteFrameConfig, LiteFrameVisionConfig

TINY_VOCAB = 256
TINY_VIDEO_TOKEN_ID = TINY_VOCAB - 1


def tiny_text_config(**overrides) -> dict:
    fields = dict(
        model_type="qwen2",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=TINY_VOCAB,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    fields.update(overrides)
    return fields


def tiny_liteframe_config(vision_overrides: dict | None = None, **overrides) -> LiteFrameConfig:
    """LiteFrame with the `liteframe-tiny` encoder (56 px frames, 4 LLM tokens per clip) and a 2-layer Qwen2."""
    text = tiny_text_config(**overrides.pop("text_overrides", {}))
    vision = LiteFrameVisionConfig.from_variant("liteframe-tiny", **(vision_overrides or {}))
    return LiteFrameConfig(vision_config=vision, text_config=text, video_token_id=TINY_VIDEO_TOKEN_ID, **overrides)


def left_padded_prompts(tokens_per_video: list[int], pad_to: int, text: int = 3, device=None):
    """Token ids and attention mask for the tiny model: per row `text` text tokens, the video's placeholders,
    `text` more text tokens, left-padded with id 0 to `pad_to`."""
    import torch

    rows, masks = [], []
    for i, n in enumerate(tokens_per_video):
        body = [5 + i] * text + [TINY_VIDEO_TOKEN_ID] * n + [9] * text
        pad = pad_to - len(body)
        rows.append([0] * pad + body)
        masks.append([0] * pad + [1] * len(body))
    return torch.tensor(rows, device=device), torch.tensor(masks, device=device)


def assert_greedy_batched_equals_single(model, pixels, ids, mask, frames: list[int], new_tokens: int = 5) -> None:
    """Greedy generation for a left-padded batch of videos with `frames` real frames each gives every row the
    tokens it gets alone (unpadded prompt, unpadded video)."""
    import torch

    batched = model.generate(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels,
                             video_num_frames=torch.tensor(frames), max_new_tokens=new_tokens, do_sample=False)
    for row, count in enumerate(frames):
        n = int(mask[row].sum())
        single = model.generate(input_ids=ids[row : row + 1, -n:], pixel_values_videos=pixels[row : row + 1, :count],
                                max_new_tokens=new_tokens, do_sample=False)
        assert batched[row, -new_tokens:].tolist() == single[0, -new_tokens:].tolist(), f"row {row}"


_TINY_WORDS = (
    "Clip doing user assistant system the a an is are was what which who where when how many video clip frame shows "
    "person man woman rabbit bunny car bike street city room table cup box hand moving walks talking sitting "
    "red green blue black white big small grey one two three four five six seven eight nine ten yes no "
    "in on at of and or to from with does do describe happens first then last answer question word it this "
    "that there here s ( ) : . , ? ! - 0 1 2 3 4 5 6 7 8 9"
).split()


def tiny_tokenizer():
    """A real word-level `tokenizers` tokenizer whose ids fit the tiny model (`<IMG_CONTEXT>` = TINY_VIDEO_TOKEN_ID)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<img>", "</img>"]
    words = list(dict.fromkeys(_TINY_WORDS))
    vocab = {token: i for i, token in enumerate(specials + words)}
    for i in range(len(vocab), TINY_VIDEO_TOKEN_ID):
        vocab[f"<unused{i}>"] = i
    vocab["<IMG_CONTEXT>"] = TINY_VIDEO_TOKEN_ID
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # digits one per token, as SmolLM2's and Qwen2.5's tokenizers split them ("12-16s" -> 1 2 - 1 6 s)
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                     pre_tokenizers.Digits(individual_digits=True)])
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="<|im_end|>", bos_token=None)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]})
    assert len(tokenizer) == TINY_VOCAB, len(tokenizer)
    return tokenizer


def _seeded(builder, seed: int = 0):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder()


def save_tiny_teacher(folder: Path) -> Path:
    """A random DINOv2 (width 48, patch 7, 56 px: the WAP target grid of `liteframe-tiny`), saved with
    save_pretrained: the tiny CTD recipe's teacher."""
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=7,
                          image_size=56)
    _seeded(lambda: Dinov2Model(config)).save_pretrained(folder)
    return folder


def save_tiny_language_model(folder: Path) -> Path:
    """A random 2-layer Llama causal LM (SmolLM2's architecture, `tiny_text_config`'s sizes) with `tiny_tokenizer()`,
    saved with save_pretrained: the tiny LMA recipe's language model. Not Qwen2: AutoTokenizer gives every qwen2
    folder Qwen2's own byte-level tokenizer, whatever its tokenizer_config.json names."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    fields = tiny_text_config(vocab_size=len(tokenizer))
    fields.pop("model_type")
    _seeded(lambda: LlamaForCausalLM(LlamaConfig(**fields))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    text = "<|im_start|> what is the video ? 12 - 16 s <img> <IMG_CONTEXT> </img> <|im_end|>"
    loaded = AutoTokenizer.from_pretrained(folder)(text).input_ids
    assert loaded == tokenizer(text).input_ids, f"{folder}: AutoTokenizer does not load the word-level tokenizer back"
    return folder
