"""transformers' own common tests (ModelTesterMixin, ConfigTester, VideoProcessingTestMixin, ProcessorTesterMixin)
on LiteFrame's model classes, video processor and processor.

The mixins come from the installed release's source package (the `transformers-tests` asset, loaded by
tests/transformers_mixins.py), so every release of the supported range runs its own version of them. The model
testers below are written the way transformers' InternVL / LLaVA-OneVision tests write theirs: tiny configs, a
qwen2 LM, video placeholders at the start of the prompt. A test is skipped only where transformers' InternVL or
LLaVA-OneVision test skips the same test, with its reason.

The sdist does not carry tests/generation/ (GenerationTesterMixin): the generation checks that matter here
(static cache, compiled decoding, the cache argument's two names) are written at the end of this file.
"""

import contextlib
import copy
import json
import unittest
from unittest import mock

import pytest
import torch

import liteframe_hf  # noqa: F401 - registers the Auto classes
from liteframe_hf import (
    LiteFrameConfig,
    LiteFrameForConditionalGeneration,
    LiteFrameModel,
    LiteFrameProcessor,
    LiteFrameVideoProcessor,
    LiteFrameVisionConfig,
    LiteFrameVisionModel,
)
from liteframe_hf.modeling.processing_liteframe import _placeholder_config
from transformers.video_utils import VideoMetadata

import transformers_mixins
from tiny import tiny_liteframe_config

try:
    common = transformers_mixins.module("test_modeling_common")
    ConfigTester = transformers_mixins.module("test_configuration_common").ConfigTester
except KeyError as e:  # an installed release without a pinned sdist: say which, rather than test another's mixins
    pytest.skip(str(e), allow_module_level=True)

ModelTesterMixin, floats_tensor, ids_tensor = common.ModelTesterMixin, common.floats_tensor, common.ids_tensor

# pytest.ini ignores FutureWarning; the mixin's cache-name test looks for this one (the old name's deprecation).
pytestmark = pytest.mark.filterwarnings("default:`past_key_values` is deprecated:FutureWarning")

VIDEO_TOKEN_ID = 1


class ListedInModelingAuto:
    """The mixins tell a base model from a model with a head by its class name in transformers' modeling_auto
    lists (a base model's `test_training` is skipped, an image-text-to-text head gets `labels`); in-tree models are
    listed there, so ours are too, for the duration of the tests (registering with the Auto classes does not)."""

    @classmethod
    def setUpClass(cls):
        from transformers.models.auto import modeling_auto

        cls._listed = contextlib.ExitStack()
        for mapping, names in (("MODEL_MAPPING_NAMES", {"liteframe": "LiteFrameModel",
                                                         "liteframe_vision": "LiteFrameVisionModel"}),
                               ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
                                {"liteframe": "LiteFrameForConditionalGeneration"})):
            cls._listed.enter_context(mock.patch.dict(getattr(modeling_auto, mapping), names))

    @classmethod
    def tearDownClass(cls):
        cls._listed.close()


def vision_config_dict(**overrides) -> dict:
    # 32 px frames, 4x4 patches (65 tokens per frame), one (2, 2, 2) merge after block 1: a (2, 4, 4) grid per clip.
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
                patch_size=4, clip_len=4, downsample_layers={1: (2, 2, 2)}, out_hidden_size=24, **overrides)


class LiteFrameVisionModelTester:
    def __init__(self, parent, batch_size=2, num_frames=4):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.vision_config = vision_config_dict()
        self.num_hidden_layers = self.vision_config["num_hidden_layers"]
        self.hidden_size = self.vision_config["hidden_size"]
        self.num_attention_heads = self.vision_config["num_attention_heads"]
        self.image_size = self.vision_config["image_size"]
        self.patch_size = self.vision_config["patch_size"]
        self.seq_length = 1 + (self.image_size // self.patch_size) ** 2  # CLS + patches of one frame
        self.is_training = True

    def get_config(self) -> LiteFrameVisionConfig:
        return LiteFrameVisionConfig(**self.vision_config)

    def prepare_config_and_inputs_for_common(self):
        pixels = floats_tensor([self.batch_size, self.num_frames, 3, self.image_size, self.image_size])
        return self.get_config(), {"pixel_values": pixels}


class LiteFrameVisionModelTest(ListedInModelingAuto, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LiteFrameVisionModel,)
    test_resize_embeddings = False  # no token embeddings: patches (as transformers' vision model tests set it)

    def setUp(self):
        self.model_tester = LiteFrameVisionModelTester(self)
        self.config_tester = ConfigTester(self, config_class=LiteFrameVisionConfig, has_text_modality=False,
                                          hidden_size=48, num_attention_heads=4)

    def test_config(self):
        self.config_tester.run_common_tests()

    # As transformers' vision model tests (ViT, CLIP's vision model) override it: the input embedding is the
    # patch embedding, not an nn.Embedding.
    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), torch.nn.Module)
            self.assertIsNone(model.get_output_embeddings())

    @unittest.skip(reason="Compile not yet supported because in LLava models")  # InternVL's skip
    def test_sdpa_can_compile_dynamic(self):
        pass


