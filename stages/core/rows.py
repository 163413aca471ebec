"""Row schemas for every dataset, content-hash ids, and atomic parquet I/O.

Writers, validators and readers all go through `SCHEMAS`: a frame is cast to its
schema on write (missing or extra columns are errors) and checked again on read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import secrets
import shutil
from pathlib import Path

import polars as pl

from stages.core import errors
from stages.core.errors import SrlmError, brief

# the datasets every iteration makes, in pipeline order (data/iter<t>/<kind>.parquet)
KINDS = ("prompts", "responses", "judgments", "preferences")
# ... and with the recipes of docs/recipes.md: meta_judge@t's judge pairs (empty unless meta_judge.enabled)
DATASETS = (*KINDS, "meta_judgments")
# ... and checks@t's verdicts on the responses' verifiable constraints (docs/checks.md)
CHECKED = "checks"

Message = pl.Struct({"role": pl.String, "content": pl.String})
Conversation = pl.List(Message)
# one verifiable instruction constraint (stages/judging/checks.py: Constraint.as_row); unused arguments are null/[]
Constraint = pl.Struct(
    {"id": pl.String, "n": pl.Int32, "relation": pl.String, "words": pl.List(pl.String), "text": pl.String}
)

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
        "constraints": pl.List(Constraint),  # appended to the prompt text (checks.share of prompts; else [])
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
        "loops": pl.Boolean,  # repeats a span of itself (stages/judging/text.py: loops)
        "model": pl.String,
        "seed": pl.Int64,
    },
    "judgments": {
        "id": pl.String,  # hash of response id, sample index and judge
        "response_id": pl.String,
        "prompt_id": pl.String,
        "sample": pl.Int32,  # which of the K sampled grades, 0..k-1 (sample mode); 0 (logprob and compare modes)
        "score": pl.Float64,  # the grade, 0-5 (logprob: expected grade); null when it could not be parsed, never 0
        "raw": pl.String,  # the judge's text (sample) or "" (logprob)
        # logprob mode: P(score = 0..5); compare mode: P(this answer is the better one) per comparison; sample: []
        "probs": pl.List(pl.Float64),
        "mode": pl.String,
        "model": pl.String,
        "seed": pl.Int64,
    },
    # checks@t: per response, its prompt's constraints checked by code (stages/judging/checks.py)
    "checks": {
        "id": pl.String,  # hash of response id and the constraints checked
        "response_id": pl.String,
        "prompt_id": pl.String,
        "constraint_ids": pl.List(pl.String),
        "verdicts": pl.List(pl.Boolean),  # one per constraint, in the prompt's order
        "met": pl.Int32,
        "total": pl.Int32,  # 0 for a prompt without constraints
        "share_met": pl.Float64,  # met / total; null when total is 0 (no evidence, not a zero)
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
        # what decided the pair: judge (scores) | checks (constraints met; pairs.reward) | degenerate (a looping or
        # cut answer rejected; pairs.degenerate_last); stages/judging/rewards.py DECIDED
        "reward": pl.String,
        "iteration": pl.Int32,
    },
    # meta_judge@t: per meta-judged answer, the better and the worse of M(t-1)'s judgments of it, as M(t-1) ranked
    # them comparing each two in both orders; TRL's preference format, trained by dpo@t beside the answer pairs
    "meta_judgments": {
        "id": pl.String,  # hash of response id, chosen judgment id, rejected judgment id
        "response_id": pl.String,  # the judged answer
        "prompt_id": pl.String,
        "prompt": Conversation,  # the judge's prompt (rubric, question, answer)
        "chosen": Conversation,  # the better judgment
        "rejected": Conversation,
        "chosen_id": pl.String,  # judgment ids (judge@t's, or meta_judge@t's own samples outside sample mode)
        "rejected_id": pl.String,
        "score_chosen": pl.Float64,  # meta score: 5 x mean probability of being the better judgment
        "score_rejected": pl.Float64,
        "graded_chosen": pl.Float64,  # the score each judgment gave the answer (0-5)
        "graded_rejected": pl.Float64,
        "judgments": pl.Int32,  # distinct judgments of the answer compared (each two in both orders)
        "iteration": pl.Int32,
        "model": pl.String,
        "seed": pl.Int64,
    },
    # raw engine output of one shard (stages/engine/shards.py): `sample` completions or next-token `probs` per work item
    "generations": {
        "item": pl.String,  # the work item's id (a prompt id, a response id, a few-shot draw id)
        "sample": pl.Int32,
        "text": pl.String,
        "n_tokens": pl.Int32,
        "truncated": pl.Boolean,  # stopped at max_new_tokens (finish reason "length")
        "probs": pl.List(pl.Float64),
    },
}


# columns that may hold null; every other cell of a dataset must have a value (a null response would reach the judge's
# prompt as None, and pairs would take it for a tie)
NULLABLE: dict[str, set[str]] = {
    "judgments": {"score"},  # a grade that could not be parsed is null, never 0
    "checks": {"share_met"},  # a response to a prompt without constraints: no evidence, not a zero
}


class SchemaError(SrlmError):
    """A file does not hold its dataset's rows (validate turns it into a failed check)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")
        self.detail = message


