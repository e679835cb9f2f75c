"""Table writers: the historic CSV layout (zipped, split in parts) and typed Parquet.

Input is a variant's work tables (``work/<variant>/accounts``, ``posts``); output goes to
``release/<variant>/`` exactly as published (RELEASE_SPEC sections 3 and 6):

- ``<id>_users_csv_<variant>.zip`` and ``<id>_tweets_csv_<variant>[_partNNN].zip``: one CSV
  inside each, named like the zip but ``.csv``; RFC 4180 (CRLF records), UTF-8 without BOM,
  every field double-quoted, ``"`` doubled, newlines inside fields kept; a header row in every
  part. Spark formats each record (in parallel); the driver streams the sorted records into
  the zip, cutting parts on row boundaries.
- ``parquet/users.parquet`` (one file) and ``parquet/tweets/part-NNNNN.parquet``.

Deterministic: rows sorted by id (numeric order for decimal ids), zip entries with a fixed
timestamp and attributes, Parquet part files renamed from Spark's random names; the same work
tables give the same bytes. ``work/<variant>/files.json`` records rows per file and counts.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive.campaign import check_release_id
from ioarchive.schema import ACCOUNT_COLUMNS, CSV_PART_MAX_BYTES, POST_COLUMNS
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"""Fixed zip entry timestamp (the earliest zip can store): same bytes on every run."""
ZIP_COMPRESSLEVEL = 6
CSV_RECORD_END = b"\r\n"
PARQUET_ROWS_PER_FILE = 1_000_000
_WRITE_CHUNK = 1 << 20
COLLECT_MAX_BYTES = 64 * 1024**2
"""Below this much CSV, records are collected in one Spark job instead of streamed."""


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
# zips
# --------------------------------------------------------------------------------------------
def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


class _PartWriter:
    """Writes CSV records into numbered zipped parts of at most ``max_bytes`` of CSV each."""

    def __init__(self, names: Iterator[Path], header: bytes, max_bytes: int, compresslevel: int) -> None:
        self.names, self.header, self.max_bytes = names, header, max_bytes
        self.compresslevel = compresslevel
        self.files: dict[str, int] = {}
        self._zip: zipfile.ZipFile | None = None
        self._fh: Any = None
        self._path: Path | None = None
        self._size = self._rows = 0
        self._buf: list[bytes] = []
        self._buf_len = 0

    def _open(self) -> None:
        self._path = next(self.names)
        self._zip = zipfile.ZipFile(self._path, "w", compression=zipfile.ZIP_DEFLATED,
                                    compresslevel=self.compresslevel)
        entry = _zip_entry(self._path.with_suffix(".csv").name)
        self._fh = self._zip.open(entry, "w", force_zip64=self.max_bytes >= 0xFFFF0000)
        self._size, self._rows = 0, 0
        self._put(self.header)

    def _put(self, data: bytes) -> None:
        self._buf.append(data)
        self._buf_len += len(data)
        self._size += len(data)
        if self._buf_len >= _WRITE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._fh.write(b"".join(self._buf))
            self._buf.clear()
            self._buf_len = 0

    def _close(self) -> None:
        self._flush()
        self._fh.close()
        self._zip.close()
        self.files[self._path.name] = self._rows
        self._zip = None

    def write(self, record: bytes) -> None:
        if self._zip is None:
            self._open()
        elif self._rows and self._size + len(record) > self.max_bytes:
            self._close()
            self._open()
        self._put(record)
        self._rows += 1

    def close(self) -> dict[str, int]:
        if self._zip is None:  # an empty table still gets a CSV with its header
            self._open()
        self._close()
        return self.files


def write_csv_zips(
    df: DataFrame,
    columns: tuple[str, ...],
    sort: list[Column],
    path_for_part: Any,
    csv_part_max_bytes: int = CSV_PART_MAX_BYTES,
    compresslevel: int = ZIP_COMPRESSLEVEL,
) -> dict[str, int]:
    """Write ``df`` as zipped CSV part(s); returns ``{zip name: rows}``.

    ``path_for_part(part: int | None) -> Path``: the single-file name for ``None``, numbered
    parts otherwise (parts are used only when the CSV would exceed ``csv_part_max_bytes``).
    """
    from pyspark.sql import functions as F

    if csv_part_max_bytes < 1:
        raise ValueError(f"csv_part_max_bytes must be positive, got {csv_part_max_bytes}")
    header = csv_header(columns)
    records = df.select(csv_records(df, columns).alias("r"), *sort)
    stats = records.agg(F.count(F.lit(1)).alias("n"),
                        F.coalesce(F.sum(F.octet_length("r") + len(CSV_RECORD_END)), F.lit(0)).alias("b")).first()
    single = stats["b"] + len(header) <= csv_part_max_bytes
    names = iter([path_for_part(None)]) if single else (path_for_part(i) for i in range(1, 1_000_000))
    writer = _PartWriter(names, header, csv_part_max_bytes, compresslevel)
    ordered = records.orderBy(*[F.col(c) for c in records.columns[1:]]).select("r")
    # Small tables in one job; large ones streamed partition by partition (bounded memory).
    rows = ordered.collect() if stats["b"] <= COLLECT_MAX_BYTES else ordered.toLocalIterator(prefetchPartitions=True)
    for row in rows:
        writer.write(row[0].encode("utf-8") + CSV_RECORD_END)
    files = writer.close()
    if sum(files.values()) != stats["n"]:
        raise RuntimeError(f"CSV writer wrote {sum(files.values())} rows but the table has {stats['n']}: "
                           "the work table changed while it was written; rerun the step")
    return files


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------
def _spark_parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("part-") and p.suffix == ".parquet")


def write_parquet_file(df: DataFrame, sort: list[Column], target: Path) -> int:
    """``df`` sorted into one Parquet file at ``target``; returns rows."""
    tmp = target.with_name(f"_tmp_{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    df.coalesce(1).sortWithinPartitions(*sort).write.mode("overwrite").parquet(str(tmp))
    parts = _spark_parts(tmp)
    if len(parts) != 1:
        raise RuntimeError(f"expected one Parquet part in {tmp}, found {len(parts)}")
    target.unlink(missing_ok=True)
    rows = normalize_parquet(parts[0], target)
    shutil.rmtree(tmp)
    return rows


def write_parquet_dir(df: DataFrame, sort: list[Column], target: Path, rows: int,
                      rows_per_file: int = PARQUET_ROWS_PER_FILE) -> dict[str, int]:
    """``df`` range-partitioned by ``sort`` into ``part-NNNNN.parquet`` files; rows per file."""
    n = max(1, math.ceil(rows / rows_per_file))
    tmp = target.with_name(f"_tmp_{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    df.repartitionByRange(n, *sort).sortWithinPartitions(*sort).write.mode("overwrite").parquet(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    out: dict[str, int] = {}
    for i, part in enumerate(_spark_parts(tmp)):
        dest = target / f"part-{i:05d}.parquet"
        out[dest.name] = normalize_parquet(part, dest)
    shutil.rmtree(tmp)
    return out


def normalize_parquet(source: Path, dest: Path) -> int:
    """Rewrite a Spark Parquet file with pyarrow, row group by row group; returns rows.

    Spark's writer (parquet-mr) lists column encodings in hash-set order, which differs between
    JVMs: the same rows give different bytes in another run. pyarrow's writer is deterministic,
    keeps the types (and Spark's schema metadata), and streams one row group at a time.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(source)
    rows = 0
    with pq.ParquetWriter(dest, pf.schema_arrow, compression="snappy", write_statistics=True) as writer:
        for i in range(pf.num_row_groups):
            table = pf.read_row_group(i)
            rows += table.num_rows
            writer.write_table(table, row_group_size=max(1, table.num_rows))
    return rows


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def _clear_table_outputs(layout: StagingLayout, variant: str) -> None:
    release = layout.release_dir(variant)
    release.mkdir(parents=True, exist_ok=True)
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
    layout = StagingLayout(Path(staging_dir), release_id)
    paths = {t: layout.work_table(variant, t) for t in ("accounts", "posts")}
    for _table, path in paths.items():
        if not path.exists():
            step = "ioarchive extract" if variant == "unhashed" else "ioarchive extract (pseudonymization)"
            raise FileNotFoundError(f"release {release_id}: work table {path} is missing; run `{step}` first")
    accounts = spark.read.parquet(str(paths["accounts"])).select(*ACCOUNT_COLUMNS)
    posts = spark.read.parquet(str(paths["posts"])).select(*POST_COLUMNS)
    _clear_table_outputs(layout, variant)
    release = layout.release_dir(variant)
    parquet = layout.parquet_dir(variant)
    parquet.mkdir(parents=True, exist_ok=True)

    files: dict[str, dict[str, int]] = {}

    def users_path(part: int | None) -> Path:
        return layout.users_csv_zip(variant) if part is None else layout.users_csv_zip(variant).with_name(
            f"{release_id}_users_csv_{variant}_part{part:03d}.zip")

    for name, rows in write_csv_zips(accounts, ACCOUNT_COLUMNS, id_order("userid"), users_path,
                                     csv_part_max_bytes, compresslevel).items():
        files[name] = {"rows": rows}
    for name, rows in write_csv_zips(posts, POST_COLUMNS, id_order("tweetid"),
                                     lambda part: layout.tweets_csv_zip(variant, part),
                                     csv_part_max_bytes, compresslevel).items():
        files[name] = {"rows": rows}

    n_accounts = write_parquet_file(accounts, id_order("userid"), parquet / "users.parquet")
    files["parquet/users.parquet"] = {"rows": n_accounts}
    n_posts = sum(v["rows"] for k, v in files.items() if "_tweets_csv_" in k)
    for name, rows in write_parquet_dir(posts, id_order("tweetid"), parquet / "tweets", n_posts,
                                        parquet_rows_per_file).items():
        files[f"parquet/tweets/{name}"] = {"rows": rows}

    posted = accounts.join(posts.select("userid").distinct(), "userid", "left_semi").count()
    doc = {
        "files": dict(sorted(files.items())),
        "counts": {"accounts": n_accounts, "accounts_that_posted": int(posted), "posts": n_posts},
    }
    out = layout.work_files(variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info("release %s/%s: wrote %d table files to %s (%d accounts, %d posts)", release_id, variant,
             len(files), release, n_accounts, n_posts)
    return doc
