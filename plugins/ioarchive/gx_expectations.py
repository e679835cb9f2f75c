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

import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_EXAMPLES = 20
"""Offending row keys kept per expectation in results, Data Docs and summary.json."""

from ioarchive.quality_identifiers import TOKEN_SPLIT_RE  # noqa: E402 - one definition

log = logging.getLogger(__name__)

_QUERY_RESULTS: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("ioarchive_query_results", default=None)
"""Offending-rows results of the current batch, keyed by query text (see ``shared_query_results``)."""


@contextmanager
def shared_query_results() -> Iterator[dict[str, dict[str, Any]]]:
    """Within this block, each offending-rows query is computed at most once.

    The block must cover ONE batch (one DataFrame): results are keyed by query text only. The
    gate validates a suite in two passes (pass/fail first, details for what failed); without
    this the second pass would rerun the leak query over every post.
    """
    memo: dict[str, dict[str, Any]] = {}
    token = _QUERY_RESULTS.set(memo)
    try:
        yield memo
    finally:
        _QUERY_RESULTS.reset(token)


def prefetch_offending_rows(df: DataFrame, queries: Iterable[str]) -> int:
    """Compute the offending-rows queries of one batch as ONE Spark job, into the current memo.

    Spark's per-job overhead (a few tenths of a second) times the 43 query expectations of the
    suites is most of the gate's time on a small release; each query still reads its tables.
    Returns how many queries were computed; 0 outside ``shared_query_results`` or when the
    combined query fails (logged at debug), in which case every expectation computes (and
    reports the error of) its own query.
    """
    memo = _QUERY_RESULTS.get()
    if memo is None:
        return 0
    todo = list(dict.fromkeys(q for q in queries if q not in memo))
    if not todo:
        return 0
    try:
        memo.update(offending_rows(df, todo))
    except Exception as exc:  # noqa: BLE001 - each expectation reruns its own query and reports its error
        log.debug("combined offending-rows query failed (%s); expectations run one query each", exc)
        return 0
    return len(todo)


def offending_rows(df: DataFrame, queries: list[str]) -> dict[str, dict[str, Any]]:
    """``{query: {"count": total rows, "rows": first MAX_EXAMPLES rows}}`` in one Spark job.

    Each query's rows are serialized to JSON (null fields kept) so queries of any shape fit one
    ``UNION ALL``; rows are ordered by that JSON text (the row key comes first), so examples are
    deterministic. Count and examples come from the same execution: the stock
    ``unexpected_rows_query`` metrics run a query twice (rows, then count).
    """
    spark = df.sparkSession
    view = f"ioarchive_batch_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    branches = " UNION ALL ".join(
        f"SELECT {i} AS __q, to_json(struct(*), map('ignoreNullFields', 'false')) AS __row "
        f"FROM ({expand_leak_prefilter(spark, OffendingRowsSummary._format_query(q, batch=view))})"
        for i, q in enumerate(queries)
    )
    combined = (
        "SELECT __q, __row, __total FROM ("
        " SELECT __q, __row, count(1) OVER (PARTITION BY __q) AS __total,"
        " row_number() OVER (PARTITION BY __q ORDER BY __row) AS __rn"
        f" FROM ({branches})"
        f") WHERE __rn <= {MAX_EXAMPLES}"
    )
    try:
        rows = spark.sql(combined).collect()
    finally:
        spark.catalog.dropTempView(view)
    results: dict[str, dict[str, Any]] = {q: {"count": 0, "rows": []} for q in queries}
    for row in sorted(rows, key=lambda r: (r["__q"], r["__row"])):
        entry = results[queries[row["__q"]]]
        entry["count"] = int(row["__total"])
        entry["rows"].append(json.loads(row["__row"]))
    return results


class OffendingRowsSummary(QueryMetricProvider):
    """Count and first rows of a query in ONE Spark execution (see ``offending_rows``)."""

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
        memo = _QUERY_RESULTS.get()
        if memo is not None and query in memo:
            return memo[query]
        df, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        result = offending_rows(df, [query])[query]
        if memo is not None:
            memo[query] = result
        return result


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

    The values of every column of every row are joined with ``concat_ws(' ', *)`` (list columns
    element by element, other types as their string form, post text as it is), lower-cased and
    split into positioned tokens, and the tokens are joined (broadcast) against the identifier tokens of the view ``identifier_view`` with columns
    ``identifier_id, kind, pos, n_tokens, token``. A row leaks an identifier when all its
    ``n_tokens`` tokens appear at consecutive positions: single-token identifiers (numeric ids,
    screen names, case-insensitive) are plain token matches; display names are whole token
    sequences (see docs/decisions.md, "Leak check: token sequences"). Joined values instead of
    ``to_json(struct(*))``: no key names and no escapes to tokenize, 45 M instead of 73 M tokens
    on 1 M posts (measured, 40 s instead of 66 s); the price is that a display name could match
    across two adjacent values, which fails closed. Only rows holding the first token of some
    identifier are exploded and joined (see ``leak_query``).

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