class WriteError(SrlmError):
    """Writing failed (disk full, permissions): the message names the file; no temporary file is left."""


def _write_failed(path: Path, e: OSError) -> WriteError:
    if e.errno in (errno.EEXIST, errno.ENOTDIR) and not path.parent.is_dir():  # from mkdir of the folder
        return WriteError(f"error: could not write {path}: {path.parent} is not a folder (a file is in the way)")
    hint = " (disk full)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
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
        raise SchemaError(f"{kind}{where}: a column has the wrong type: {brief(e)}") from None


def empty(kind: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[kind])


# the value a row made before a column existed has: a prompt without constraints, a pair the judge decided
DEFAULTS: dict[str, dict] = {"prompts": {"constraints": []}, "preferences": {"reward": "judge"}}


def frame(rows: list[dict], kind: str) -> pl.DataFrame:
    if kind in DEFAULTS:
        rows = [{**DEFAULTS[kind], **r} for r in rows]
    return conform(pl.DataFrame(rows, schema=SCHEMAS[kind]) if rows else empty(kind), kind)


def _write_bytes(data: bytes, path: Path) -> None:
    """Write `data` to a new `.<name>.<random>.tmp` beside `path`, then rename it into place (or hand it to
    all_or_none). OSError on failure, and no file is left. The file gets 0666 less the umask, as any file
    `open()` makes (mkstemp would give 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            f = open(tmp, "xb")
            break
        except FileExistsError:
            continue
    try:
        with f:
            f.write(data)
        _place(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write(df: pl.DataFrame, path: str | Path, kind: str) -> pl.DataFrame:
    """Conform and write atomically: a crash never leaves a partial file at `path`."""
    df = conform(df, kind)
    path = Path(path)
    # serialised in memory, then written by Python: a full disk or a read-only folder is a plain OSError
    # (polars' own writer reports it as a ComputeError, e.g. "Invalid thrift: transport error").
    # Statistics off and one row group: the bytes depend only on the rows.
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=False, row_group_size=max(len(df), 1))
    try:
        _write_bytes(buf.getvalue(), path)
    except OSError as e:
        raise _write_failed(path, e) from None
    return df


def absent(path: Path) -> str:
    """Why `path` cannot be opened, in the words of an error: `does not exist`, or a symlink that goes nowhere
    (Path.exists() is False for both a missing file and a symlink loop)."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop (too many levels of symbolic links)"
        if path.is_symlink():
            return f"is a broken symlink (to {os.readlink(path)}, which does not exist)"
    return "does not exist"


def _first(mask: pl.Series) -> tuple[int, int]:
    """The first row (0-based) where `mask` is true, and how many are."""
    hits = mask.arg_true()
    return int(hits[0]), len(hits)


def check_rows(df: pl.DataFrame, kind: str, where: str) -> None:
    """What the types cannot say: no null cell outside NULLABLE (nor a message without its text in a
    conversation), and, where the schema has an id, no id twice. The error names the file, row and column."""
    for col, dtype in SCHEMAS[kind].items():
        if col in NULLABLE.get(kind, ()):
            continue
        if df[col].null_count():
            i, n = _first(df[col].is_null())
            raise SchemaError(
                f"{kind} in {where}: row {i + 1} has a null {col!r}" + (f" ({n} rows do)" if n > 1 else "")
            )
        if dtype == Conversation and len(df):
            empty = df[col].list.eval(
                pl.element().struct.field("role").is_null() | pl.element().struct.field("content").is_null()
            )
            mask = empty.list.any()
            if mask.any():
                i, n = _first(mask)
                raise SchemaError(
                    f"{kind} in {where}: row {i + 1} has a message without role or content in {col!r}"
                    + (f" ({n} rows do)" if n > 1 else "")
                )
    if "id" in SCHEMAS[kind]:
        repeated = df["id"].is_duplicated()
        if repeated.any():
            i, _ = _first(repeated)
            same = (df["id"] == df["id"][i]).arg_true()
            n = df.filter(repeated)["id"].n_unique()
            raise SchemaError(
                f"{kind} in {where}: id {df['id'][i]!r} is on rows {int(same[0]) + 1} and {int(same[1]) + 1}; "
                f"ids must be unique" + (f" ({n} ids repeat)" if n > 1 else "")
            )


def read(path: str | Path, kind: str) -> pl.DataFrame:
    """A dataset file, checked against its row schema: columns and types (conform), no nulls where a value
    belongs and no repeated id (check_rows)."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{kind}: {path} {absent(path)}")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several types for a corrupt file
        raise SchemaError(f"{kind}: {path} is not a readable parquet file: {brief(e)}") from None
    df = conform(df, kind, str(path))
    check_rows(df, kind, str(path))
    return df


def write_text(text: str, path: str | Path) -> None:
    """Atomic text write (metrics, reports)."""
    path = Path(path)
    try:
        _write_bytes(text.encode("utf-8"), path)
    except OSError as e:
        raise _write_failed(path, e) from None


def _finite(obj):
    """NaN and infinities as null: JSON has no such numbers (json.dumps would write `NaN`, which no JSON
    parser outside Python reads)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(obj: dict, path: str | Path) -> None:
    """Atomic JSON write (metrics, reports, lineage); a non-finite number is written as null."""
    write_text(json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False) + "\n", path)


