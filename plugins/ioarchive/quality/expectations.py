"""Custom Great Expectations expectations of the data-quality gate (RELEASE_SPEC section 7.3).

Importing this module registers the expectation types used by the suite files in
``expectations/``; only ``ioarchive.quality.runner`` imports it, at validation time (GX is heavy).

- ``expect_no_offending_rows``: an ``UnexpectedRowsExpectation`` whose query selects the *keys*
  of offending rows (never their values). Unlike the stock expectation it returns a few of those
  keys at the ``SUMMARY`` result format too, so the reviewer sees which rows to look at without
  asking GX for ``COMPLETE`` results (which would list every unexpected value of every column
  expectation on a million-row table).
- ``expect_no_raw_identifier_leak``: no raw identifier (userid, screen name, display name) of a
  pseudonymized account appears in any value of any column of a hashed table. It reads the
  identifiers from a Spark temp view prepared by ``ioarchive.quality.runner`` and reports only the
  batch's row keys and the identifier kind, never the identifier.
"""

from __future__ import annotations

import json
import logging
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
    from pyspark.sql import DataFrame

MAX_EXAMPLES = 20
"""Offending row keys kept per expectation in results, Data Docs and summary.json."""

from ioarchive.quality.identifiers import TOKEN_RE  # noqa: E402 - one definition

log = logging.getLogger(__name__)

_QUERY_RESULTS: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("ioarchive_query_results", default=None)
"""Offending-rows results of the current batch, keyed by query text (see ``shared_query_results``)."""


@contextmanager
def shared_query_results() -> Iterator[dict[str, dict[str, Any]]]:
    """Within this block, each offending-rows query is computed at most once.

    The block must cover ONE batch (one DataFrame): results are keyed by query text only. The
    gate validates a suite in two passes (pass/fail first, details for what failed); without
    this the second pass would rerun the leak query over every post. The gate seeds the memo
    with the results of ``offending_rows`` computed ahead in a worker thread.
    """
    memo: dict[str, dict[str, Any]] = {}
    token = _QUERY_RESULTS.set(memo)
    try:
        yield memo
    finally:
        _QUERY_RESULTS.reset(token)


def offending_rows(df: DataFrame, queries: list[str]) -> dict[str, dict[str, Any]]:
    """``{query: {"count": total rows, "rows": first MAX_EXAMPLES rows}}`` in one Spark job.

    Each query's rows are serialized to JSON (null fields kept) so queries of any shape fit one
    ``UNION ALL``; rows are ordered by that JSON text (the row key comes first), so examples are
    deterministic. Count and examples come from the same execution: the stock
    ``unexpected_rows_query`` metrics run a query twice (rows, then count).

    Pure Spark, no GX call: the gate runs it in worker threads while GX (not thread-safe)
    validates another suite in the main thread. ``{batch}`` is substituted as GX does
    (``str.format``, braces of the query doubled).
    """
    spark = df.sparkSession
    view = f"ioarchive_batch_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    branches = " UNION ALL ".join(
        f"SELECT {i} AS __q, to_json(struct(*), map('ignoreNullFields', 'false')) AS __row "
        f"FROM ({_format_query(q, view)})"
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


