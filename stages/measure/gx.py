"""Great Expectations plumbing for validate@t: the suites in validations/ run on the frames of stages/measure/quality.py.

Three custom expectations cover corpus-level aggregates GX lacks: `expect_column_distinct_n_to_be_between`
(distinct-n on a seeded sample), `expect_column_max_value_share_to_be_between` (share of the most common
value) and `expect_column_true_share_lower_bound_to_be_between` (the lower end of the 95% Wilson interval of
a share, so a rate threshold is not failed by chance on a few rows). Thresholds reach the suites as GX suite
parameters (`{"$PARAMETER": "min_pairs"}`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional, Union

from stages.core import rows
from stages.core.errors import SrlmError
from stages.measure.metrics import rounded
from stages.measure.quality import distinct_n, sample_index
from stages.measure.stats import wilson_interval

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
from great_expectations.core import ExpectationSuite  # noqa: E402
from great_expectations.core.suite_parameters import SuiteParameterDict  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import ColumnAggregateExpectation  # noqa: E402
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (  # noqa: E402
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)

SUITES = Path(__file__).resolve().parents[2] / "validations"


Bound = Optional[Union[float, SuiteParameterDict]]


class ColumnDistinctN(ColumnAggregateMetricProvider):
    metric_name = "column.distinct_n"
    value_keys = ("n", "sample_size")

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, n=2, sample_size=2000, **kwargs):
        values = column.dropna().tolist()
        return distinct_n([values[i] for i in sample_index(len(values), int(sample_size))], int(n))


class ExpectColumnDistinctNToBeBetween(ColumnAggregateExpectation):
    """Expect distinct-n (distinct n-grams / all n-grams, lowercased words) of a text column,
    on a seeded sample of at most `sample_size` non-null values, to be between min and max."""

    n: Union[int, SuiteParameterDict] = 2
    sample_size: Union[int, SuiteParameterDict] = 2000
    min_value: Bound = None
    max_value: Bound = None
    metric_dependencies = ("column.distinct_n",)
    success_keys = ("n", "sample_size", "min_value", "max_value")
    args_keys = ("column", "n", "min_value", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        return self._validate_metric_value_between(
            metric_name="column.distinct_n",
            metrics=metrics,
            runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )


class ColumnMaxValueShare(ColumnAggregateMetricProvider):
    metric_name = "column.max_value_share"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        values = column.dropna()
        return float(values.value_counts(normalize=True).max()) if len(values) else None


class ExpectColumnMaxValueShareToBeBetween(ColumnAggregateExpectation):
    """Expect the share of the most common non-null value of a column to be between min and max
    (e.g. no single judge score holds more than 90% of the grades)."""

    min_value: Bound = None
    max_value: Bound = None
    metric_dependencies = ("column.max_value_share",)
    success_keys = ("min_value", "max_value")
    args_keys = ("column", "min_value", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        return self._validate_metric_value_between(
            metric_name="column.max_value_share",
            metrics=metrics,
            runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )


class ColumnTrueShareLowerBound(ColumnAggregateMetricProvider):
    metric_name = "column.true_share_lower_bound"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        values = column.dropna().astype(bool)
        return round(wilson_interval(int(values.sum()), len(values))[0], 4) if len(values) else None


class ExpectColumnTrueShareLowerBoundToBeBetween(ColumnAggregateExpectation):
    """Expect the lower end of the 95% Wilson interval of the share of true values of a boolean column to be
    between min and max: a maximum rate that only fails when the rows show it is exceeded beyond chance
    (e.g. 6 of 6 pairs with the longer answer chosen: lower end 0.61; 317 of 360: 0.84)."""

    min_value: Bound = None
    max_value: Bound = None
    metric_dependencies = ("column.true_share_lower_bound",)
    success_keys = ("min_value", "max_value")
    args_keys = ("column", "min_value", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        return self._validate_metric_value_between(
            metric_name="column.true_share_lower_bound",
            metrics=metrics,
            runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )


def load_suite(kind: str, folder: Path = SUITES) -> dict:
    """The suite JSON of `kind`; every expectation must carry a unique `meta.check` name."""
    path = folder / f"{kind}.json"
    suite = rows.read_json(path, missing_ok=False)
    names = [e.get("meta", {}).get("check") for e in suite["expectations"]]
    if None in names or len(set(names)) != len(names):
        raise SrlmError(f"error: {path}: every expectation needs a unique meta.check name (got {names})")
    return suite


def suite_parameters(suite: dict) -> set[str]:
    """Names used by the suite's `$PARAMETER` expressions (e.g. "1 - max_near_dup_rate" -> max_near_dup_rate)."""
    names: set[str] = set()
    for e in suite["expectations"]:
        for v in e["kwargs"].values():
            if isinstance(v, dict) and "$PARAMETER" in v:
                names.update(re.findall(r"[A-Za-z_]\w*", v["$PARAMETER"]))
    return names