class LiteFrameModelTester:
    """A qwen2 LM (tied embeddings, as InternVL's tester) behind the tiny encoder: 8 LLM tokens per clip, one clip
    per video, the placeholders first in each prompt."""

    def __init__(self, parent, batch_size=3, text_length=7, num_frames=4):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.vision_config = vision_config_dict()
        self.image_size = self.vision_config["image_size"]
        self.text_config = {
            "model_type": "qwen2",
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "tie_word_embeddings": True,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "pad_token_id": 0,
        }
        self.video_seq_length = self.get_config().tokens_per_clip() * (num_frames // self.vision_config["clip_len"])
        self.seq_length = text_length + self.video_seq_length
        self.num_hidden_layers = self.text_config["num_hidden_layers"]
        self.hidden_size = self.text_config["hidden_size"]
        self.num_attention_heads = self.text_config["num_attention_heads"]
        self.vocab_size = self.text_config["vocab_size"]
        self.pad_token_id = 0
        self.is_training = True

    def get_config(self) -> LiteFrameConfig:
        return LiteFrameConfig(vision_config=self.vision_config, text_config=self.text_config,
                               video_token_id=VIDEO_TOKEN_ID)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        pixels = floats_tensor([self.batch_size, self.num_frames, 3, self.image_size, self.image_size])
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        input_ids[input_ids == VIDEO_TOKEN_ID] = self.pad_token_id
        input_ids[:, : self.video_seq_length] = VIDEO_TOKEN_ID
        inputs = {"pixel_values_videos": pixels, "input_ids": input_ids,
                  "attention_mask": torch.ones_like(input_ids)}
        return config, inputs


class LiteFrameForConditionalGenerationTest(ListedInModelingAuto, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LiteFrameForConditionalGeneration, LiteFrameModel)
    _is_composite = True  # vision + text sub-configs, as InternVL's

    def setUp(self):
        self.model_tester = LiteFrameModelTester(self)
        self.config_tester = ConfigTester(self, config_class=LiteFrameConfig, has_text_modality=False)

    def test_config(self):
        self.config_tester.run_common_tests()

    # As InternVL's: the video pixels go, the placeholders' embeddings stay.
    def test_inputs_embeds(self):
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            inputs = self._prepare_for_class(inputs_dict, model_class)
            input_ids = inputs.pop("input_ids")
            del inputs["pixel_values_videos"]
            inputs["inputs_embeds"] = model.get_input_embeddings()(input_ids)
            with torch.no_grad():
                model(**inputs)

    # The mixin's version looks for `image_outputs` only (its FIXME: "add video ... when supported"); LiteFrame's
    # encoder outputs are `video_outputs`. The same checks, on them; per-layer tensors once the vision config asks.
    def test_multimodal_outputs_are_returned(self):
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        vision_layers = self.model_tester.vision_config["num_hidden_layers"]
        for model_class in self.all_generative_model_classes:
            for from_config in (False, True):
                config = copy.deepcopy(config)
                inputs = self._prepare_for_class(inputs_dict, model_class)
                if from_config:
                    self._set_subconfig_attributes(config, "output_hidden_states", True)
                    self._set_subconfig_attributes(config, "output_attentions", True)
                else:
                    inputs.update(output_hidden_states=True, output_attentions=True)
                model = model_class(config)
                model.set_attn_implementation("eager")
                with torch.no_grad():
                    outputs = model.eval()(**inputs, return_dict=True)
                video = outputs.video_outputs
                self.assertTrue(hasattr(video, "attentions") and hasattr(video, "hidden_states"))
                self.assertEqual(len(video.pooler_output), self.model_tester.batch_size)
                if from_config:
                    self.assertEqual(len(video.attentions), vision_layers)
                    self.assertEqual(len(video.hidden_states), vision_layers + 1)

    @unittest.skip(reason="GenerationTesterMixin is not in the transformers sdist (tests/generation/ is left out), so "
                          "this tester cannot inherit it; generation is tested below in this file")
    def test_generation_tester_mixin_inheritance(self):
        pass

    def test_inputs_embeds_matches_input_ids(self):
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            inputs = self._prepare_for_class(inputs_dict, model_class)
            input_ids = inputs.pop("input_ids")
            del inputs["pixel_values_videos"]
            inputs_embeds = model.get_input_embeddings()(input_ids)
            with torch.no_grad():
                out_ids = model(input_ids=input_ids, **inputs)[0]
                out_embeds = model(inputs_embeds=inputs_embeds, **inputs)[0]
            torch.testing.assert_close(out_embeds, out_ids)

    @unittest.skip(reason="Compile not yet supported because in LLava models")  # InternVL's skip
    def test_sdpa_can_compile_dynamic(self):
        pass


# ------------------------------------------------------------------ processing: video processor and processor
video_common = transformers_mixins.module("test_video_processing_common")
ProcessorTesterMixin = transformers_mixins.module("test_processing_common").ProcessorTesterMixin


class LiteFrameVideoProcessingTester:
    """As InternVL's video processing tester: 5 videos of 8 random frames, 30-80 px, resized to a square."""

    def __init__(self, parent, batch_size=5, num_frames=8, num_channels=3, min_resolution=30, max_resolution=80):
        self.parent = parent
        self.batch_size, self.num_frames, self.num_channels = batch_size, num_frames, num_channels
        self.min_resolution, self.max_resolution = min_resolution, max_resolution
        self.size = {"height": 56, "width": 56}

    def prepare_video_processor_dict(self):
        # do_sample_frames=False: decoded frames without metadata are kept as given, as the processing mixin asks
        return {"do_resize": True, "size": self.size, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True, "do_sample_frames": False}

    def expected_output_video_shape(self, videos):
        return [self.num_frames, self.num_channels, self.size["height"], self.size["width"]]

    def prepare_video_inputs(self, equal_resolution=False, return_tensors="pil"):
        return video_common.prepare_video_inputs(
            batch_size=self.batch_size, num_frames=self.num_frames, num_channels=self.num_channels,
            min_resolution=self.min_resolution, max_resolution=self.max_resolution,
            equal_resolution=equal_resolution, return_tensors=return_tensors)


class LiteFrameVideoProcessingTest(video_common.VideoProcessingTestMixin, unittest.TestCase):
    fast_video_processing_class = LiteFrameVideoProcessor

    def setUp(self):
        super().setUp()
        self.video_processor_tester = LiteFrameVideoProcessingTester(self)

    @property
    def video_processor_dict(self):
        return self.video_processor_tester.prepare_video_processor_dict()

    # As InternVL's: its size is {"height", "width"}, not the mixin's shortest_edge / crop_size.
    def test_video_processor_from_dict_with_kwargs(self):
        processor = LiteFrameVideoProcessor.from_dict(self.video_processor_dict)
        self.assertEqual((processor.size.height, processor.size.width), (56, 56))
        processor = LiteFrameVideoProcessor.from_dict(self.video_processor_dict, size={"height": 42, "width": 42})
        self.assertEqual((processor.size.height, processor.size.width), (42, 42))

    # The mixin's sampling checks with LiteFrame's counts: frames come in whole 4-frame clips (3 asked -> 4; 3 fps
    # over 2 s -> 8), and asking for more frames than a short video has repeats frames (is_repeat in the metadata)
    # rather than failing, so the encoder always gets full clips.
    def test_call_sample_frames(self):
        processor = LiteFrameVideoProcessor(**self.video_processor_dict)
        videos = self.video_processor_tester.prepare_video_inputs(return_tensors="torch")

        def frames(video, **kwargs):
            return processor(video, return_tensors="pt", **kwargs)["pixel_values_videos"].shape[1]

        self.assertEqual(frames(videos[0], num_frames=3), 8)  # do_sample_frames=False: kept as given
        processor.do_sample_frames = True
        self.assertEqual((frames(videos[0], num_frames=3), frames(videos, num_frames=3)), (4, 4))
        metadata = [[{"duration": 2.0, "total_num_frames": 8, "fps": 4}]]
        self.assertEqual(frames(videos[0], fps=3, video_metadata=metadata), 8)
        self.assertEqual(frames(videos, fps=3, video_metadata=metadata * len(videos)), 8)
        with self.assertRaises(ValueError):  # fps sampling needs the video's frame rate
            processor.sample_frames(metadata=VideoMetadata(total_num_frames=8), fps=3)
        self.assertEqual(frames(videos[0], num_frames=10), 12)


class LiteFrameProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = LiteFrameProcessor

    # SmolLM2's real tokenizer (the micro models' LLM) with InternVL's clip tokens, as transformers' processor tests
    # use full tokenizers: a word-level tiny one decodes with spaces between tokens, so text offsets do not line up.
    @classmethod
    def _setup_tokenizer(cls):
        from transformers import AutoTokenizer

        from liteframe_hf.assets import asset_path
        from liteframe_hf.modeling.processing_liteframe import CLIP_CONTEXT, CLIP_END, CLIP_START

        tokenizer = AutoTokenizer.from_pretrained(asset_path("smollm2"))
        tokenizer.add_special_tokens({"additional_special_tokens": [CLIP_START, CLIP_END, CLIP_CONTEXT]},
                                     replace_extra_special_tokens=False)
        return tokenizer

    @classmethod
    def _setup_video_processor(cls):
        return LiteFrameVideoProcessor(size={"height": 56, "width": 56}, num_frames=8)

    @staticmethod
    def prepare_processor_dict():
        # the placeholder geometry the processor keeps of a model config, as processor_config.json holds it
        return {"model_config": json.loads(json.dumps(_placeholder_config(tiny_liteframe_config())))}

    @unittest.skip(reason="LiteFrame-specific, not one of InternVL's skips: frames come in whole 4-frame clips, so "
                          "the mixin's num_frames=3 gives 4 frames (test_call_sample_frames above checks the counts)")
    def test_apply_chat_template_video_frame_sampling(self):
        pass

    @unittest.skip(reason="LiteFrame-specific, not one of InternVL's skips: `tokens_per_clip` is both the derived "
                          "placeholder count (a property) and the __init__ argument that loads processors saved with "
                          "a fixed count; from_pretrained passes only __init__ arguments, so neither can go")
    def test_init_arguments_not_in_class_attributes(self):
        pass


# ------------------------------------------------------------------ shapes of the recorded encoder outputs
def test_vision_tower_and_get_video_features_record_per_layer_outputs():
    tester = LiteFrameModelTester(None)
    config, inputs = tester.prepare_config_and_inputs_for_common()
    model = LiteFrameForConditionalGeneration._from_config(config, attn_implementation="eager").eval()
    videos = inputs["pixel_values_videos"]  # (3 videos, 4 frames = 1 clip each, 3, 32, 32)
    heads, width = 4, 32
    # Block 1 sees 4 frames of 1 + 8*8 tokens; the (2, 2, 2) merge after it leaves block 2 with 2 frames of 1 + 4*4.
    hidden_shapes = [(3, 4, 65, width), (3, 4, 65, width), (3, 2, 17, width)]
    attention_shapes = [(3 * 4, heads, 65, 65), (3 * 2, heads, 17, 17)]
    with torch.no_grad():
        tower = model.vision_tower(videos, output_attentions=True, output_hidden_states=True)
        features = model.get_video_features(videos, output_attentions=True, output_hidden_states=True)
        plain = model.get_video_features(videos)
        as_tuple = model.get_video_features(videos, return_dict=False)
    for out in (tower, features):
        assert [tuple(h.shape) for h in out.hidden_states] == hidden_shapes
        assert [tuple(a.shape) for a in out.attentions] == attention_shapes
        torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(3 * 4, heads, 65))  # softmax rows
        assert tuple(out.last_hidden_state.shape) == (3, 2, 4, 4, 24)  # clips, T', H', W', out_hidden_size
    assert tuple(features.pooler_output.shape) == (3, tester.video_seq_length, 32)  # LLM tokens per video
    assert plain.hidden_states is None and plain.attentions is None  # recorded only when asked
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[1], plain.pooler_output)