def _format_query(query: str, view: str) -> str:
    try:
        return query.format(batch=view)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"offending-rows query does not format ({exc}); double its literal braces: {query}") from None


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

    The values of every column of a row are joined with ``concat_ws(' ', ...)`` (list columns
    element by element, other types as their string form, post text as it is), lower-cased and
    cut into tokens; a row leaks an identifier of the view ``identifier_view`` (columns
    ``identifier_id, kind, pos, n_tokens, token``) when its whole token sequence appears at
    consecutive positions: single-token identifiers (numeric ids, screen names,
    case-insensitive) are plain token matches; display names are whole token sequences (see
    docs/decisions.md, "Leak check: token sequences"). Joined values instead of
    ``to_json(struct(*))``: no key names and no escapes to tokenize (measured, 40 s instead of
    66 s); the price is that a display name could match across two adjacent values, which fails
    closed. See ``leak_query``.

    ``column_groups`` names columns whose values repeat across rows (the account columns of
    every post): each distinct combination of a group is scanned once and its leaks are joined
    back to the rows that carry it. Which columns are grouped changes the speed, never the
    result, except that a display name split across a grouped and an ungrouped value is no
    longer matched (values are joined per group; the spec asks for identifiers *in a value*).

    The query returns ``row_key`` (redacted when the key is itself a raw identifier) and
    ``kind``; never the identifier.
    """

    row_key: str = pydantic.Field(description="Column naming the offending row (e.g. tweetid).")
    identifier_view: str = pydantic.Field(
        description="Spark temp view of raw identifiers: identifier_id, kind, pos, n_tokens, token."
    )
    column_groups: list[list[str]] = pydantic.Field(
        default_factory=list,
        description="Groups of columns whose values repeat across rows; each distinct combination is scanned once.",
    )
    unexpected_rows_query: str | SuiteParameterDict = pydantic.Field(default="")

    success_keys: ClassVar[tuple[str, ...]] = ("unexpected_rows_query", "row_key", "identifier_view", "column_groups")

    @pydantic.root_validator(pre=True)
    def _build_query(cls, values: dict) -> dict:  # noqa: N805 - pydantic validator signature
        if not values.get("unexpected_rows_query"):
            values["unexpected_rows_query"] = leak_query(
                values["row_key"], values["identifier_view"], values.get("column_groups") or ()
            )
        return values


def leak_query(row_key: str, identifier_view: str, column_groups: Iterable[Iterable[str]] = ()) -> str:
    """Spark SQL finding rows of ``{batch}`` that contain a raw identifier token sequence.

    Each row's values are tokenized once (``regexp_extract_all``, whose pattern Spark compiles
    once per task; ``split`` on the complement compiled it again for every row). Every token is
    then looked up (broadcast hash join) among the *first* tokens of the identifier sequences:
    a sequence can only match where its first token is, and almost no token is one. Each hit is
    kept when the row's tokens from there on equal the whole sequence.

    Columns of a ``column_groups`` entry are left out of the row scan; the distinct
    combinations of the group are scanned the same way (as a struct key) and the keys found
    are joined back to the batch. On 1 M generated posts (1 800 accounts) the ten account
    columns are 47 % of the bytes to tokenize but only 1 800 distinct combinations.

    The explode is ``OUTER`` on purpose: for a plain explode Spark infers a ``size(toks) > 0``
    filter, pushes it below the projection and so tokenizes every row twice. Measured on 1 M
    generated posts (2 cores): this query 21.9 s, of which tokenizing is 16.7 s; the previous
    form (a key-token prefilter in a lambda, then every token of the ~11% of rows holding a
    common first name exploded, joined against every identifier token and grouped) 29 s.
    Braces other than ``{batch}`` are doubled (GX formats the query with ``str.format``).
    """
    token = TOKEN_RE.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}")
    groups = [list(g) for g in column_groups if g]
    grouped = [c for g in groups for c in g]

    def cols(names: Iterable[str], prefix: str = "") -> str:
        return ", ".join(f"{prefix}`{c}`" for c in names)

    def tokens(values: str) -> str:
        return f"regexp_extract_all(lower(concat_ws(' ', {values})), '{token}', 0)"

    def matches(source: str, key: str) -> str:
        return (
            f"SELECT /*+ BROADCAST(s) */ t.{key}, s.kind\n"
            f"  FROM (SELECT {key}, toks, e.pos, e.token FROM {source}"
            f" LATERAL VIEW OUTER posexplode(toks) e AS pos, token) t\n"
            f"  JOIN sequences s ON t.token = s.seq[0]\n"
            f"  WHERE slice(t.toks, t.pos + 1, s.n_tokens) = s.seq"
        )

    row_values = f"* EXCEPT ({cols(grouped)})" if grouped else "*"
    ctes = [
        f"sequences AS (\n  SELECT kind, n_tokens, transform(array_sort(collect_list(struct(pos, token))), x -> x.token) AS seq\n"
        f"  FROM {identifier_view} GROUP BY identifier_id, kind, n_tokens\n)",
        f"rows AS (\n  SELECT CAST(`{row_key}` AS STRING) AS row_key, {tokens(row_values)} AS toks\n  FROM {{batch}}\n)",
    ]
    leaks = [matches("rows", "row_key")]
    for i, group in enumerate(groups):
        ctes.append(
            f"group{i} AS (\n  SELECT struct({cols(group)}) AS group_key, {tokens(cols(group))} AS toks\n"
            f"  FROM (SELECT DISTINCT {cols(group)} FROM {{batch}})\n)"
        )
        ctes.append(f"group{i}_leaks AS (\n  {matches(f'group{i}', 'group_key')}\n)")
        leaks.append(
            f"SELECT CAST(b.`{row_key}` AS STRING) AS row_key, g.kind FROM {{batch}} b\n"
            f"  JOIN group{i}_leaks g ON struct({cols(group, 'b.')}) = g.group_key"
        )
    ctes.append("leaks AS (\n" + "\nUNION ALL\n".join(leaks) + "\n)")
    ctes.append(f"raw_keys AS (SELECT DISTINCT token FROM {identifier_view} WHERE n_tokens = 1)")
    return (
        "WITH " + ",\n".join(ctes) + "\n"
        "SELECT DISTINCT CASE WHEN raw_keys.token IS NULL THEN leaks.row_key\n"
        "                     ELSE '[raw identifier redacted]' END AS row_key,\n"
        "       leaks.kind\n"
        "FROM leaks LEFT JOIN raw_keys ON lower(leaks.row_key) = raw_keys.token"
    )  # no trailing newline: GX strips the query's whitespace, and the gate's prefetch is keyed by its text


def _jsonable(row: Any) -> Any:
    """Rows from Spark may hold dates/decimals; keep results JSON-serializable for the stores."""
    if isinstance(row, dict):
        return {k: _jsonable(v) for k, v in row.items()}
    if isinstance(row, (list, tuple)):
        return [_jsonable(v) for v in row]
    if row is None or isinstance(row, (str, int, float, bool)):
        return row
    return str(row)
