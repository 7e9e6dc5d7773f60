"""`evaluate` metric modules shipped with the package, loaded from their local path (never from the Hub).

    import evaluate
    from liteframe_hf.metrics import MCQ_ACCURACY_PATH
    mcq = evaluate.load(MCQ_ACCURACY_PATH)
"""

from pathlib import Path

MCQ_ACCURACY_PATH = str(Path(__file__).parent / "mcq_accuracy" / "mcq_accuracy.py")


def load_mcq_accuracy():
    """The MCQ accuracy metric as an `evaluate.EvaluationModule`, from this package's copy."""
    import evaluate

    return evaluate.load(MCQ_ACCURACY_PATH)


__all__ = ["MCQ_ACCURACY_PATH", "load_mcq_accuracy"]
