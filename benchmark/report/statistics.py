"""Statistics over seeds: the t-based 95% confidence interval, the sample standard deviation, and
numeric views of frame columns (missing and non-finite values ignored)."""
from __future__ import annotations

import math
import statistics
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # inverse CDF of Student's t (lighter import than scipy.stats)


def ci95_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the t-based 95% confidence interval of the mean: t_{0.975,n-1} * s / sqrt(n).

    ``s`` is the sample standard deviation (ddof=1). Missing and non-finite values are ignored;
    fewer than two values give NaN.
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(xs) < 2:
        return math.nan
    return float(stdtrit(len(xs) - 1, 0.975) * statistics.stdev(xs) / math.sqrt(len(xs)))


def sample_std(values: Sequence[float]) -> float:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.stdev(xs) if len(xs) >= 2 else math.nan


def is_missing(value) -> bool:
    """None or NaN (Python or NumPy float): what every table prints as ``—``."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats (NaN where missing); an all-NaN series when the column is absent."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def mean_of(frame: pd.DataFrame, column: str) -> float:
    values = numbers(frame, column).dropna()
    return float(values.mean()) if len(values) else math.nan
