"""The straightforward implementation the benches compare against: what a person would write
with astropy and matplotlib to preview an image, and with sep, astropy and pandas to find and
associate its sources, without any of contimg's shortcuts.

One definition, so `products_bench.py` (kernels) and `e2e_bench.py` (a whole day) measure the
same baseline. Imported as a sibling module: the benches run as scripts (`python bench/X.py`).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

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


class Sources:
    """Blind sources image by image: `sep.Background` + `sep.extract` (5 sigma, no fit), the
    WCS to sky positions, `SkyCoord.match_to_catalog_sky` against the catalogue so far (30",
    1.5 beams of 20"), unmatched ones start sources, and a pandas groupby of all measurements
    after each image for the catalogue's mean positions."""

    def __init__(self) -> None:
        self.cat_ra: list[float] = []
        self.cat_dec: list[float] = []
        self.measurements: list[dict[str, Any]] = []

    def add(self, data: np.ndarray, header: Any) -> list[dict[str, Any]]:
        """Extract and associate one image; returns its measurements."""
        import pandas as pd
        import sep
        from astropy import units as u
        from astropy.coordinates import SkyCoord
        from astropy.wcs import WCS, FITSFixedWarning

        plane = np.ascontiguousarray(np.squeeze(data), dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        bkg = sep.Background(plane, bw=64, bh=64, fw=3, fh=3)
        objs = sep.extract(plane - bkg.back(), 5.0, err=bkg.rms(), minarea=1, filter_kernel=None)
        ra, dec = wcs.all_pix2world(objs["x"], objs["y"], 0)
        ids = np.full(len(objs), -1)
        if self.cat_ra and len(objs):
            here = SkyCoord(ra * u.deg, dec * u.deg)
            known = SkyCoord(np.array(self.cat_ra) * u.deg, np.array(self.cat_dec) * u.deg)
            idx, sep2d, _ = here.match_to_catalog_sky(known)
            ok = sep2d.arcsec < 30.0
            ids[ok] = idx[ok]
        found = []
        for k in range(len(objs)):
            if ids[k] < 0:
                self.cat_ra.append(float(ra[k]))
                self.cat_dec.append(float(dec[k]))
                ids[k] = len(self.cat_ra) - 1
            found.append({"source": int(ids[k]), "ra": float(ra[k]), "dec": float(dec[k]),
                          "flux": float(objs["peak"][k])})  # fmt: skip
        self.measurements.extend(found)
        if self.measurements:
            frame = (
                pd.DataFrame(self.measurements)
                .groupby("source")
                .agg({"ra": "mean", "dec": "mean", "flux": "mean"})
            )
            self.cat_ra = frame["ra"].tolist()
            self.cat_dec = frame["dec"].tolist()
        return found
