"""The tables the data-quality gate validates, and the Spark views its suites refer to.

What is validated is what is published: the Parquet tables of ``release/<variant>/parquet/``
(what researchers load, real types) and the CSV zips (string formats that only exist in CSV:
``tweet_time`` as ``YYYY-MM-DD HH:MM``, ``true``/``false``, JSON list columns). Cross-table
expectations (referential integrity, equal row counts, deleted posts, reconciliation) are Spark
SQL queries over temp views registered here:

``<variant>_accounts``, ``<variant>_posts``, ``<variant>_media_index`` (Parquet tables),
``deleted_post_ids(tweetid)``, ``deleted_media_keys(media_key)`` (campaign deletions.jsonl),
``reconciliation_counts(table_name, read, released, excluded, quarantined)``,
``pseudonymized_raw_identifiers`` (see ``ioarchive.quality.identifiers``).

A missing table is registered as an empty view with its columns, so one missing file fails its
own suite ("table present") instead of breaking every query that joins it.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlparse

from ioarchive.schema import ACCOUNT_COLUMNS, MEDIA_INDEX_COLUMNS, POST_COLUMNS, VARIANTS
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ACCOUNT_COLUMNS,
    "posts": POST_COLUMNS,
    "media_index": MEDIA_INDEX_COLUMNS,
    "accounts_csv": ACCOUNT_COLUMNS,
    "posts_csv": POST_COLUMNS,
}
IDENTIFIER_VIEW = "pseudonymized_raw_identifiers"


@dataclass
class ReleaseTables:
    """DataFrames per (variant, table); ``None`` where the published file is missing."""

    frames: dict[tuple[str, str], DataFrame | None] = field(default_factory=dict)
    missing: dict[tuple[str, str], str] = field(default_factory=dict)
    deletions_known: bool = False
    sources: dict[tuple[str, str], list[Path]] = field(default_factory=dict)
    """The files each frame reads (Parquet files as Spark lists them, the CSV zips): what the
    summary records checksums of. Empty for frames a caller built."""

    def get(self, variant: str, table: str) -> DataFrame | None:
        return self.frames.get((variant, table))


def load_release_tables(
    spark: SparkSession, layout: StagingLayout, csv_scratch: Path, *, with_csv: bool = True
) -> ReleaseTables:
    """Read the published tables of both variants (lazily: Spark reads when a suite runs).

    The CSV zips are unpacked first, in threads (zlib and file writes release the GIL): this
    is plain Python work while Spark sits idle, about 1 GB of CSV per variant for 1 M posts.
    """
    tables = ReleaseTables()
    csv_jobs: dict[tuple[str, str], tuple[list[Path], Path]] = {}
    for variant in VARIANTS:
        parquet = layout.parquet_dir(variant)
        for table, path in (
            ("accounts", parquet / "users.parquet"),
            ("posts", parquet / "tweets"),
            ("media_index", parquet / "media_index.parquet"),
        ):
            frame = _read_parquet(spark, path, tables.missing, (variant, table))
            tables.frames[(variant, table)] = frame
            if frame is not None:
                tables.sources[(variant, table)] = input_files(frame)
        if with_csv:
            scratch = csv_scratch / variant
            users = [layout.users_csv_zip(variant)]
            tweets = sorted(layout.release_dir(variant).glob(f"{layout.release_id}_tweets_csv_{variant}*.zip"))
            for table, zips in (("accounts_csv", users), ("posts_csv", tweets)):
                csv_jobs[(variant, table)] = (zips, scratch / table)
    with ThreadPoolExecutor(max_workers=max(1, min(len(csv_jobs), os.cpu_count() or 1))) as pool:
        unpacked = {
            key: pool.submit(_unpack_csv_zips, zips, scratch, tables.missing, key)
            for key, (zips, scratch) in csv_jobs.items()
        }
        for key, future in unpacked.items():
            folder = future.result()
            tables.frames[key] = None if folder is None else _read_csv_folder(spark, folder)
            if folder is not None:
                tables.sources[key] = [z for z in csv_jobs[key][0] if z.exists()]
    return tables


def input_files(frame: DataFrame) -> list[Path]:
    """Local paths of the files Spark reads for ``frame`` (its file listing, hidden files excluded)."""
    paths = []
    for uri in frame.inputFiles():
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            raise ValueError(f"validated file {uri} is not on the local staging filesystem")
        paths.append(Path(unquote(parsed.path)))
    return sorted(paths)


def register_views(
    spark: SparkSession,
    layout: StagingLayout,
    tables: ReleaseTables,
    threshold: int,
    campaign_dir: str | Path | None,
) -> list[DataFrame]:
    """Register every view the suites use; return the frames cached for them (to unpersist)."""
    from ioarchive.quality.identifiers import identifier_frame

    for variant in VARIANTS:
        for table in ("accounts", "posts", "media_index"):
            frame = tables.get(variant, table)
            if frame is None:
                frame = empty_frame(spark, TABLE_COLUMNS[table])
            frame.createOrReplaceTempView(f"{variant}_{table}")
    deleted_posts, deleted_media = _deletions(campaign_dir)
    tables.deletions_known = campaign_dir is not None
    unhashed_accounts = tables.get("unhashed", "accounts")
    if unhashed_accounts is None:
        unhashed_accounts = empty_frame(spark, ACCOUNT_COLUMNS).withColumn("follower_count", _null_long())
    views = {
        "deleted_post_ids": spark.createDataFrame([(i,) for i in deleted_posts], "tweetid string"),
        "deleted_media_keys": spark.createDataFrame([(i,) for i in deleted_media], "media_key string"),
        "reconciliation_counts": spark.createDataFrame(
            _reconciliation_rows(layout),
            "table_name string, read long, released long, excluded long, quarantined long",
        ),
        IDENTIFIER_VIEW: identifier_frame(unhashed_accounts, threshold),
    }
    # Cached and counted so that Spark knows their size: a frame made from a Python list has no
    # statistics, so a join of a million posts with 20 000 deleted ids was planned as a
    # sort-merge join (the posts shuffled) instead of a broadcast of the ids.
    cached = []
    for name, frame in views.items():
        frame = frame.cache()
        frame.count()
        frame.createOrReplaceTempView(name)
        cached.append(frame)
    return cached


def empty_frame(spark: SparkSession, columns: tuple[str, ...]) -> DataFrame:
    return spark.createDataFrame([], ", ".join(f"`{c}` string" for c in columns))


def _null_long():
    from pyspark.sql import functions as F

    return F.lit(None).cast("long")


def _read_parquet(spark, path: Path, missing: dict, key: tuple[str, str]):
    if not path.exists():
        missing[key] = f"{path} does not exist"
        return None
    return spark.read.parquet(str(path))


def _unpack_csv_zips(zips: list[Path], scratch: Path, missing: dict, key: tuple[str, str]) -> Path | None:
    """Unpack the CSV of each zip into parts under ``scratch``; ``None`` (reason in ``missing``)."""
    present = [z for z in zips if z.exists()]
    if not present:
        missing[key] = f"{zips[0] if zips else 'CSV zip'} does not exist"
        return None
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for number, zpath in enumerate(present):
        with zipfile.ZipFile(zpath) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".csv")]
            if len(members) != 1:
                missing[key] = f"{zpath} holds {len(members)} CSV files, expected exactly one"
                return None
            with archive.open(members[0]) as src:
                split_csv(src, scratch, f"zip{number:03d}")
    return scratch


def _read_csv_folder(spark, scratch: Path):
    """Read the unpacked CSV parts as strings (RFC 4180, multi-line)."""
    return spark.read.csv(
        str(scratch), header=True, multiLine=True, quote='"', escape='"', inferSchema=False, encoding="UTF-8"
    )


CSV_PART_BYTES = 32 * 1024 * 1024
"""Size of the scratch CSV files: Spark reads a multi-line CSV file in ONE task, so a 1 GB
tweets CSV read whole took minutes on one core while the other sat idle."""


def split_csv(src: BinaryIO, out_dir: Path, prefix: str, part_bytes: int = CSV_PART_BYTES) -> int:
    """Copy one RFC 4180 CSV stream into files of about ``part_bytes``, each with the header.

    Files are cut only at a line break outside quotes: with every quote counted, a newline is a
    record boundary exactly when the count since the last boundary is even (a doubled quote
    ``""`` inside a field adds two). A malformed file (a stray quote) is cut at the wrong place
    or not at all; the CSV-vs-Parquet row-count expectations then fail, so nothing is hidden.
    Returns the number of files written.
    """
    header = src.readline()
    parts = 0
    dst: BinaryIO | None = None
    size = quotes = 0

    def open_part() -> BinaryIO:
        nonlocal parts, size, quotes
        handle = open(out_dir / f"{prefix}_part{parts:04d}.csv", "wb")  # noqa: SIM115 - closed below
        parts += 1
        handle.write(header)
        size = quotes = 0
        return handle

    dst = open_part()
    try:
        while chunk := src.read(4 * 1024 * 1024):
            start = 0
            while size + len(chunk) - start > part_bytes:
                cut = _record_end(chunk, start, max(start, start + part_bytes - size), quotes)
                if cut < 0:
                    break
                dst.write(chunk[start:cut])
                dst.close()
                dst = open_part()
                start = cut
            dst.write(chunk[start:])
            size += len(chunk) - start
            quotes += chunk.count(b'"', start)
    finally:
        dst.close()
    return parts


def _record_end(chunk: bytes, start: int, search_from: int, quotes_before: int) -> int:
    """Offset just past the first newline at or after ``search_from`` that ends a record, or -1.

    ``quotes_before`` counts the quotes of the current file before ``chunk[start:]``.
    """
    quotes = quotes_before + chunk.count(b'"', start, search_from)
    pos = search_from
    while (newline := chunk.find(b"\n", pos)) >= 0:
        quotes += chunk.count(b'"', pos, newline)
        if quotes % 2 == 0:
            return newline + 1
        pos = newline + 1
    return -1


def _deletions(campaign_dir: str | Path | None) -> tuple[list[str], list[str]]:
    """Deleted post ids and media keys from the campaign's deletions.jsonl[.gz]."""
    if campaign_dir is None:
        return [], []
    posts: list[str] = []
    media: list[str] = []
    for name in ("deletions.jsonl", "deletions.jsonl.gz"):
        path = Path(campaign_dir) / name
        if not path.exists():
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # extraction quarantines it; nothing to check against
                if not isinstance(record, dict) or record.get("id") is None:
                    continue
                (posts if record.get("kind") == "post" else media).append(str(record["id"]))
    return posts, media


def _reconciliation_rows(layout: StagingLayout) -> list[tuple]:
    """One row per table of reconciliation.json; none when the file is missing (fails the check)."""
    try:
        data = json.loads(layout.reconciliation.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.error("reconciliation %s unreadable (%s): the balance expectation will fail", layout.reconciliation, exc)
        return []
    rows = []
    for name, counts in (data.get("tables") or {}).items():
        rows.append(
            (
                name,
                int(counts.get("read", 0)),
                int(counts.get("released", 0)),
                sum(int(v) for v in (counts.get("excluded") or {}).values()),
                sum(int(v) for v in (counts.get("quarantined") or {}).values()),
            )
        )
    return rows
