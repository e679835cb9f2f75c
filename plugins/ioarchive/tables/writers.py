"""Table writers: the historic CSV layout (zipped, split in parts) and typed Parquet.

Input is a variant's work tables (``work/<variant>/accounts``, ``posts``); output goes to
``release/<variant>/`` exactly as published (RELEASE_SPEC sections 3 and 6):

- ``<id>_users_csv_<variant>.zip`` and ``<id>_tweets_csv_<variant>[_partNNN].zip``: one CSV
  inside each, named like the zip but ``.csv``; UTF-8 without BOM, every record ended by a
  single LF (line-oriented tools split on it), otherwise RFC 4180: every field double-quoted,
  ``"`` doubled, CR and LF inside fields kept as they are; a header row in every
  part (``ioarchive.tables.csv_zip`` cuts the parts and deflates them on every core).
- ``parquet/users.parquet`` (one file) and ``parquet/tweets/part-NNNNN.parquet``.

One Spark job per table does the heavy part once: sort by id (numeric order for decimal ids),
format every CSV record, and write both the typed columns and the record to a scratch Parquet
folder (part files in sort order). The driver then streams that folder once: the typed columns
become the published Parquet (pyarrow, fixed row groups: parquet-mr lists column encodings in
hash-set order, which differs between JVMs, so Spark's own files are not byte-stable), the
records become the zipped CSV parts. Deterministic: the same work tables give the same bytes,
whatever the number of cores or Spark partitions. ``work/<variant>/files.json`` (rows per file
and counts) is written last: it is the writer's completion record.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive.errors import MissingStageOutput
from ioarchive.files import atomic_write_json
from ioarchive.request.campaign import check_release_id
from ioarchive.schema import ACCOUNT_COLUMNS, CSV_PART_MAX_BYTES, POST_COLUMNS
from ioarchive.staging import StagingLayout
from ioarchive.tables.csv_zip import CSV_RECORD_END, ZIP_COMPRESSLEVEL, ZIP_DATE_TIME, CsvPartWriter

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

PARQUET_ROWS_PER_FILE = 1_000_000
PARQUET_ROW_GROUP_ROWS = 131_072
"""Rows per published Parquet row group (fixed, so row groups never depend on Spark's tasks)."""
RECORD_COLUMN = "_csv_record"
SPARK_SCHEMA_KEY = b"org.apache.spark.sql.parquet.row.metadata"

__all__ = [
    "CSV_RECORD_END", "ZIP_COMPRESSLEVEL", "ZIP_DATE_TIME", "csv_header", "csv_records", "csv_value",
    "id_order", "quote", "write_csv_zips", "write_release_tables",
]


# --------------------------------------------------------------------------------------------
# CSV formatting (Spark side)
# --------------------------------------------------------------------------------------------
def csv_value(col: Column, dtype: Any) -> Column:
    """The CSV text of one typed value (before quoting); null becomes the empty string."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(dtype, T.StringType):
        text = col
    elif isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        text = F.date_format(col, "yyyy-MM-dd HH:mm")  # session time zone is UTC
    elif isinstance(dtype, T.DateType):
        text = F.date_format(col, "yyyy-MM-dd")
    elif isinstance(dtype, T.BooleanType):
        text = F.when(col, F.lit("true")).when(~col, F.lit("false"))
    elif isinstance(dtype, T.ArrayType | T.MapType | T.StructType):
        text = F.to_json(col)
    elif isinstance(dtype, T.DoubleType | T.FloatType):
        plain = col.cast("string")
        # Java prints small magnitudes as 1.0E-4: write plain decimals instead.
        decimal = F.regexp_replace(col.cast("decimal(38,18)").cast("string"), r"\.?0+$", "")
        text = F.when(plain.contains("E"), decimal).otherwise(plain)
    else:
        text = col.cast("string")
    return F.coalesce(text, F.lit(""))


def quote(text: Column) -> Column:
    from pyspark.sql import functions as F

    return F.concat(F.lit('"'), F.replace(text, F.lit('"'), F.lit('""')), F.lit('"'))


def csv_records(df: DataFrame, columns: Iterable[str]) -> Column:
    """One CSV record (without the line end) per row: every field quoted, comma-separated."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType for f in df.schema.fields}
    return F.concat_ws(",", *[quote(csv_value(F.col(c), types[c])) for c in columns])


def csv_header(columns: Iterable[str]) -> bytes:
    return (",".join(f'"{c}"' for c in columns)).encode("utf-8") + CSV_RECORD_END


def id_order(col: str) -> list[Column]:
    """Sort keys giving numeric order for decimal ids (shorter first), then string order."""
    from pyspark.sql import functions as F

    return [F.length(col), F.col(col)]


# --------------------------------------------------------------------------------------------
# one table: Spark sorts and formats once, the driver streams both outputs
# --------------------------------------------------------------------------------------------
def _sorted_table(df: DataFrame, columns: tuple[str, ...], sort: list[Column], scratch: Path) -> list[Path]:
    """Write ``df`` sorted, with each row's CSV record (its LF included), to ``scratch/sorted``.

    The shuffle carries the typed columns only; records are formatted after the sort, once.
    Part files come out in sort order (Spark numbers them by partition).
    """
    from pyspark.sql import functions as F

    record = F.concat(csv_records(df, columns), F.lit(CSV_RECORD_END.decode("ascii")))
    target = scratch / "sorted"
    (df.select(*columns).orderBy(*sort).select(*columns, record.alias(RECORD_COLUMN))
     .write.mode("overwrite").option("compression", "none").parquet(str(target)))
    return sorted(p for p in target.iterdir() if p.name.startswith("part-") and p.suffix == ".parquet")


def _row_groups(parts: list[Path]) -> Iterable[Any]:
    """Every row group of the sorted part files, in order (one in memory at a time)."""
    import pyarrow.parquet as pq

    for path in parts:
        pf = pq.ParquetFile(path)
        for i in range(pf.num_row_groups):
            yield pf.read_row_group(i)


class _ParquetSink:
    """Published Parquet files of planned row counts, written in fixed-size row groups."""

    def __init__(self, paths: list[Path], file_rows: list[int], schema: Any, row_group_rows: int) -> None:
        self.paths, self.file_rows, self.schema = paths, file_rows, schema
        self.row_group_rows = row_group_rows
        self._file = -1
        self._writer: Any = None
        self._left = 0  # rows still due in the current file
        self._buf: list[Any] = []
        self._buffered = 0
        self.written: dict[Path, int] = {}

    def write(self, table: Any) -> None:
        self._buf.append(table.select(self.schema.names).replace_schema_metadata(self.schema.metadata))
        self._buffered += table.num_rows
        self._emit(final=False)

    def _emit(self, final: bool) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        while True:
            if self._left == 0:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                if self._file + 1 >= len(self.paths):
                    break
                self._file += 1
                self._left = self.file_rows[self._file]
                tmp = self.paths[self._file]
                self._writer = pq.ParquetWriter(tmp, self.schema, compression="snappy", write_statistics=True)
                self.written[tmp] = 0
                if self._left == 0:
                    continue
            need = min(self.row_group_rows, self._left)
            if self._buffered < need and not final:
                break
            if self._buffered < need:
                raise RuntimeError(f"sorted table ended {need - self._buffered} rows early; rerun the step")
            combined = pa.concat_tables(self._buf)
            group = combined.slice(0, need).combine_chunks()
            rest = combined.slice(need)
            self._buf, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
            self._writer.write_table(group, row_group_size=need)
            self._left -= need
            self.written[self.paths[self._file]] += need

    def close(self) -> None:
        self._emit(final=True)
        if self._buffered:
            raise RuntimeError(f"sorted table has {self._buffered} more rows than planned; rerun the step")


def _published_schema(schema: Any) -> Any:
    """The scratch schema without the record column, Spark's schema metadata fixed to match."""
    meta = dict(schema.metadata or {})
    if SPARK_SCHEMA_KEY in meta:
        spark_schema = json.loads(meta[SPARK_SCHEMA_KEY])
        spark_schema["fields"] = [f for f in spark_schema["fields"] if f["name"] != RECORD_COLUMN]
        meta[SPARK_SCHEMA_KEY] = json.dumps(spark_schema, separators=(",", ":")).encode("utf-8")
    return schema.remove(schema.get_field_index(RECORD_COLUMN)).with_metadata(meta)


def _equal_split(rows: int, per_file: int) -> list[int]:
    n = max(1, math.ceil(rows / per_file))
    return [rows // n + (1 if i < rows % n else 0) for i in range(n)]


def write_table(
    df: DataFrame,
    columns: tuple[str, ...],
    sort: list[Column],
    scratch: Path,
    csv_path_for_part: Callable[[int | None], Path],
    parquet_paths: Callable[[int], list[Path]] | None,
    pool: ThreadPoolExecutor,
    csv_part_max_bytes: int = CSV_PART_MAX_BYTES,
    compresslevel: int = ZIP_COMPRESSLEVEL,
    parquet_rows_per_file: int = PARQUET_ROWS_PER_FILE,
    key_column: str | None = None,
) -> tuple[dict[str, int], dict[Path, int], set[str]]:
    """Write one table's CSV zips and (optionally) Parquet files; returns both row maps.

    ``parquet_paths(n_files)`` names the Parquet files. Also returns the distinct values of
    ``key_column`` (for counts) gathered while streaming. Outputs appear under their final
    names only when complete.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    parts = _sorted_table(df, columns, sort, scratch)
    if not parts:
        raise RuntimeError(f"Spark wrote no part file to {scratch / 'sorted'}; rerun the step")
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    csv = CsvPartWriter(csv_path_for_part, csv_header(columns), csv_part_max_bytes, scratch, pool, _workers(),
                        compresslevel)
    sink = None
    final_parquet: list[Path] = []
    if parquet_paths is not None:
        file_rows = _equal_split(rows, parquet_rows_per_file)
        final_parquet = parquet_paths(len(file_rows))
        schema = _published_schema(pq.ParquetFile(parts[0]).schema_arrow)
        tmp_paths = [scratch / f"{i:05d}.parquet-building" for i in range(len(file_rows))]
        sink = _ParquetSink(tmp_paths, file_rows, schema, PARQUET_ROW_GROUP_ROWS)
    keys: set[str] = set()
    for table in _row_groups(parts):
        csv.write_records(table.column(RECORD_COLUMN))
        if sink is not None:
            sink.write(table)
        if key_column:
            keys.update(v for v in pc.unique(table.column(key_column)).to_pylist() if v is not None)
    parquet_rows: dict[Path, int] = {}
    if sink is not None:
        sink.close()
        for tmp, dest in zip(sink.paths, final_parquet, strict=True):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            parquet_rows[dest] = sink.written[tmp]
    files = csv.close()
    if sum(files.values()) != rows:
        raise RuntimeError(f"CSV writer wrote {sum(files.values())} rows but the sorted table has {rows}; rerun the step")
    shutil.rmtree(scratch, ignore_errors=True)
    return files, parquet_rows, keys


def _workers() -> int:
    return max(2, os.cpu_count() or 2)


def _pool() -> ThreadPoolExecutor:
    """Deflate threads: one per core (zlib releases the GIL)."""
    return ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="deflate")


def write_csv_zips(
    df: DataFrame,
    columns: tuple[str, ...],
    sort: list[Column],
    path_for_part: Any,
    csv_part_max_bytes: int = CSV_PART_MAX_BYTES,
    compresslevel: int = ZIP_COMPRESSLEVEL,
) -> dict[str, int]:
    """Write ``df`` as zipped CSV part(s) only; returns ``{zip name: rows}``.

    ``path_for_part(part: int | None) -> Path``: the single-file name for ``None``, numbered
    parts otherwise (parts are used only when the CSV would exceed ``csv_part_max_bytes``).
    """
    if csv_part_max_bytes < 1:
        raise ValueError(f"csv_part_max_bytes must be positive, got {csv_part_max_bytes}")
    first = Path(path_for_part(None))
    scratch = first.parent / f".{first.stem}.building"
    with _pool() as pool:
        files, _, _ = write_table(df, columns, sort, scratch, path_for_part, None, pool,
                                  csv_part_max_bytes, compresslevel)
    return files


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def _clear_table_outputs(layout: StagingLayout, variant: str) -> None:
    release = layout.release_dir(variant)
    release.mkdir(parents=True, exist_ok=True)
    layout.work_files(variant).unlink(missing_ok=True)
    for pattern in (f"{layout.release_id}_users_csv_{variant}*.zip", f"{layout.release_id}_tweets_csv_{variant}*.zip"):
        for old in release.glob(pattern):
            old.unlink()
    parquet = layout.parquet_dir(variant)
    (parquet / "users.parquet").unlink(missing_ok=True)
    shutil.rmtree(parquet / "tweets", ignore_errors=True)


def write_release_tables(
    spark: SparkSession,
    staging_dir: str | Path,
    release_id: str,
    variant: str,
    csv_part_max_bytes: int = CSV_PART_MAX_BYTES,
    compresslevel: int = ZIP_COMPRESSLEVEL,
    parquet_rows_per_file: int = PARQUET_ROWS_PER_FILE,
) -> dict[str, Any]:
    """Write a variant's accounts and posts to ``release/<variant>/``; returns files.json."""
    check_release_id(release_id)
    if csv_part_max_bytes < 1:
        raise ValueError(f"csv_part_max_bytes must be positive, got {csv_part_max_bytes}")
    layout = StagingLayout(Path(staging_dir), release_id)
    paths = {t: layout.work_table(variant, t) for t in ("accounts", "posts")}
    for _table, path in paths.items():
        if not path.exists():
            step = "ioarchive extract" if variant == "unhashed" else "ioarchive extract (pseudonymization)"
            raise MissingStageOutput(f"release {release_id}: work table {path} is missing; run `{step}` first")
    accounts = spark.read.parquet(str(paths["accounts"])).select(*ACCOUNT_COLUMNS)
    posts = spark.read.parquet(str(paths["posts"])).select(*POST_COLUMNS)
    _clear_table_outputs(layout, variant)
    release = layout.release_dir(variant)
    parquet = layout.parquet_dir(variant)
    scratch = layout.work_scratch(variant, "tables.building")

    def users_path(part: int | None) -> Path:
        return layout.users_csv_zip(variant) if part is None else layout.users_csv_zip(variant).with_name(
            f"{release_id}_users_csv_{variant}_part{part:03d}.zip")

    files: dict[str, dict[str, int]] = {}
    try:
        with _pool() as pool:
            users_csv, users_pq, account_ids = write_table(
                accounts, ACCOUNT_COLUMNS, id_order("userid"), scratch, users_path,
                lambda n: [parquet / "users.parquet"], pool, csv_part_max_bytes, compresslevel,
                parquet_rows_per_file=max(1, 2**62), key_column="userid")
            tweets_csv, tweets_pq, poster_ids = write_table(
                posts, POST_COLUMNS, id_order("tweetid"), scratch, lambda part: layout.tweets_csv_zip(variant, part),
                lambda n: [parquet / "tweets" / f"part-{i:05d}.parquet" for i in range(n)], pool,
                csv_part_max_bytes, compresslevel, parquet_rows_per_file, key_column="userid")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, rows in {**users_csv, **tweets_csv}.items():
        files[name] = {"rows": rows}
    for path, rows in {**users_pq, **tweets_pq}.items():
        files[path.relative_to(release).as_posix()] = {"rows": rows}
    n_accounts, n_posts = sum(users_csv.values()), sum(tweets_csv.values())
    doc = {
        "files": dict(sorted(files.items())),
        "counts": {"accounts": n_accounts, "accounts_that_posted": len(account_ids & poster_ids), "posts": n_posts},
    }
    atomic_write_json(layout.work_files(variant), doc)
    log.info("release %s/%s: wrote %d table files to %s (%d accounts, %d posts)", release_id, variant,
             len(files), release, n_accounts, n_posts)
    return doc
