"""Custom Great Expectations expectations of the data-quality gate (RELEASE_SPEC section 7.3).

Importing this module registers the expectation types used by the suite files in
``expectations/``; only ``ioarchive.quality`` imports it, at validation time (GX is heavy).

- ``expect_no_offending_rows``: an ``UnexpectedRowsExpectation`` whose query selects the *keys*
  of offending rows (never their values). Unlike the stock expectation it returns a few of those
  keys at the ``SUMMARY`` result format too, so the reviewer sees which rows to look at without
  asking GX for ``COMPLETE`` results (which would list every unexpected value of every column
  expectation on a million-row table).
- ``expect_no_raw_identifier_leak``: no raw identifier (userid, screen name, display name) of a
  pseudonymized account appears in any value of any column of a hashed table. It reads the
  identifiers from a Spark temp view prepared by ``ioarchive.quality`` and reports only the
  batch's row keys and the identifier kind, never the identifier.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider

MAX_EXAMPLES = 20
"""Offending row keys kept per expectation in results, Data Docs and summary.json."""

from ioarchive.quality_identifiers import TOKEN_SPLIT_RE  # noqa: E402 - one definition


class OffendingRowsSummary(QueryMetricProvider):
    """Count and first rows of a query in ONE Spark execution.

    The stock ``unexpected_rows_query`` metrics run the query twice (rows, then count); on the
    leak query over a million posts that doubles the gate's cost.
    """

    metric_name = "ioarchive_offending_rows.summary"
    value_keys = ("unexpected_rows_query",)
    query_param_name: ClassVar[str] = "unexpected_rows_query"

    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(
        cls,
        execution_engine: SparkDFExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, Any]:
        query = cls._get_query_from_metric_value_kwargs(metric_value_kwargs)
        df, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        view = f"ioarchive_batch_{uuid.uuid4().hex}"
        df.createOrReplaceTempView(view)
        spark = execution_engine.spark
        try:
            formatted = cls._format_query(query, batch=view)
            rows = spark.sql(
                f"SELECT *, count(1) OVER () AS __offending_total FROM ({formatted}) ORDER BY 1 LIMIT {MAX_EXAMPLES}"
            ).collect()
        finally:
            spark.catalog.dropTempView(view)
        total = rows[0]["__offending_total"] if rows else 0
        examples = [{k: v for k, v in r.asDict().items() if k != "__offending_total"} for r in rows]
        return {"count": int(total), "rows": examples}


class ExpectNoOffendingRows(UnexpectedRowsExpectation):
    """The Spark SQL ``unexpected_rows_query`` returns no row; a few returned keys are examples.

    The query must select row keys only (tweetid, media_key, ...), because whatever it selects
    is written to Data Docs and to the reviewer's summary.
    """

    metric_dependencies: ClassVar[tuple[str, ...]] = ("ioarchive_offending_rows.summary",)

    def _validate(
        self,
        metrics: dict,
        runtime_configuration: dict | None = None,
        execution_engine: Any = None,
    ) -> dict:
        summary = metrics["ioarchive_offending_rows.summary"]
        rows, count = summary["rows"], summary["count"]
        return {
            "success": count == 0,
            "result": {
                "observed_value": count,
                "details": {"unexpected_rows": [_jsonable(r) for r in rows[:MAX_EXAMPLES]]},
            },
        }


class ExpectNoRawIdentifierLeak(ExpectNoOffendingRows):
    """No raw identifier of a pseudonymized account appears anywhere in a hashed table.

    Every column of every row is serialized with ``to_json(struct(*))`` (list columns and post
    text included), JSON escapes are blanked so ``\\n`` cannot glue a token to its neighbour,
    the text is lower-cased and split into positioned tokens, and the tokens are joined
    (broadcast) against the identifier tokens of the view ``identifier_view`` with columns
    ``identifier_id, kind, pos, n_tokens, token``. A row leaks an identifier when all its
    ``n_tokens`` tokens appear at consecutive positions: single-token identifiers (numeric ids,
    screen names, case-insensitive) are plain token matches; display names are whole token
    sequences (see docs/decisions.md, "Leak check: token sequences").

    The query returns ``row_key`` (redacted when the key is itself a raw identifier) and
    ``kind``; never the identifier.
    """

    row_key: str = pydantic.Field(description="Column naming the offending row (e.g. tweetid).")
    identifier_view: str = pydantic.Field(
        description="Spark temp view of raw identifiers: identifier_id, kind, pos, n_tokens, token."
    )
    unexpected_rows_query: str | SuiteParameterDict = pydantic.Field(default="")

    success_keys: ClassVar[tuple[str, ...]] = ("unexpected_rows_query", "row_key", "identifier_view")

    @pydantic.root_validator(pre=True)
    def _build_query(cls, values: dict) -> dict:  # noqa: N805 - pydantic validator signature
        if not values.get("unexpected_rows_query"):
            values["unexpected_rows_query"] = leak_query(values["row_key"], values["identifier_view"])
        return values


def leak_query(row_key: str, identifier_view: str) -> str:
    """Spark SQL finding rows of ``{batch}`` that contain a raw identifier token sequence.

    Braces other than ``{batch}`` are doubled (GX formats the query with ``str.format``).
    """
    split = TOKEN_SPLIT_RE.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}")
    return f"""
WITH rows AS (
  SELECT CAST(`{row_key}` AS STRING) AS row_key,
         regexp_replace(to_json(struct(*)), '\\\\\\\\(u[0-9a-fA-F]{{{{4}}}}|.)', ' ') AS text
  FROM {{batch}}
),
tokens AS (
  SELECT row_key, t.pos AS pos, t.token AS token
  FROM rows LATERAL VIEW posexplode(split(lower(text), '{split}')) t AS pos, token
),
hits AS (
  SELECT /*+ BROADCAST(ids) */ tokens.row_key, ids.identifier_id, ids.kind, ids.n_tokens,
         tokens.pos - ids.pos AS start, ids.pos AS id_pos
  FROM tokens JOIN {identifier_view} ids ON tokens.token = ids.token
),
leaks AS (
  SELECT row_key, kind FROM hits
  GROUP BY row_key, identifier_id, kind, n_tokens, start
  HAVING count(DISTINCT id_pos) = n_tokens
),
raw_keys AS (SELECT DISTINCT token FROM {identifier_view} WHERE n_tokens = 1)
SELECT DISTINCT CASE WHEN raw_keys.token IS NULL THEN leaks.row_key
                     ELSE '[raw identifier redacted]' END AS row_key,
       leaks.kind
FROM leaks LEFT JOIN raw_keys ON lower(leaks.row_key) = raw_keys.token
"""


def _jsonable(row: Any) -> Any:
    """Rows from Spark may hold dates/decimals; keep results JSON-serializable for the stores."""
    if isinstance(row, dict):
        return {k: _jsonable(v) for k, v in row.items()}
    if isinstance(row, (list, tuple)):
        return [_jsonable(v) for v in row]
    if row is None or isinstance(row, (str, int, float, bool)):
        return row
    return str(row)
