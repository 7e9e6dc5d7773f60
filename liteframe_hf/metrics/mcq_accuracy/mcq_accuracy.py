# Copyright 2026 The LiteFrame authors. Licensed under the Apache License, Version 2.0.
"""Multiple-choice accuracy for video QA: first option letter of a free-text answer, with a 95 % Wilson interval.

An `evaluate` module; load it from its local path (never from the Hub):

    import evaluate
    from liteframe_hf.metrics import MCQ_ACCURACY_PATH
    mcq = evaluate.load(MCQ_ACCURACY_PATH)
    mcq.compute(predictions=["B", "The answer is C.", "banana"], references=["B", "A", "D"])
    # {'accuracy': 0.333, 'ci_low': ..., 'ci_high': ..., 'correct': 1, 'total': 3, 'unparseable': 1, ...}

This file is self-contained (standard library + evaluate + datasets): `evaluate` copies it into its module cache
and imports it there, so it cannot import from the rest of the package. `liteframe eval` and the lmms-eval task
score with it, so every LiteFrame accuracy comes from this one place.
"""

from __future__ import annotations

import math
import re

import datasets
import evaluate

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile

_DESCRIPTION = """
Accuracy of multiple-choice answers given as free text. The prediction's first option letter is its answer
(rules below); a prediction with no option letter is wrong and counted as unparseable. Returns the accuracy, its
95 % Wilson score interval, the chance level (mean of 1 / options per question) and the counts.

Parsing, in order (only letters of the question's own options count; `num_options` sets how many, default 4):
1. the answer starts with the letter: "B", "B.", "B)", "(B)", "[B]", "B: a red car", "**B**", "b" alone;
2. else the letter after "answer", "option" or "choice": "The answer is B", "Answer: (C)", "option D"
   (a lower-case letter only when it ends the answer: "the answer is b.", not "the answer is a cat");
3. else the first stand-alone capital option letter anywhere: "I think C is right".
"A" and "I" followed by a lower-case word are read as words ("A red car", "I think"), not as letters.
A letter outside the options ("E" with four options) and text without a letter ("banana") are unparseable.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the model's answers (free text).
    references (`list` of `str`): the correct letters, "A".."Z".
    num_options (`int` or `list` of `int`, optional): options per question (one value for all, or one per
        question); defaults to 4. Sets the valid letters and the chance level.
Returns:
    accuracy (`float`): correct / total, in [0, 1].
    ci_low, ci_high (`float`): the 95 % Wilson score interval of the accuracy.
    chance (`float`): the accuracy of uniform guessing, mean of 1 / num_options.
    correct, total, unparseable (`int`): counts; unparseable answers are counted wrong.
Examples:
    >>> mcq = evaluate.load("path/to/mcq_accuracy")
    >>> mcq.compute(predictions=["B", "(A)", "banana"], references=["B", "C", "A"])["correct"]
    1
"""

_CITATION = """
@article{wilson1927,
  title={Probable inference, the law of succession, and statistical inference},
  author={Wilson, Edwin B.},
  journal={Journal of the American Statistical Association},
  volume={22}, number={158}, pages={209--212}, year={1927}
}
"""

_OPEN = r"[\s*_`\"'(\[{<]*"  # markup that may precede a letter: spaces, bold, quotes, brackets
_LETTER_END = r"(?![A-Za-z0-9'])"  # a letter on its own, not the start of a word
_LEADING = re.compile(rf"^{_OPEN}([A-Z]){_LETTER_END}")
_LONE_LOWER = re.compile(rf"^{_OPEN}([a-z])[\s*_`\"')\]}}>.:]*$")
# after "answer (is)", "option", "choice": a capital letter, or a lower-case one that ends the answer ("... is b.")
_KEYWORD = re.compile(rf"(?i:\b(?:answer|option|choice)\b)(?:\s+is)?\s*[:=]?{_OPEN}"
                      rf"(?:([A-Z]){_LETTER_END}|([a-z])[\s*_`\"')\]}}>.:]*$)")
_STANDALONE = re.compile(rf"(?<![A-Za-z0-9'])([A-Z]){_LETTER_END}")


def _is_word(text: str, start: int) -> bool:
    """The capital at `start` reads as a word ("A red car", "I think"), not as an option letter."""
    return text[start] in "AI" and re.match(r"\s+[a-z]", text[start + 1 :]) is not None


def parse_answer(text: str, num_options: int = 4) -> str | None:
    """The option letter a free-text answer gives, or None (see the rules in the module description)."""
    if not 1 <= int(num_options) <= len(LETTERS):
        raise ValueError(f"num_options must be within 1..{len(LETTERS)}, got {num_options}")
    valid = LETTERS[: int(num_options)]
    text = str(text or "").strip()
    match = _LEADING.match(text)
    if match and not _is_word(text, match.start(1)):
        return match.group(1) if match.group(1) in valid else None  # "E." with four options: not an option
    match = _LONE_LOWER.match(text)
    if match:
        letter = match.group(1).upper()
        return letter if letter in valid else None
    match = _KEYWORD.search(text)
    if match:
        letter = (match.group(1) or match.group(2)).upper()
        return letter if letter in valid else None
    for match in _STANDALONE.finditer(text):
        if match.group(1) in valid and not _is_word(text, match.start(1)):
            return match.group(1)
    return None


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion correct / total (nan, nan for total 0)."""
    if total <= 0:
        return float("nan"), float("nan")
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # The bounds at 0 and n correct are exactly 0 and 1 (the formula gives them up to rounding).
    return (0.0 if correct == 0 else centre - half), (1.0 if correct == total else centre + half)


def score(predictions, references, num_options=4) -> dict:
    """The metric without `evaluate`'s machinery (same result as `compute`); also returns the parsed letters."""
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    counts = [int(num_options)] * len(references) if isinstance(num_options, int) else [int(n) for n in num_options]
    if len(counts) != len(references):
        raise ValueError(f"num_options has {len(counts)} entries for {len(references)} questions")
    parsed, correct = [], 0
    for i, (prediction, reference, n) in enumerate(zip(predictions, references, counts)):
        reference = str(reference).strip().upper()
        if len(reference) != 1 or reference not in LETTERS[:n]:
            raise ValueError(f"reference {i} is {reference!r}, not one of the {n} option letters {LETTERS[:n]}")
        letter = parse_answer(prediction, n)
        parsed.append(letter)
        correct += letter == reference
    total = len(references)
    low, high = wilson_interval(correct, total)
    return {
        "accuracy": correct / total if total else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "chance": sum(1 / n for n in counts) / total if total else float("nan"),
        "correct": correct,
        "total": total,
        "unparseable": sum(letter is None for letter in parsed),
        "parsed": parsed,
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class McqAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            reference_urls=["https://en.wikipedia.org/wiki/Binomial_proportion_confidence_interval#Wilson_score_interval"],
        )

    def _compute(self, predictions, references, num_options=4):
        result = score(predictions, references, num_options)
        result.pop("parsed")
        return result