class RepeatedKey(ValueError):
    """A JSON object with one key twice (unique_keys); args[0] is the key."""


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json.loads' object_pairs_hook: a key given twice in one object is an error (json keeps the last one)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise RepeatedKey(key)
        out[key] = value
    return out


def read_json(
    path: str | Path, rev: str | None = None, repo: str | None = None, missing_ok: bool = True
) -> dict | None:
    """A small JSON object (metrics, lineage, validation verdict) in the workspace, or at a git revision through
    DVC; None when absent (unless missing_ok is false); invalid JSON or another value than an object is an
    error naming the file."""
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
        obj = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise SrlmError(f"error: {path}: not valid JSON ({e})") from None
    except RepeatedKey as e:
        raise SrlmError(f"error: {path}: key {e.args[0]!r} appears twice in one object") from None
    if not isinstance(obj, dict):  # every JSON file srlm reads is an object; `[]` must not end in a traceback
        raise SrlmError(f"error: {path}: expected a JSON object ({{...}}), got {type(obj).__name__}")
    return obj


def _new_dir_beside(path: Path) -> Path:
    """A new empty folder `.<name>.<random>` beside `path`, 0777 less the umask (mkdtemp would give 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; a folder already at `out` is moved aside first and deleted only once the new
    one is in place, so a failed swap leaves the old folder whole."""
    if not tmp.is_dir() or not out.exists():
        os.replace(tmp, out)
        return
    if not out.is_dir():  # never replace a user's file with a folder
        raise NotADirectoryError(errno.ENOTDIR, f"{out} is a file, not a folder")
    old = out.with_name(f".{out.name}.{secrets.token_hex(4)}.old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    _remove(old)


class _Outputs:
    """A stage's outputs, written to temporary names and renamed into place together (all_or_none)."""

    def __init__(self, paths: list[Path]):
        self.held: dict[Path, Path | None] = {p: None for p in paths}  # absolute target -> its temporary

    def hold(self, tmp: Path, target: Path) -> None:
        old = self.held[target]
        if old is not None:  # written twice: the last one counts
            _remove(old)
        self.held[target] = tmp

    def settle(self, ok: bool) -> None:
        _open.remove(self)
        pending = [(tmp, target) for target, tmp in self.held.items() if tmp is not None]
        done = 0
        try:
            for tmp, target in pending if ok else []:
                try:
                    _swap(tmp, target)
                except OSError as e:
                    raise _write_failed(target, e) from None
                done += 1
        finally:
            for tmp, _ in pending[done:]:
                _remove(tmp)


_open: list[_Outputs] = []  # all_or_none sets of the running stage mains


def all_or_none(*paths: str | Path | None) -> None:
    """Make the running stage's outputs appear together: from now on `write`, `write_json`, `write_text` and
    `atomic_dir` to any of `paths` (None is skipped) write a temporary file beside it, and all of them are
    renamed into place only when the stage's @entry main returns. If it raises, they are deleted, and the
    previous files (if any) are left as they were: never a new ift.parquet beside an old or missing
    eft.parquet. (The renames themselves are one system call each, not one for all.)"""
    batch = _Outputs([Path(p).absolute() for p in paths if p is not None])
    errors.on_finish(batch.settle)
    _open.append(batch)


def _batch(path: Path) -> _Outputs | None:
    target = path.absolute()
    return next((b for b in _open if target in b.held), None)


def _place(tmp: Path, path: Path) -> None:
    """Put a finished temporary at `path` now, or hand it to the all_or_none set that holds `path`."""
    batch = _batch(path)
    if batch is None:
        _swap(tmp, path)
    else:
        batch.hold(tmp, path.absolute())


def current(path: str | Path) -> Path:
    """Where the bytes of `path` are right now: its temporary while all_or_none holds it back (the lineage
    record hashes a dataset before it is renamed into place), else `path`."""
    batch = _batch(Path(path))
    tmp = batch.held[Path(path).absolute()] if batch else None
    return tmp if tmp is not None else Path(path)


@contextlib.contextmanager
def atomic_dir(out: str | Path):
    """Fill a temporary folder beside `out`, then swap it in: `out` is the old folder or the whole new one,
    never a half-written one (model folders, the release folder)."""
    out = Path(out)
    tmp = None
    try:
        tmp = _new_dir_beside(out)
        yield tmp
        _place(tmp, out)
        tmp = None
    except OSError as e:
        raise _write_failed(out, e) from None
    finally:
        if tmp is not None:
            _remove(tmp)
