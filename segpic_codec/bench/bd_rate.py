"""BD-rate (Bjontegaard delta rate, VCEG-M33) as the bench computes it, for
measured and published curves alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# BD-rate convention (see ../shared/anchors/README.md): cubic fit of ln(bpp) as a
# function of PSNR, integrated over the PSNR interval both curves cover. Points
# above 2 bpp are left out of the fit: the published curves run up to 3.6-4.7 bpp
# (47 dB), and one cubic over 26-47 dB bends the 0.1-1.5 bpp part that learned
# codecs are compared on. With this window the published points give the figures
# that README quotes (SegPIC paper -9.9%, MoRIC ~0%, BPG +27%, WebP +86% vs VTM);
# fitting every point gives BPG +22% and WebP +78% instead.
BD_MAX_BPP = 2.0
# Less common PSNR range than this and the number would be an extrapolation: "n/a".
BD_MIN_OVERLAP_DB = 1.0


@dataclass
class BDResult:
    """BD-rate in percent (negative: the test codec needs fewer bits at equal
    PSNR) and the PSNR interval it was averaged over; value None means "n/a"."""

    value: float | None
    lo: float = float("nan")
    hi: float = float("nan")
    reason: str = ""


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float],
            max_bpp: float | None = BD_MAX_BPP,
            min_overlap_db: float = BD_MIN_OVERLAP_DB) -> BDResult:
    """Bjontegaard delta rate (VCEG-M33): fit ln(rate) as a cubic polynomial of
    PSNR for each curve, integrate both over the common PSNR interval, and return
    exp(mean difference) - 1 in percent. Only points at or below `max_bpp` are
    fitted; no number (value None) when either curve has fewer than 4 points or
    the curves share less than `min_overlap_db` dB, rather than extrapolate."""
    curves = [_fitted_points(rate_anchor, psnr_anchor, max_bpp),
              _fitted_points(rate_test, psnr_test, max_bpp)]
    if any(len(np.unique(d)) < 4 for _, d in curves):
        return BDResult(None, reason="fewer than 4 points")
    lo = max(d.min() for _, d in curves)
    hi = min(d.max() for _, d in curves)
    if hi - lo < min_overlap_db:
        return BDResult(None, lo, hi, reason="PSNR ranges do not overlap enough")
    # centre PSNR before fitting: x**3 of raw dB values makes polyfit ill-conditioned
    centre = (lo + hi) / 2
    integrals = []
    for log_r, d in curves:
        poly = np.polyint(np.polyfit(d - centre, log_r, 3))
        integrals.append(np.polyval(poly, hi - centre) - np.polyval(poly, lo - centre))
    mean_diff = (integrals[1] - integrals[0]) / (hi - lo)
    return BDResult(float((math.exp(mean_diff) - 1.0) * 100.0), float(lo), float(hi))


def rate_at_psnr(rates: Sequence[float], psnrs: Sequence[float], psnr: float,
                 max_bpp: float | None = BD_MAX_BPP) -> float | None:
    """The rate a curve has at `psnr`, read from the fit BD-rate integrates (the
    cubic of ln(rate) in PSNR, points at or below `max_bpp`); None with fewer
    than 4 points or outside the PSNR range they span, rather than extrapolate.
    A point's rate against it is that point's own BD-rate against the curve."""
    log_r, d = _fitted_points(rates, psnrs, max_bpp)
    if len(np.unique(d)) < 4 or not d.min() <= psnr <= d.max():
        return None
    centre = float(d.mean())
    return float(np.exp(np.polyval(np.polyfit(d - centre, log_r, 3), psnr - centre)))


def _fitted_points(rates: Sequence[float], psnrs: Sequence[float], max_bpp: float | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(ln rate, PSNR) of the points a fit takes: finite, positive rates at or
    below `max_bpp`."""
    r = np.asarray(rates, dtype=np.float64)
    d = np.asarray(psnrs, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(d) & (r > 0)
    if max_bpp is not None:
        keep &= r <= max_bpp
    return np.log(r[keep]), d[keep]


def curve(d: dict) -> tuple[list[float], list[float]]:
    """(bpp, PSNR) of a results dict in CompressAI's format, missing points left out."""
    r = d["results"]
    pts = [(b, p) for b, p in zip(r["bpp"], r["psnr-rgb"], strict=True)
           if b is not None and p is not None]
    return [b for b, _ in pts], [p for _, p in pts]


def bd(anchor: dict, test: dict) -> BDResult:
    """BD-rate of one results dict against another."""
    return bd_rate(*curve(anchor), *curve(test))