def context():
    cfg = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=cfg)


def run_suite(ctx, kind: str, frame, suite: dict, parameters: dict[str, Any]) -> list[dict]:
    """Validate `frame` with `suite` (a GX suite JSON dict); one check record per expectation."""
    asset = ctx.data_sources.add_pandas(f"srlm-{kind}").add_dataframe_asset(kind)
    gx_suite = ctx.suites.add(ExpectationSuite(**suite))
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=kind, data=asset.add_batch_definition_whole_dataframe("all"), suite=gx_suite)
    )
    result = vd.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters, result_format="SUMMARY")
    order = {e.get("meta", {}).get("check"): i for i, e in enumerate(suite["expectations"])}
    records = [
        check_record(kind, r, suite["expectations"][order[r.expectation_config.meta.get("check")]])
        for r in result.results
    ]
    return sorted(records, key=lambda c: order[c["check"]])


def check_record(kind: str, r, raw: dict) -> dict:
    """One flat record of a GX result: what was checked, observed value, threshold, knobs."""
    cfg = r.expectation_config
    kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    res = r.result or {}
    is_map = res.get("element_count") is not None and "observed_value" not in res
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed = f"error: {r.exception_info.get('exception_message')}"
    elif is_map:  # map expectation: the observed value is the share of non-null rows that break the rule
        pct = res.get("unexpected_percent")
        observed = round(pct / 100, 4) if pct is not None else 0.0
    else:
        observed = rounded(res.get("observed_value"))
    bounds = bounds_text(kw)
    params = sorted(
        re.findall(
            r"[A-Za-z_]\w*",
            " ".join(
                v["$PARAMETER"] for v in raw.get("kwargs", {}).values() if isinstance(v, dict) and "$PARAMETER" in v
            ),
        )
    )
    return {
        "dataset": kind,
        "check": cfg.meta.get("check", cfg.type),
        "expectation": cfg.type,
        "column": kw.get("column"),
        "observed": observed,
        "threshold": f"<= {round(1 - float(kw.get('mostly', 1)), 4)}" if is_map else bounds,
        "rule": f"values {bounds}" if is_map else None,
        "passed": bool(r.success),
        "params": params,
        "examples": [rounded(v) for v in res.get("partial_unexpected_list", [])[:3]],
        "description": cfg.meta.get("description", ""),
        "hint": cfg.meta.get("hint", ""),
    }


def bounds_text(kw: dict) -> str:
    parts = []
    if kw.get("min_value") is not None:
        parts.append(f"{'>' if kw.get('strict_min') else '>='} {kw['min_value']}")
    if kw.get("max_value") is not None:
        parts.append(f"{'<' if kw.get('strict_max') else '<='} {kw['max_value']}")
    if "value_set" in kw:
        parts.append(f"in {kw['value_set']}")
    return " and ".join(parts) or "not null"
