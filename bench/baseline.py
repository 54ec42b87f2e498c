"""The straightforward implementation the benches compare against: what a person would write
with astropy and matplotlib to preview an image, without any of contimg's shortcuts.

One definition, so `products_bench.py` (kernels) and `e2e_bench.py` (a whole day) measure the
same baseline. Imported as a sibling module: the benches run as scripts (`python bench/X.py`).
"""

from __future__ import annotations

import io

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def zscale_png(image: np.ndarray) -> bytes:
    """A 256-px grey PNG of `image`: ZScale interval, asinh stretch, matplotlib's Agg canvas."""
    fig = Figure(figsize=(2.56, 2.56), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    norm = ImageNormalize(image, interval=ZScaleInterval(), stretch=AsinhStretch())
    ax.imshow(image, origin="lower", cmap="gray", norm=norm)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