def test_attention_outputs_are_the_blocks_own():
    # Joint clip attention: one (clip, heads, T*L, T*L) map per block. A temporal-attention mixer's weights are not
    # among them (one entry per block, not two).
    config = LiteFrameVisionConfig(**vision_config_dict(attention_scope="clip", temporal_mixer="attn"))
    model = LiteFrameVisionModel._from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 4, 3, 32, 32), output_attentions=True)
    assert [tuple(a.shape) for a in out.attentions] == [(2, 4, 4 * 65, 4 * 65), (2, 4, 2 * 17, 2 * 17)]


# ------------------------------------------------------------------ generation (GenerationTesterMixin is not in the sdist)
@pytest.fixture(scope="module")
def micro_model_inputs():
    """LiteFrame-micro (the embedded default: shipped encoder, projector and LoRA on SmolLM2-135M) and a real
    8-frame video prompt."""
    from liteframe_hf.assets import asset_path
    from liteframe_hf.micro import assemble_micro_model

    model, processor, _ = assemble_micro_model("liteframe-micro", progress=lambda message: None)
    conversation = [{"role": "user", "content": [{"type": "video", "video": str(asset_path("bikes.mp4"))},
                                                 {"type": "text", "text": "What happens in the video?"}]}]
    inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", processor_kwargs={"num_frames": 8})
    inputs.pop("video_metadata", None)
    return model.eval(), dict(inputs)


