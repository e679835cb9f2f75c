"""A CSV table proven equal to its Parquet twin is not scanned for leaks a second time.

Both files of a table are written from the same rows (``ioarchive.writers``), so the hashed
CSV's leak scan repeated, over the same text, the Parquet table's scan: the longest step of the
gate (about 20 s each at 1 M posts). Here the two are compared first, cheaply: each parsed CSV
row is written back as its CSV record (every field quoted, ``"`` doubled: an injective
encoding) and each Parquet row rendered by the writers' own ``csv_records`` (CRLF inside a value
read as LF, as Spark's CSV reader returns it); the md5 digests of
the records are summed as two 64-bit halves, with the row count. Equal fingerprints mean the
CSV's values are, as a multiset of rows, exactly the CSV rendering of the Parquet rows (a
different row changes the sums except with probability about 2^-128).

Then every CSV value of a string column IS the Parquet value, already scanned; only the columns
whose CSV text differs from the Parquet text (lists as JSON, times, dates, counts, booleans) are
scanned in the CSV. The CSV suite's leak result is the union of the Parquet table's leaks and
those; the Parquet suite gets the Parquet leaks computed once for both. A leak inside one value
is found exactly as by a full scan; a display name split across two neighbouring columns
(which a full scan reports, failing closed) is looked for within each of the two texts only.
When the fingerprints differ (a corrupted or stale CSV), nothing is shared: the CSV suite scans
its own rows in full, as before, and its other expectations say what differs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ioarchive.quality_data import ReleaseTables

log = logging.getLogger(__name__)

LEAK_EXPECTATION = "expect_no_raw_identifier_leak"
CSV_SUFFIX = "_csv"


@dataclass
class SharedLeakResults:
    """Precomputed leak-query results per suite, and what the reviewer should know about them."""

    by_suite: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cached: list[DataFrame] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    def release(self) -> None:
        for frame in self.cached:
            frame.unpersist()
        for frame in self.cached[:1]:
            for name in self.views:
                frame.sparkSession.catalog.dropTempView(name)
        self.cached.clear()
        self.views.clear()


def csv_fingerprint(df: DataFrame, record: Any) -> tuple[int, int, int]:
    """``(rows, sum of md5 high halves, sum of low halves)`` of one record column of ``df``."""
    from pyspark.sql import functions as F

    digest = F.md5(record.cast("binary"))
    halves = [F.conv(F.substring(digest, start, 16), 16, 10).cast("decimal(20,0)") for start in (1, 17)]
    row = df.select(F.count(F.lit(1)), F.sum(halves[0]), F.sum(halves[1])).first()
    return int(row[0]), int(row[1] or 0), int(row[2] or 0)


def csv_matches_parquet(csv: DataFrame, parquet: DataFrame) -> bool:
    """Whether the parsed CSV rows are exactly the CSV rendering of the Parquet rows."""
    from pyspark.sql import functions as F

    from ioarchive.writers import csv_records, quote

    columns = parquet.columns
    if csv.columns != columns:
        return False
    written_back = F.concat_ws(",", *[quote(F.coalesce(F.col(f"`{c}`").cast("string"), F.lit(""))) for c in columns])
    # Spark's multi-line CSV reader turns CRLF inside a quoted value into LF (both separate
    # tokens alike); the rendering is compared the same way. Any other difference fails.
    rendered = F.replace(csv_records(parquet, columns), F.lit("\r\n"), F.lit("\n"))
    return csv_fingerprint(csv, written_back) == csv_fingerprint(parquet, rendered)


def shared_leak_results(tables: ReleaseTables, variant: str, suite_dicts: dict[str, dict]) -> SharedLeakResults:
    """Leak results to seed into the suites of ``variant``, for each CSV table equal to its Parquet twin."""
    from ioarchive.gx_expectations import leak_query, offending_rows

    shared = SharedLeakResults()
    leaks = {}  # table -> (suite name, row_key, identifier_view)
    for name, suite in suite_dicts.items():
        table = suite.get("meta", {}).get("ioarchive", {}).get("table")
        for expectation in suite.get("expectations", []):
            if expectation.get("type") == LEAK_EXPECTATION:
                kwargs = expectation["kwargs"]
                leaks[table] = (name, kwargs["row_key"], kwargs["identifier_view"])
    for table, (csv_suite, row_key, view) in sorted(leaks.items()):
        if not table.endswith(CSV_SUFFIX) or table.removesuffix(CSV_SUFFIX) not in leaks:
            continue
        parquet_suite, parquet_key, parquet_view = leaks[table.removesuffix(CSV_SUFFIX)]
        csv, parquet = tables.get(variant, table), tables.get(variant, table.removesuffix(CSV_SUFFIX))
        if csv is None or parquet is None or (row_key, view) != (parquet_key, parquet_view):
            continue
        if not csv_matches_parquet(csv, parquet):
            shared.notes.append(f"{variant} {table}: rows differ from the Parquet table; its leak check scanned every CSV value")
            continue
        query = leak_query(row_key, view)
        spark = parquet.sparkSession
        parquet_hits = spark.sql(query.format(batch=_view(parquet, shared))).cache()
        shared.cached.append(parquet_hits)
        hits_view = _view(parquet_hits, shared)
        own_text = [c for c, dtype in parquet.dtypes if dtype != "string"]
        union = f"SELECT row_key, kind FROM {hits_view}"
        if own_text:
            narrow = csv.select(*[f"`{c}`" for c in dict.fromkeys([row_key, *own_text])])
            union += f" UNION SELECT row_key, kind FROM ({query.format(batch=_view(narrow, shared))})"
        parquet_query, csv_query = f"SELECT row_key, kind FROM {hits_view}", f"SELECT DISTINCT * FROM ({union})"
        results = offending_rows(parquet, [_escape(parquet_query), _escape(csv_query)])
        shared.by_suite[parquet_suite] = {query: results[_escape(parquet_query)]}
        shared.by_suite[csv_suite] = {query: results[_escape(csv_query)]}
        shared.notes.append(
            f"{variant} {table}: rows equal the Parquet table's (md5 fingerprint); its leak check reused the Parquet "
            f"scan and scanned only the columns written differently ({', '.join(own_text) or 'none'})"
        )
        log.info("%s %s equals its Parquet table: one leak scan serves both", variant, table)
    return shared


def _view(df: DataFrame, shared: SharedLeakResults) -> str:
    name = f"ioarchive_shared_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(name)
    shared.views.append(name)
    return name


def _escape(sql: str) -> str:
    """``offending_rows`` formats queries with ``str.format``; these carry no ``{batch}``."""
    return sql.replace("{", "{{").replace("}", "}}")
