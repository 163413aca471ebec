"""Lineage records: where a dataset came from, written beside it as `<name>.lineage.json`.

    data/iter1/preferences.parquet  ->  data/iter1/preferences.lineage.json

A stage adds one line after `rows.write`:

    lineage.write(args.out, "preferences", stage=f"pairs@{t}", inputs={"responses": ..., "judgments": ...},
                  params=p, sections=("pairs",), seed=None)

The record holds the DVC md5 of the dataset and of every input (a model folder gets DVC's
`<md5>.dir` hash, so it matches dvc.lock and the cache), the params sections the stage
reads and their hash, the seeds, and package versions. It carries no timestamp: the same
run on the same machine writes the same bytes. Format: docs/versioning.md ("Lineage").
`srlm diff` and `srlm release` read it with `read()`, at any git revision.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Iterable

from stages.core import rows

FORMAT = "srlm-lineage/1"
# the packages whose versions a lineage record and a dataset card name
PACKAGES = (
    "srlm",
    "torch",
    "transformers",
    "trl",
    "peft",
    "vllm",
    "datasets",
    "polars",
    "pyarrow",
    "dvc",
    "great-expectations",
    "huggingface-hub",
)
# the stages that make an iteration's datasets (dpo@t trains on them; it is not part of the dataset)
ITERATION_STAGES = ("prompts", "responses", "judge", "pairs", "meta_judge", "validate", "evaluate")


def path_for(dataset: str | Path) -> Path:
    dataset = Path(dataset)
    return dataset.with_name(dataset.name.split(".")[0] + ".lineage.json")


def md5(path: str | Path) -> str | None:
    """DVC's md5 of a file, or `<md5>.dir` of a folder (the value dvc.lock records); None if absent."""
    path = Path(path)
    if path.is_file():
        return _file_md5(path)
    if not path.is_dir():
        return None
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        tree.add(f.relative_to(path).parts, Meta(size=f.stat().st_size), HashInfo("md5", _file_md5(f)))
    tree.digest()
    return tree.hash_info.value


def _file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# the exact package set of the CPU install (make setup; README "Reproducible installs")
LOCK = Path(__file__).resolve().parents[2] / "requirements" / "cpu.lock"


def lock_hash(path: Path = LOCK) -> str | None:
    """The md5 of requirements/cpu.lock, the package set the record's versions come from; None without it
    (an installed copy of srlm, or a GPU box's own environment: then `packages` is what there is)."""
    return _file_md5(path) if path.is_file() else None


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def params_subset(params, sections: Iterable[str]) -> dict:
    """The params a stage reads, by dotted name as dvc.yaml lists them (`seed`, `judge`, `backend.dtype`)."""
    tree = params.model_dump(mode="json", by_alias=True)
    out = {}
    for name in sections:
        node = tree
        for key in name.split("."):
            node = node[key]
        out[name] = node
    return out


def record(
    dataset: str | Path,
    kind: str,
    *,
    stage: str,
    inputs: dict[str, str | Path],
    params,
    sections: Iterable[str],
    seed: int | None = None,
) -> dict:
    import polars as pl

    dataset = Path(dataset)
    used = params_subset(params, sections)
    written = rows.current(dataset)  # its temporary name until the stage's outputs are renamed in together
    return {
        "format": FORMAT,
        "dataset": {
            "path": dataset.as_posix(),
            "kind": kind,
            "md5": md5(written),
            "rows": pl.scan_parquet(written).select(pl.len()).collect().item(),
        },
        "stage": stage,
        "inputs": {name: {"path": Path(p).as_posix(), "md5": md5(p)} for name, p in inputs.items()},
        "params": used,
        "params_hash": rows.content_id(used),
        "seeds": {"global": params.seed, "stage": seed},
        "packages": package_versions(),
        "lock": lock_hash(),
    }


def write(dataset: str | Path, kind: str, **kwargs) -> dict:
    """Write the lineage record of the dataset just written at `dataset` (see `record` for the arguments)."""
    rec = record(dataset, kind, **kwargs)
    rows.write_json(rec, path_for(dataset))
    return rec


def read(dataset: str | Path, rev: str | None = None, repo: str | None = None) -> dict | None:
    """The lineage record of `dataset` in the workspace, or at a git revision; None if it has none."""
    return rows.read_json(path_for(dataset), rev, repo)


def lock_stages(root: Path) -> dict:
    """The `stages` of dvc.lock: what DVC last ran, with the md5 of every dep and out."""
    import yaml

    path = root / "dvc.lock"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {}) if path.exists() else {}
