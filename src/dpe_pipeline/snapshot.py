"""Rebuild the bundled ADEME snapshot (``data/ademe/*.parquet``) from the real CSV extracts.

Run ``./dpe snapshot [SOURCE_DIR]``; the default source is ``../shared/data/ademe`` beside
the checkout. Each source file is converted to the current field names and typed
(:mod:`dpe_pipeline.records`), files are grouped by dataset (existing homes →
``dpe03existant``, new builds → ``dpe02neuf``), duplicates are dropped, and each dataset
is written as one Parquet file with a manifest that records counts and source hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dpe_pipeline.records import drop_duplicate_dpe, normalise_frame
from dpe_pipeline.settings import project_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    name: str
    dataset: str
    origin: str


SOURCES = (
    SourceFile("dpe-v2-logements-existants_69_5cols_HoeschleY-Rshiny.csv", "dpe03existant",
               "HoeschleY/Rshiny data/existants_69.csv @ 760a216a"),
    SourceFile("dpe-v2-logements-existants_48_api-select_SKTWIR.csv", "dpe03existant",
               "SKTWIR/iut_sd2_rshiny_enedis .RData (df) @ 98dd39f9"),
    SourceFile("dpe-v2-logements-neufs_69_asardell-IUT_SD2.csv", "dpe02neuf",
               "asardell/IUT_SD2 data/dpe-v2-logements-neufs.csv @ b158fd2a"),
    SourceFile("dpe02neuf_74_snake-case_RafaSanz7.csv", "dpe02neuf",
               "RafaSanz7/iut_sd2_rshiny_enedis data/data_dpe_2_savoies_neufs.csv @ 1f017de8"),
)
DATASETS = ("dpe03existant", "dpe02neuf")


def snapshot_dir() -> Path:
    return project_dir() / "data" / "ademe"


def default_source_dir() -> Path:
    return project_dir().parent / "shared" / "data" / "ademe"


def read_source(path: Path) -> pd.DataFrame:
    """One source CSV as strings (BOM stripped, R's row-index column removed)."""
    frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=True, na_values=["", "NA"])
    return frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")])


def build_dataset(source_dir: Path, dataset: str) -> tuple[pd.DataFrame, list[dict]]:
    """The typed, deduplicated frame of one dataset and the provenance of its parts."""
    parts, provenance = [], []
    for source in (s for s in SOURCES if s.dataset == dataset):
        path = source_dir / source.name
        raw = read_source(path)
        parts.append(normalise_frame(raw))
        provenance.append({
            "file": source.name,
            "origin": source.origin,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "rows": len(raw),
        })
    frame = pd.concat(parts, ignore_index=True)
    frame = drop_duplicate_dpe(frame).reset_index(drop=True)
    columns = ["numero_dpe", *sorted(c for c in frame.columns if c != "numero_dpe")]
    return frame[columns], provenance


def write_snapshot(source_dir: Path, target_dir: Path) -> dict:
    """Write one Parquet file per dataset plus ``manifest.json``; returns the manifest."""
    target_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"licence": "Licence Ouverte / Etalab 2.0", "datasets": {}}
    for dataset in DATASETS:
        frame, provenance = build_dataset(source_dir, dataset)
        frame.to_parquet(target_dir / f"{dataset}.parquet", index=False, compression="zstd")
        manifest["datasets"][dataset] = {
            "records": len(frame),
            "fields": len(frame.columns),
            "departments": frame["code_departement_ban"].value_counts(dropna=False).to_dict(),
            "sources": provenance,
        }
        logger.info("%s: %d records, %d fields", dataset, len(frame), len(frame.columns))
    (target_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def load_dataset(dataset: str, directory: Path | None = None) -> pd.DataFrame:
    """The bundled snapshot of one dataset (``dpe03existant`` or ``dpe02neuf``)."""
    path = (directory or snapshot_dir()) / f"{dataset}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"Jeu de données {dataset!r} introuvable : {path} (reconstruisez-le : ./dpe snapshot)")
    return pd.read_parquet(path)


def main(source: str | None = None) -> int:
    source_dir = Path(source) if source else default_source_dir()
    if not source_dir.is_dir():
        logger.error("source folder %s not found (give it as argument)", source_dir)
        return 2
    manifest = write_snapshot(source_dir, snapshot_dir())
    total = sum(d["records"] for d in manifest["datasets"].values())
    print(f"Instantané reconstruit dans {snapshot_dir()} : {total} enregistrements.")
    return 0
