import json

import polars as pl
import pytest

from stages import seed
from stages.core import params as P
from stages.core import rows
from stages.core.errors import SrlmError
from stages.judging.scoring import parse_score

from .conftest import ROOT, SHARED_DATA


def src(path, fmt="jsonl", **kw):
    return P.Source(path=str(path), format=fmt, **kw)


def write_lines(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


def test_shipped_seed_sets_are_large_and_varied_enough():
    ift = seed.build([src(ROOT / "data/seed/ift.jsonl")], "ift")
    eft = seed.build([src(ROOT / "data/seed/eft.jsonl")], "eft")
    assert len(ift) >= 40 and len(eft) >= 20
    assert set(eft["score"].to_list()) == {0, 1, 2, 3, 4, 5}
    assert ift["id"].n_unique() == len(ift)
    # every EFT target is a justification that ends in a parseable score equal to the label
    assert all(parse_score(j) == s for j, s in zip(eft["judgment"], eft["score"]))


def test_invalid_json_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['{"instruction": "a", "response": "b"}', '{"instruction": oops}'])
    with pytest.raises(SrlmError, match=r"bad.jsonl:2: invalid JSON"):
        seed.build([src(path)], "ift")


def test_non_utf8_names_file_and_line(tmp_path):
    path = write_lines(
        tmp_path / "latin.jsonl", ['{"instruction": "a", "response": "b"}', b'{"instruction": "caf\xe9"}']
    )
    with pytest.raises(SrlmError, match=r"latin.jsonl:2: not UTF-8"):
        seed.build([src(path)], "ift")


def test_missing_column_is_named(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", ['{"instruction": "a", "answer": "b"}'])
    with pytest.raises(SrlmError, match=r"missing column\(s\) \['response'\]"):
        seed.build([src(path)], "ift")


def test_empty_and_missing_sources(tmp_path):
    empty = write_lines(tmp_path / "e.jsonl", [""])
    with pytest.raises(SrlmError, match="is empty"):
        seed.build([src(empty)], "ift")
    with pytest.raises(SrlmError, match="does not exist"):
        seed.build([src(tmp_path / "none.jsonl")], "ift")
    assert seed.build([src(tmp_path / "none.jsonl", optional=True)], "ift").is_empty()


def test_eft_score_out_of_range(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", [json.dumps({"instruction": "a", "response": "b", "score": 9})])
    with pytest.raises(SrlmError, match="score must be an integer 0..5"):
        seed.build([src(path)], "eft")


def test_ranked_answers_map_best_to_5_and_worst_to_1(tmp_path):
    lines = [
        json.dumps({"question": q, "answer": f"{q}{r}", "rank": r})
        for q, n in (("q1", 3), ("q2", 2), ("q3", 1))
        for r in range(n)
    ]
    # a gap in ranks (0, 2) is re-counted within the answers present
    lines.append(json.dumps({"question": "q4", "answer": "x", "rank": 0}))
    lines.append(json.dumps({"question": "q4", "answer": "y", "rank": 2}))
    path = write_lines(tmp_path / "r.jsonl", lines)
    eft = seed.build([src(path, "ranked")], "eft")
    got = dict(zip(eft["response"], eft["score"]))
    # q3 has a lone answer: no rank to learn from, so no EFT row (it still serves as IFT)
    assert got == {"q10": 5, "q11": 3, "q12": 1, "q20": 5, "q21": 1, "x": 5, "y": 1}
    ift = seed.build([src(path, "ranked")], "ift")
    assert sorted(ift["response"]) == ["q10", "q20", "q30", "x"]


def test_quality_labels_map_to_0_5(tmp_path):
    lines = [
        json.dumps({"prompt_text": "p", "response_text": f"r{q}", "quality_score": q}) for q in (0.0, 0.5, 1.0, None)
    ]
    eft = seed.build([src(write_lines(tmp_path / "q.jsonl", lines), "quality")], "eft")
    # an unlabelled answer (null quality) is dropped, never given a made-up grade
    assert dict(zip(eft["response"], eft["score"])) == {"r0.0": 0, "r0.5": 2, "r1.0": 5}
    assert all(j.startswith(f"Score: {s}\n") for j, s in zip(eft["judgment"], eft["score"]))


def test_duplicates_are_dropped_by_content_id(tmp_path):
    line = '{"instruction": "a", "response": "b"}'
    ift = seed.build([src(write_lines(tmp_path / "d.jsonl", [line, line]))], "ift")
    assert len(ift) == 1 and ift["id"][0] == rows.content_id("a", "b")


needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data not present")


@needs_shared
def test_oasst_tree_converter_on_real_oasst1_validation():
    path = SHARED_DATA / "oasst1_en_validation/oasst1_en_validation_messages.jsonl"
    ift = seed.build([src(path, "oasst_tree")], "ift")
    eft = seed.build([src(path, "oasst_tree")], "eft")
    msgs = pl.read_ndjson(path, infer_schema_length=None)
    roots = msgs.filter(pl.col("parent_id").is_null() & (pl.col("lang") == "en"))
    assert 0 < len(ift) <= len(roots)
    assert set(ift["instruction"]) <= set(roots["text"])
    # IFT keeps the best-ranked English reply to each root prompt
    replies = msgs.filter(
        (pl.col("role") == "assistant")
        & pl.col("rank").is_not_null()
        & (pl.col("lang") == "en")
        & pl.col("parent_id").is_in(roots["message_id"].implode())
    )
    best = replies.sort("rank").group_by("parent_id", maintain_order=True).first()["text"]
    assert set(ift["response"]) == set(best)
    assert len(eft) > len(ift) and set(eft["score"].unique()) >= {1, 5}


@needs_shared
def test_real_ranked_and_quality_files_convert():
    eft = seed.build(
        [
            src(SHARED_DATA / "oasst2_en/andriswillow_oasst2_en_firstturn_ranked.jsonl", "ranked", limit=300),
            src(SHARED_DATA / "oasst2_en/raulc0399_oasst2_en_firstturn_quality.jsonl", "quality", limit=300),
        ],
        "eft",
    )
    assert 300 < len(eft) <= 600
    assert eft["score"].min() >= 0 and eft["score"].max() <= 5
    ift = seed.build([src(SHARED_DATA / "oasst2_en/ift_oasst2_en_top1.jsonl", limit=50)], "ift")
    assert len(ift) == 50
