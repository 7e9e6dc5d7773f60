"""Headless matplotlib for the PNG figures of `liteframe eval plot` and `liteframe train plot`."""

from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # draws without a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out, dpi: int) -> Path:
    """Lay `fig` out, write it to `out` (creating its folder), close it and return the path."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
    return out