PREFILTER_MARKER = "/*ioarchive:leak_prefilter:{view}*/ TRUE"
"""Placeholder in ``leak_query`` that ``expand_leak_prefilter`` replaces, at run time, by the
identifier tokens as a literal set. Left in place (an external caller formatting the query
itself) it reads ``TRUE``: every row goes through the exact join, same result, slower."""

PREFILTER_MAX_TOKENS = 200_000
"""Above this many distinct prefilter tokens the literal set is not built (SQL text of several
MB); the query then runs without a prefilter (exact, slower)."""

_PREFILTER_RE = re.compile(r"/\*ioarchive:leak_prefilter:([A-Za-z0-9_.`]+)\*/ TRUE")


def leak_query(row_key: str, identifier_view: str) -> str:
    """Spark SQL finding rows of ``{batch}`` that contain a raw identifier token sequence.

    Two stages, because almost every row is clean and exploding every row into positioned
    tokens (45 M rows for 1 M posts) only to find no match is wasted work:

    1. prefilter: each row's token array is kept only if one of its tokens is the *key token*
       (``pos = 0``) of some identifier sequence. A sequence can only match where its first
       token occurs, so this drops no leak; the test is a hash lookup per token (Spark turns a
       literal ``IN`` list into a hash set), not a join.
    2. exact: the candidate rows are exploded and joined as before (all tokens at consecutive
       positions, ``count(DISTINCT id_pos) = n_tokens``).

    Both stages tokenize with the same expression, so the prefilter cannot disagree with the
    exact match about what a token is. Measured on 200k generated posts: about 10% of rows pass
    the prefilter (display names starting with common first names); the query then costs little
    more than tokenizing every row (``split(lower(...))``, which both versions do), a few
    percent less than the unfiltered query. Braces other than ``{batch}`` are doubled (GX formats the
    query with ``str.format``).
    """
    split = TOKEN_SPLIT_RE.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}")
    prefilter = PREFILTER_MARKER.format(view=identifier_view)
    return f"""
WITH rows AS (
  SELECT CAST(`{row_key}` AS STRING) AS row_key,
         split(lower(concat_ws(' ', *)), '{split}') AS toks
  FROM {{batch}}
),
candidates AS (
  SELECT row_key, toks FROM rows WHERE {prefilter}
),
tokens AS (
  SELECT row_key, t.pos AS pos, t.token AS token
  FROM candidates LATERAL VIEW posexplode(toks) t AS pos, token
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


def expand_leak_prefilter(spark: SparkSession, query: str) -> str:
    """Replace each prefilter placeholder of ``query`` by ``exists(toks, t -> t IN (...))``.

    The literal list holds the distinct first tokens (``pos = 0``) of the named identifier
    view, read now (the view is rebuilt per run, so the suite file cannot carry them). An empty
    view gives ``FALSE`` (nothing can leak); a view too large for a literal keeps ``TRUE``.
    Tokens are runs of letters, digits and ``_`` and cannot hold a quote; they are escaped
    anyway. Only the count is logged, never a token.
    """

    def literal_set(match: re.Match[str]) -> str:
        view = match.group(1)
        first = sorted(
            {r[0] for r in spark.sql(f"SELECT DISTINCT token FROM {view} WHERE pos = 0").collect() if r[0]}
        )
        log.debug("leak prefilter over %d key tokens of %s", len(first), view)
        if not first:
            return "FALSE"
        if len(first) > PREFILTER_MAX_TOKENS:
            return "TRUE"
        values = ", ".join("'" + t.replace("\\", "\\\\").replace("'", "\\'") + "'" for t in first)
        return f"exists(toks, t -> t IN ({values}))"

    return _PREFILTER_RE.sub(literal_set, query)


def _jsonable(row: Any) -> Any:
    """Rows from Spark may hold dates/decimals; keep results JSON-serializable for the stores."""
    if isinstance(row, dict):
        return {k: _jsonable(v) for k, v in row.items()}
    if isinstance(row, (list, tuple)):
        return [_jsonable(v) for v in row]
    if row is None or isinstance(row, (str, int, float, bool)):
        return row
    return str(row)