def test_static_cache_and_compiled_decoding_give_the_dynamic_cache_tokens(micro_model_inputs):
    from torch._dynamo.backends.debugging import aot_eager
    from transformers import CompileConfig

    model, inputs = micro_model_inputs
    greedy = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False)
    with torch.no_grad():
        dynamic = model.generate(**inputs, **greedy)
        static = model.generate(**inputs, **greedy, cache_implementation="static")
        # generate compiles the decoding step of a static cache; fullgraph=True fails on any graph break.
        # aot_eager (AOTAutograd, no code generation) keeps it to seconds on a CPU; inductor would take minutes.
        graphs = []

        def backend(graph, example_inputs):
            graphs.append(graph)
            return aot_eager(graph, example_inputs)

        compile_config = CompileConfig(fullgraph=True, backend=backend, mode=None)
        compile_config._compile_all_devices = True  # generate compiles on accelerators only unless told
        compiled = model.generate(**inputs, **greedy, cache_implementation="static", compile_config=compile_config)
    new = slice(inputs["input_ids"].shape[1], None)
    assert len(set(dynamic[0, new].tolist())) > 1  # a real answer, not one token repeated
    assert static[0, new].tolist() == dynamic[0, new].tolist()
    assert graphs, "the decoding step was not compiled"
    assert compiled[0, new].tolist() == dynamic[0, new].tolist()


