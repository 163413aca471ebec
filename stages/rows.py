"""Row schemas for every dataset, content-hash ids, and atomic parquet I/O.

Writers, validators and readers all go through `SCHEMAS`: a frame is cast to its
schema on write (missing or extra columns are errors) and checked again on read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from .errors import SrlmError

# the datasets one iteration makes, in pipeline order (data/iter<t>/<kind>.parquet)
KINDS = ("prompts", "responses", "judgments", "preferences")

Message = pl.Struct({"role": pl.String, "content": pl.String})
Conversation = pl.List(Message)

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    # seed instruction data (IFT): also the few-shot pool for prompts@t
    "ift": {"id": pl.String, "instruction": pl.String, "response": pl.String, "source": pl.String},
    # judge-training data (EFT): `judgment` is "Score: N" and a one-line rubric justification
    "eft": {
        "id": pl.String,
        "instruction": pl.String,
        "response": pl.String,
        "score": pl.Int8,
        "judgment": pl.String,
        "source": pl.String,
    },
    "prompts": {
        "id": pl.String,  # hash of the prompt text
        "prompt": pl.String,
        "fewshot_ids": pl.List(pl.String),
        "iteration": pl.Int32,
        "model": pl.String,
        "seed": pl.Int64,
    },
    "responses": {
        "id": pl.String,  # hash of prompt id, text and generator
        "prompt_id": pl.String,
        "prompt": pl.String,
        "response": pl.String,
        "sample": pl.Int32,
        "n_tokens": pl.Int32,
        "truncated": pl.Boolean,  # stopped at responses.max_new_tokens, not at the end of the turn
        "loops": pl.Boolean,  # repeats a span of itself (stages/text.py: loops)
        "model": pl.String,
        "seed": pl.Int64,
    },
    "judgments": {
        "id": pl.String,  # hash of response id, grade index and judge
        "response_id": pl.String,
        "prompt_id": pl.String,
        "grade": pl.Int32,  # 0..k-1 (sample mode); 0 (logprob mode)
        "score": pl.Float64,  # null when the grade could not be parsed: never 0
        "raw": pl.String,  # the judge's text (sample) or "" (logprob)
        "probs": pl.List(pl.Float64),  # P(score = 0..5) in logprob mode, else empty
        "mode": pl.String,
        "model": pl.String,
        "seed": pl.Int64,
    },
    # TRL conversational preference format plus scores and ids
    "preferences": {
        "id": pl.String,  # hash of prompt id, chosen id, rejected id
        "prompt_id": pl.String,
        "prompt": Conversation,
        "chosen": Conversation,
        "rejected": Conversation,
        "chosen_id": pl.String,
        "rejected_id": pl.String,
        "score_chosen": pl.Float64,
        "score_rejected": pl.Float64,
        "iteration": pl.Int32,
    },
    # raw engine output of one shard (stages/shards.py): `sample` completions or next-token `probs` per work item
    "generations": {
        "item": pl.String,  # the work item's id (a prompt id, a response id, a few-shot draw id)
        "sample": pl.Int32,
        "text": pl.String,
        "n_tokens": pl.Int32,
        "truncated": pl.Boolean,  # stopped at max_new_tokens (finish reason "length")
        "probs": pl.List(pl.Float64),
    },
}


class SchemaError(SrlmError):
    """A file does not hold its dataset's rows (validate turns it into a failed check)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")
        self.detail = message


class WriteError(SrlmError):
    """Writing failed (disk full, permissions): the message names the file; no temporary file is left."""


def _write_failed(path: Path, e: OSError) -> WriteError:
    hint = " (disk full)" if e.errno == errno.ENOSPC else ""
    return WriteError(f"error: could not write {path}: {e.strerror or e}{hint}")


def content_id(*parts: object) -> str:
    """Stable 16-hex id of the JSON encoding of `parts`."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from content (e.g. global seed, stage, iteration): stable across runs and machines."""
    return int(content_id(*parts)[:8], 16) & 0x7FFFFFFF


def conform(df: pl.DataFrame, kind: str, where: str = "") -> pl.DataFrame:
    """Return `df` with exactly the schema's columns, in order, cast to the schema's types."""
    schema = SCHEMAS[kind]
    where = f" in {where}" if where else ""
    missing = [c for c in schema if c not in df.columns]
    extra = [c for c in df.columns if c not in schema]
    if missing or extra:
        raise SchemaError(f"{kind}{where}: missing columns {missing}, unexpected columns {extra}")
    try:
        return df.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as e:
        raise SchemaError(f"{kind}{where}: a column has the wrong type: {e}") from None


def empty(kind: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[kind])


def frame(rows: list[dict], kind: str) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, schema=SCHEMAS[kind]) if rows else empty(kind), kind)


def write(df: pl.DataFrame, path: str | Path, kind: str) -> pl.DataFrame:
    """Conform and write atomically: a crash never leaves a partial file at `path`."""
    df = conform(df, kind)
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        # statistics off and one row group: bytes depend only on the rows
        df.write_parquet(tmp, compression="zstd", statistics=False, row_group_size=max(len(df), 1))
        os.replace(tmp, path)
    except OSError as e:
        raise _write_failed(path, e) from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return df


def read(path: str | Path, kind: str) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{kind}: {path} does not exist")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several types for a corrupt file
        raise SchemaError(f"{kind}: {path} is not a readable parquet file: {e}") from None
    return conform(df, kind, str(path))


def write_text(text: str, path: str | Path) -> None:
    """Atomic text write (metrics, reports)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise _write_failed(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_json(obj: dict, path: str | Path) -> None:
    """Atomic JSON write (metrics, reports)."""
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def read_json(
    path: str | Path, rev: str | None = None, repo: str | None = None, missing_ok: bool = True
) -> dict | None:
    """A small JSON file (metrics, lineage, validation verdict) in the workspace, or at a git revision through
    DVC; None when absent (unless missing_ok is false); invalid JSON is an error naming the file."""
    try:
        if rev is None:
            text = (Path(repo or ".") / path).read_text(encoding="utf-8")
        else:
            import dvc.api
            from dvc.exceptions import PathMissingError

            try:
                text = dvc.api.read(Path(path).as_posix(), repo=repo, rev=rev, encoding="utf-8")
            except PathMissingError:
                raise FileNotFoundError(path) from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        if missing_ok:
            return None
        raise SrlmError(f"error: {path} does not exist") from None
    except UnicodeDecodeError:
        raise SrlmError(f"error: {path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SrlmError(f"error: {path}: not valid JSON ({e})") from None


@contextlib.contextmanager
def atomic_dir(out: str | Path):
    """Fill a temporary folder beside `out`, then swap it in: `out` is the old folder or the whole new one,
    never a half-written one (model folders, the release folder)."""
    out = Path(out)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except OSError as e:
        raise _write_failed(out, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
