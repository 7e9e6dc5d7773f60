"""The `liteframe` lmms-eval model: one request at a time through the LiteFrame processor and `generate`.

model_args: pretrained (folder, Hub id or built-in name such as liteframe-micro), num_frames or fps (frame
sampling; default: the processor's), dtype (auto, float32, bfloat16, float16), device (auto, cpu, cuda, ...),
max_new_tokens (default 16; a task's generation_kwargs override it). Video tasks only: each request's visuals
must be video files (paths). Requests are answered one by one (batch 1, LiteFrame's latency protocol), greedy
unless the task asks for sampling; stop strings (`until`) cut the answer.
"""

from __future__ import annotations

from loguru import logger
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm.auto import tqdm

from ..eval.run import DEFAULT_MAX_NEW_TOKENS, ask, load_model
from ..micro import DEFAULT_NAME

# Generation arguments passed on to `generate`; others a task may send (e.g. `until`) are handled here.
GENERATE_KEYS = ("do_sample", "temperature", "top_p", "top_k", "num_beams", "repetition_penalty")


class LiteFrameLMM(lmms):
    is_simple = True

    def __init__(self, pretrained: str = DEFAULT_NAME, num_frames: int | None = None, fps: float | None = None,
                 dtype: str = "auto", device: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 batch_size: int | str = 1, **kwargs) -> None:
        super().__init__()
        kwargs.pop("max_batch_size", None)
        if kwargs:
            raise ValueError(f"unknown model_args for liteframe: {sorted(kwargs)} (known: pretrained, num_frames, fps, "
                             "dtype, device, max_new_tokens)")
        if str(batch_size) not in ("1", "auto"):
            logger.warning(f"liteframe answers one request at a time; batch_size={batch_size} is ignored")
        if num_frames is not None and fps is not None:
            raise ValueError("pass num_frames or fps, not both")
        self.model, self.processor, self.info = load_model(str(pretrained), device=device or "auto", dtype=dtype,
                                                           progress=logger.info)
        self.num_frames = int(num_frames) if num_frames is not None else None
        self.fps = float(fps) if fps is not None else None
        self.max_new_tokens = int(max_new_tokens)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers = []
        for request in tqdm(requests, desc="LiteFrame answering", disable=self.rank != 0):
            contexts, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            visuals = [v for v in (visuals or []) if v is not None]
            if len(visuals) != 1 or not isinstance(visuals[0], str):
                raise NotImplementedError(
                    f"liteframe answers about one video file per request; task {task!r} doc {doc_id} gives "
                    f"{[type(v).__name__ for v in visuals]}"
                )
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new_tokens = int(gen_kwargs.pop("max_new_tokens", self.max_new_tokens))
            generate = {k: gen_kwargs[k] for k in GENERATE_KEYS if k in gen_kwargs}
            if not generate.get("do_sample") or float(generate.get("temperature", 0) or 0) == 0:
                generate = {"do_sample": False, "num_beams": int(generate.get("num_beams", 1))}  # greedy
            answer = ask(self.model, self.processor, visuals[0], contexts, num_frames=self.num_frames, fps=self.fps,
                         max_new_tokens=max_new_tokens, **generate)
            text = answer.text
            for stop in until:
                if stop:
                    text = text.split(stop)[0]
            answers.append(text)
            self.cache_hook.add_partial("generate_until", (contexts, gen_kwargs), text)
        return answers

    def loglikelihood(self, requests: list[Instance]):
        raise NotImplementedError("liteframe runs generate_until tasks (multiple-choice answers are generated)")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("liteframe does not run multi-round tasks")