def test_cache_argument_takes_both_names(micro_model_inputs):
    import warnings

    from transformers import DynamicCache

    from liteframe_hf.modeling.modeling_liteframe import CACHE_KEY

    model, inputs = micro_model_inputs
    with torch.no_grad():
        first = model(**inputs, cache=DynamicCache(config=model.config.get_text_config()), return_dict=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = model(**inputs, past_key_values=DynamicCache(config=model.config.get_text_config()), return_dict=True)
    deprecated = [w for w in caught if "`past_key_values` is deprecated" in str(w.message)]
    assert len(deprecated) == (1 if CACHE_KEY == "cache" else 0)  # 5.23 names it past_key_values itself
    length = inputs["input_ids"].shape[1]
    assert getattr(first, CACHE_KEY).get_seq_length() == getattr(old, CACHE_KEY).get_seq_length() == length
    torch.testing.assert_close(first.logits, old.logits)
    # decoding one more token from the returned cache continues the same sequence
    step = {"input_ids": first.logits[:, -1:].argmax(-1), CACHE_KEY: getattr(first, CACHE_KEY),
            "attention_mask": torch.ones(1, length + 1, dtype=torch.long)}
    with torch.no_grad():
        assert getattr(model(**step, return_dict=True), CACHE_KEY).get_seq_length() == length + 1


def test_vision_tower_compiles_as_one_graph():
    # _can_compile_fullgraph is declared on every LiteFrame class: the encoder too traces without a graph break.
    from torch._dynamo.backends.debugging import aot_eager

    model = LiteFrameVisionModel(LiteFrameVisionConfig(**vision_config_dict())).eval()
    pixels = torch.randn(2, 4, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True, backend=aot_eager)
    with torch.no_grad():
        torch.testing.assert_close(compiled(pixels).last_hidden_state, model(pixels).last_hidden_state)
