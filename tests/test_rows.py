import polars as pl
import pytest

from stages.core import rows


def prompt_rows(n=3):
    return [
        {
            "id": rows.content_id(f"p{i}"),
            "prompt": f"p{i}",
            "fewshot_ids": ["a", "b"],
            "constraints": [],
            "iteration": 1,
            "model": "m",
            "seed": 7,
        }
        for i in range(n)
    ]


def test_content_id_is_stable_and_order_sensitive():
    assert rows.content_id("a", 1) == rows.content_id("a", 1)
    assert rows.content_id("a", 1) != rows.content_id(1, "a")
    assert len(rows.content_id("x")) == 16
    assert rows.derive_seed(0, "judge", 1) == rows.derive_seed(0, "judge", 1) != rows.derive_seed(0, "judge", 2)


def test_conform_orders_and_casts_columns():
    df = pl.DataFrame(prompt_rows()).select(
        ["seed", "prompt", "id", "constraints", "fewshot_ids", "iteration", "model"]
    )
    out = rows.conform(df, "prompts")
    assert out.columns == list(rows.SCHEMAS["prompts"])
    assert out.schema["iteration"] == pl.Int32


def test_conform_names_missing_and_extra_columns():
    df = pl.DataFrame(prompt_rows()).drop("model").with_columns(pl.lit(1).alias("oops"))
    with pytest.raises(rows.SchemaError, match=r"missing columns \['model'\], unexpected columns \['oops'\]"):
        rows.conform(df, "prompts")


def test_conform_rejects_wrong_types():
    df = pl.DataFrame(prompt_rows()).with_columns(pl.lit("not a number").alias("seed"))
    with pytest.raises(rows.SchemaError, match="wrong type"):
        rows.conform(df, "prompts")


def test_write_is_byte_identical_and_leaves_no_temp(tmp_path):
    df = rows.frame(prompt_rows(), "prompts")
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    rows.write(df, a, "prompts")
    rows.write(df, b, "prompts")
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]
    assert rows.read(a, "prompts").equals(df)


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "p.parquet"
    rows.write(rows.frame(prompt_rows(), "prompts"), path, "prompts")
    before = path.read_bytes()
    with pytest.raises(rows.SchemaError):
        rows.write(pl.DataFrame({"id": ["x"]}), path, "prompts")
    assert path.read_bytes() == before


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(rows.SchemaError, match="does not exist"):
        rows.read(tmp_path / "none.parquet", "prompts")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(rows.SchemaError, match="bad.parquet is not a readable parquet"):
        rows.read(bad, "prompts")


def test_empty_frames_keep_the_schema():
    df = rows.frame([], "preferences")
    assert df.is_empty() and df.schema == pl.Schema(rows.SCHEMAS["preferences"])


def test_loops_flags_degenerate_repetition_only():
    from stages.judging.text import loops

    sentence = "the cat sat on the mat and looked out of the window"
    assert loops(" ".join([sentence] * 3))  # the same sentence three times: a loop
    assert loops("1. Item one is here now. " + "2. Buy more milk from the corner shop today. " * 4)
    assert not loops(" ".join([sentence] * 2))  # said twice is not a loop
    assert not loops("Step 1: open the box. Step 2: take out the parts. Step 3: read the manual first.")
    assert not loops("") and not loops(None)
