"""Synthetic DPE for scale tests: the real bundled sample enlarged, with its real distributions.

Rows are drawn at random (with replacement) from the real snapshot, so labels,
departments, communes, building types and the joint distribution of the numeric fields
stay those of the real data. Each drawn row then gets a new identifier and small
perturbations (dates moved by a few days, numbers by a few percent), and a few
identifiers get a second, later version, as re-published DPE do.

Every synthetic row is marked twice: ``synthetique = True`` and a ``numero_dpe`` starting
with ``SYN`` (13 characters, like the real ones), so it can never pass for a real DPE.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from dpe_pipeline.snapshot import load_dataset

logger = logging.getLogger(__name__)

PREFIX = "SYN"
DATE_FIELDS = ("date_etablissement_dpe", "date_reception_dpe", "date_visite_diagnostiqueur", "date_fin_validite_dpe")
JITTERED_NUMBERS = (
    "surface_habitable_logement", "conso_5_usages_par_m2_ep", "conso_5_usages_ep",
    "emission_ges_5_usages", "emission_ges_5_usages_par_m2", "cout_total_5_usages",
)
MAX_DATE_SHIFT_DAYS = 15
RELATIVE_NOISE = 0.05
SECOND_VERSION_SHARE = 0.02


def enlarge(sample: pd.DataFrame, rows: int, seed: int = 4) -> pd.DataFrame:
    """``rows`` synthetic DPE resampled from ``sample`` (same columns, plus ``synthetique``)."""
    rng = np.random.default_rng(seed)
    drawn = sample.iloc[rng.integers(0, len(sample), size=rows)].reset_index(drop=True)
    drawn["numero_dpe"] = [f"{PREFIX}{number:010d}" for number in range(rows)]
    shift = pd.to_timedelta(rng.integers(-MAX_DATE_SHIFT_DAYS, MAX_DATE_SHIFT_DAYS + 1, size=rows), unit="D")
    for field in DATE_FIELDS:
        if field in drawn.columns:
            dates = pd.to_datetime(drawn[field], errors="coerce") + shift
            drawn[field] = dates.dt.strftime("%Y-%m-%d").astype("string")
    for field in JITTERED_NUMBERS:
        if field in drawn.columns:
            noise = 1 + rng.normal(0, RELATIVE_NOISE, size=rows)
            drawn[field] = (drawn[field].astype("float64") * noise).round(1)
    drawn = add_second_versions(drawn, rng)
    drawn["synthetique"] = True
    logger.info("enlarged %d real rows to %d synthetic rows", len(sample), len(drawn))
    return drawn


def add_second_versions(drawn: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Replace a few rows by a later version of another synthetic DPE (same number, newer date)."""
    count = int(len(drawn) * SECOND_VERSION_SHARE)
    if count == 0:
        return drawn
    targets = rng.choice(len(drawn), size=count, replace=False)
    sources = rng.choice(len(drawn), size=count, replace=False)
    later = drawn.iloc[sources].copy()
    later["numero_dpe"] = drawn["numero_dpe"].iloc[targets].to_numpy()
    for field in ("date_etablissement_dpe", "date_reception_dpe"):
        if field in later.columns:
            moved = pd.to_datetime(drawn[field].iloc[targets].to_numpy(), errors="coerce") + pd.Timedelta(days=30)
            later[field] = pd.Series(moved, index=later.index).dt.strftime("%Y-%m-%d").astype("string")
    kept = np.setdiff1d(np.arange(len(drawn)), sources)
    return pd.concat([drawn.iloc[kept], later], ignore_index=True)


def write_enlarged(path: Path, rows: int, seed: int = 4, dataset: str = "dpe03existant") -> Path:
    """Write the enlarged sample as Parquet once (reused when it already has the right size)."""
    if path.exists():
        import pyarrow.parquet as pq

        if pq.ParquetFile(path).metadata.num_rows == rows:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    enlarge(load_dataset(dataset), rows, seed).to_parquet(path, index=False)
    return path
