"""Extraction: one raw campaign folder -> the unhashed work tables, quarantine and the books.

Reads ``accounts``, ``posts``, ``media`` and ``deletions`` (JSON Lines, optionally gzipped;
RELEASE_SPEC section 2) with Spark and writes, under the release's staging folder:

- ``work/unhashed/accounts/``, ``posts/``: the published columns with real types;
- ``work/unhashed/media/``: released media (the packer's input);
- ``work/unhashed/identities/``: every campaign account id with the screen and display names
  seen for it (internal; the pseudonymization step needs it, it is never published);
- ``quarantine/records.jsonl``: every rejected raw line, with file, line and reason;
- ``reconciliation.json``: ``read = released + excluded + quarantined`` per table;
- ``work/unhashed/stats.json`` and the unhashed ``stats.json`` + ``charts/``: release statistics
  counted in the same aggregation as the books (``ioarchive.extract.stats``).

Every input line gets exactly one disposition, decided by one ordered list of checks per table,
so the books balance by construction. Parsing rules are in docs/decisions.md.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive import reconcile
from ioarchive.extract import retractions
from ioarchive.extract import stats as release_stats
from ioarchive.request.campaign import Campaign, check_release_id, find_raw_file
from ioarchive.schema import ACCOUNT_COLUMNS, MEDIA_KINDS, POST_COLUMNS
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

VARIANT = "unhashed"
MEDIA_WORK_COLUMNS: tuple[str, ...] = (
    "media_key", "tweetid", "userid", "kind", "source_path", "bytes", "sha256",
)
IDENTITY_COLUMNS: tuple[str, ...] = ("userid", "screen_name", "display_name", "follower_count")

# Reasons (contract names). Quarantined: the record is bad. Excluded: the record is fine but
# must not be released.
QUARANTINE_REASONS: tuple[str, ...] = (
    "invalid_json", "missing_id", "duplicate_id", "unparseable_timestamp", "negative_count",
    "path_escape", "symlink", "missing_file", "unknown_kind",
)
EXCLUDED_REASONS: tuple[str, ...] = ("deleted", "retracted", "not_campaign_account", "post_not_released")

V11_TIME_RE = r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4} [0-9]{4}$"
"""``Wed Oct 10 20:19:24 +0000 2018``: the only accepted ``created_at`` shape (v1.1 API)."""


# --------------------------------------------------------------------------------------------
# raw schemas (only the fields RELEASE_SPEC section 2 relies on; unknown fields are ignored)
# --------------------------------------------------------------------------------------------
def _raw_schemas() -> dict[str, Any]:
    from pyspark.sql import types as T

    s, lng = T.StringType(), T.LongType()

    def f(name: str, typ: Any) -> T.StructField:
        return T.StructField(name, typ, True)

    corrupt = f("_corrupt_record", s)
    accounts = T.StructType([
        f("id_str", s), f("name", s), f("screen_name", s), f("location", s), f("description", s),
        f("url", s), f("followers_count", lng), f("friends_count", lng), f("created_at", s),
        f("lang", s), f("profile_image_media_key", s), f("profile_banner_media_key", s), corrupt,
    ])
    posts = T.StructType([
        f("id_str", s), f("user", T.StructType([f("id_str", s)])), f("full_text", s),
        f("created_at", s), f("lang", s), f("source", s), f("in_reply_to_status_id_str", s),
        f("in_reply_to_user_id_str", s), f("quoted_status_id_str", s),
        f("retweeted_status", T.StructType([f("id_str", s), f("user", T.StructType([f("id_str", s)]))])),
        f("coordinates", T.StructType([f("type", s), f("coordinates", T.ArrayType(T.DoubleType()))])),
        f("quote_count", lng), f("reply_count", lng), f("favorite_count", lng), f("retweet_count", lng),
        f("entities", T.StructType([
            f("hashtags", T.ArrayType(T.StructType([f("text", s)]))),
            f("urls", T.ArrayType(T.StructType([f("expanded_url", s)]))),
            f("user_mentions", T.ArrayType(T.StructType([f("id_str", s), f("screen_name", s)]))),
            f("media", T.ArrayType(T.StructType([f("media_key", s)]))),
        ])),
        f("card", T.StructType([f("poll_choices", T.ArrayType(s))])),
        corrupt,
    ])
    media = T.StructType([
        f("media_key", s), f("post_id", s), f("user_id", s), f("kind", s), f("path", s),
        f("bytes", lng), f("sha256", s), corrupt,
    ])
    deletions = T.StructType([f("kind", s), f("id", s), f("deleted_at", s), corrupt])
    return {"accounts": accounts, "posts": posts, "media": media, "deletions": deletions}


# --------------------------------------------------------------------------------------------
# reading raw files with line positions
# --------------------------------------------------------------------------------------------


def _text_lines(spark: SparkSession, path: Path) -> DataFrame:
    """Raw lines with their position: ``blk`` (byte offset of the file split) and ``mid``.

    ``mid`` (monotonically increasing id) is deterministic for the same file and session, so a
    second read of the same file gives every line the same position (see :func:`tally`).
    """
    from pyspark.sql import functions as F

    return spark.read.text(str(path)).select(
        "value",
        F.col("_metadata.file_block_start").alias("blk"),
        F.monotonically_increasing_id().alias("mid"),
    )


def _read_lines(spark: SparkSession, path: Path | None, schema: Any) -> DataFrame:
    """Raw lines with their position and the parsed JSON (``j``)."""
    from pyspark.sql import functions as F

    if path is None:
        df = spark.createDataFrame([], "value string, blk long, mid long")
    else:
        df = _text_lines(spark, path)
    return df.withColumn(
        "j",
        F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}),
    )


def _parse(spark: SparkSession, path: Path | None, schema: Any, scratch: Path, keep_raw: Column | None = None,
           **extra: Column) -> DataFrame:
    """Parse a raw file once into a scratch Parquet table holding what the checks and outputs need.

    Columns: ``blk``, ``mid``, ``_blank`` (blank line), ``_inv`` (invalid JSON), ``j`` (the parsed
    record, without the corrupt-record copy), ``extra`` columns computed from ``j``, and
    ``value`` (raw text, at most 10 kB) only where ``keep_raw`` holds (lines that may be
    quarantined): keeping every raw line would double the table for nothing. Lines quarantined
    without their text (duplicates) get it back from a re-read in :func:`tally`.

    Why Parquet and not ``persist()``: the checks, the work table, the books and the identities
    each scan the parsed lines again. A cached copy of the nested ``j`` of every line must fit
    the driver's memory (at 1 M posts it is about the raw size); an evicted block is silently
    recomputed, i.e. the JSON parsed again. Parquet is written once, on disk, and every later
    scan reads only the (nested) columns it uses. CPU was the same within noise at 200 k posts
    (issue #3 profile: the extraction's time is JIT compilation and the per-row work, not the
    cache).
    """
    from pyspark.sql import functions as F

    df = _read_lines(spark, path, schema)
    df = df.select(
        "blk", "mid", "value", _blank("value").alias("_blank"), _is_invalid_json().alias("_inv"),
        F.col("j").dropFields("_corrupt_record").alias("j"),
    )
    for name, col in extra.items():
        df = df.withColumn(name, col)
    keep = F.col("_inv") if keep_raw is None else (F.col("_inv") | keep_raw)
    raw = F.when(~F.col("_blank") & F.coalesce(keep, F.lit(True)), F.substring("value", 1, reconcile.MAX_RECORD_CHARS))
    df.withColumn("value", raw).write.mode("overwrite").parquet(str(scratch))
    return spark.read.parquet(str(scratch))


def _is_invalid_json() -> Column:
    from pyspark.sql import functions as F

    # from_json gives null for a non-object and sets _corrupt_record for broken JSON or a field
    # of the wrong type (e.g. a count that is a string): both are invalid_json.
    return F.col("j").isNull() | F.col("j._corrupt_record").isNotNull()


def _blank(col: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(col).isNull() | (F.trim(F.col(col)) == "")


def parse_v11_time(col: Column) -> Column:
    """``Wed Oct 10 20:19:24 +0000 2018`` -> UTC timestamp; null when not exactly that shape."""
    from pyspark.sql import functions as F

    shaped = col.rlike(V11_TIME_RE)
    # Spark cannot parse day-of-week names (E is format-only): drop the first 4 characters.
    parsed = F.try_to_timestamp(F.substring(col, 5, 100), F.lit("MMM dd HH:mm:ss Z yyyy"))
    return F.when(shaped, parsed)


def tally(spark: SparkSession, df: DataFrame, source: Path | None, source_file: str,
          facets: dict[str, Column] | None = None, stats: dict[str, dict[str, int]] | None = None,
          ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Counts by disposition/reason and the quarantine records of one classified table.

    One aggregation (:func:`_tally_rows`) gives the books, the quarantined lines and, per file
    split, the line offsets that turn (``blk``, ``mid``) into 1-based line numbers (blank lines
    count as lines, not as reads). Quarantined lines whose raw text was not kept (duplicates)
    are read again from the file, by position, only when there are any.

    ``facets`` (name -> array of keys per row) are counted over the *released* rows in that same
    aggregation (the release statistics, no second pass): each row is expanded into its books
    event plus one event per facet key, so a key counts the rows that carry it. The counts go
    into ``stats[name]`` (``{key: rows}``); facets named in ``stats.TOP_K`` keep only their most
    frequent keys (ties by key).
    """
    from pyspark.sql import functions as F

    rows = _tally_rows(df, facets or {}, stats if stats is not None else {})
    entry: dict[str, Any] = {"read": 0, "released": 0, "excluded": {}, "quarantined": {}}
    per_block: dict[int, list[int]] = {}
    pending: list[tuple[int, int, str, str | None]] = []
    for row in rows:
        block = per_block.setdefault(row["blk"], [0, row["m0"]])
        block[0] += row["n"]
        block[1] = min(block[1], row["m0"])
        if row["disposition"] == "blank":
            continue
        entry["read"] += row["n"]
        if row["disposition"] == "released":
            entry["released"] += row["n"]
        else:
            bucket = entry[row["disposition"]]
            bucket[row["reason"]] = bucket.get(row["reason"], 0) + row["n"]
        if row["qmid"] is not None:
            pending.append((row["blk"], row["qmid"], row["reason"], row["qvalue"]))
    entry["excluded"] = dict(sorted(entry["excluded"].items()))
    entry["quarantined"] = dict(sorted(entry["quarantined"].items()))
    if not pending:
        return entry, []
    missing = sorted({(blk, mid) for blk, mid, _, value in pending if value is None})
    if missing and source is not None:
        wanted = spark.createDataFrame(missing, "blk long, mid long")
        found = _text_lines(spark, source).join(F.broadcast(wanted), ["blk", "mid"], "left_semi")
        texts = {(r["blk"], r["mid"]): r["value"] for r in
                 found.select("blk", "mid", F.substring("value", 1, reconcile.MAX_RECORD_CHARS).alias("value")).collect()}
        pending = [(b, m, why, texts.get((b, m)) if v is None else v) for b, m, why, v in pending]
    offsets, seen = {}, 0
    for blk in sorted(per_block):
        offsets[blk] = (seen, per_block[blk][1])
        seen += per_block[blk][0]
    records = []
    for blk, mid, why, value in sorted(pending, key=lambda p: (p[0], p[1])):
        base, first_mid = offsets[blk]
        records.append(reconcile.quarantine_record(source_file, base + (mid - first_mid) + 1, why, value or ""))
    return entry, records


def _tally_rows(df: DataFrame, facets: dict[str, Column], stats: dict[str, dict[str, int]]) -> list[Any]:
    """:func:`tally`'s one aggregation; returns the books rows, puts facet counts into ``stats``.

    Books rows are ``(blk, disposition, reason, qmid, qvalue, n, m0)``: a quarantined line is a
    group of its own (``qmid``/``qvalue`` are its position and kept text; null for every other
    line), so the aggregation needs only ``count`` and ``min``, both codegen'd hash aggregates.
    (Collecting the quarantined lines with ``collect_list`` instead forced an object hash
    aggregate that falls back to sorting beyond 128 keys: the event log's largest operator time
    of the extraction at 300 k posts, see docs/performance.md.) Facet events carry only
    ``(_facet, _key)``; facet keys come from native expressions (no lambdas per row).
    """
    from pyspark.sql import functions as F

    quarantined = F.col("disposition") == "quarantined"
    keys = [
        F.col("blk"), F.col("disposition"), F.col("reason"),
        F.when(quarantined, F.col("mid")).alias("qmid"), F.when(quarantined, F.col("value")).alias("qvalue"),
    ]
    counts = [F.count(F.lit(1)).alias("n"), F.min("mid").alias("m0")]
    if not facets:
        return df.groupBy(*keys).agg(*counts).collect()
    event = "array<struct<f:string,k:string>>"
    released = F.col("disposition") == "released"
    events = [F.array(F.struct(F.lit(None).cast("string").alias("f"), F.lit(None).cast("string").alias("k")))]
    for name, facet_keys in facets.items():
        tagged = F.arrays_zip(F.array_repeat(F.lit(name), F.size(facet_keys)), facet_keys).cast(event)
        events.append(F.when(released, F.coalesce(tagged, F.array().cast(event))).otherwise(F.array().cast(event)))
    books = F.col("_e.f").isNull()
    expanded = df.select(*keys, F.col("mid"), F.explode(F.concat(*events)).alias("_e")).where(
        books | F.col("_e.k").isNotNull())
    agg = expanded.groupBy(
        F.col("_e.f").alias("_facet"), F.col("_e.k").alias("_key"),
        *[F.when(books, F.col(c)).alias(c) for c in ("blk", "disposition", "reason", "qmid", "qvalue")],
    ).agg(*counts).persist()
    try:
        capped = [n for n in facets if n in release_stats.TOP_K]
        small = agg.where(F.col("_facet").isNull() | ~F.col("_facet").isin(*capped)) if capped else agg
        rows = small.collect()
        for name in capped:
            top = (agg.where(F.col("_facet") == name).orderBy(F.col("n").desc(), F.col("_key"))
                   .limit(release_stats.TOP_K[name]).select("_key", "n").collect())
            stats[name] = {r["_key"]: r["n"] for r in top}
    finally:
        agg.unpersist()
    for name in facets:
        stats.setdefault(name, {})
    for r in rows:
        if r["_facet"] is not None:
            stats[r["_facet"]][r["_key"]] = r["n"]
    return [r for r in rows if r["_facet"] is None]


def account_facets() -> dict[str, Column]:
    """Release statistics counted over released accounts (see :func:`tally`)."""
    from pyspark.sql import functions as F

    return {"accounts_created_per_month": F.array(F.date_format(F.col("_ts"), "yyyy-MM"))}


def post_facets() -> dict[str, Column]:
    """Release statistics counted over released posts: day (UTC), language, hashtags (once per
    post, as written), client name, retweet or not (see :func:`tally`)."""
    from pyspark.sql import functions as F

    return {
        "posts_per_day": F.array(F.date_format(F.col("_ts"), "yyyy-MM-dd")),
        "post_languages": F.array(F.coalesce(F.col("j.lang"), F.lit(""))),
        "hashtags": F.array_distinct(F.coalesce(F.col("j.entities.hashtags.text"), F.array().cast("array<string>"))),
        "clients": F.array(F.coalesce(client_name(F.col("j.source")), F.lit(""))),
        "retweets": F.array(F.when(F.col("j.retweeted_status").isNotNull(), F.lit("true")).otherwise(F.lit("false"))),
    }


def _classify(
    df: DataFrame,
    id_col: Column,
    quarantine_checks: list[tuple[str, Column]],
    exclusion_checks: list[tuple[str, Column]],
    cached: list[DataFrame],
) -> DataFrame:
    """Give every line one disposition: blank, quarantined/<reason>, excluded/<reason>, released.

    ``df`` is a parsed table (scratch Parquet) from :func:`_parse`, joined with whatever the checks need.
    Order (first match wins): invalid_json, missing_id, duplicate_id, the other checks of
    ``quarantine_checks`` in order, then ``exclusion_checks`` in order. Duplicates: among lines that
    parsed and have an id, the first by file position is kept; later ones are ``duplicate_id``.
    The duplicate ids (small) are computed once and cached (appended to ``cached``).
    """
    from pyspark.sql import functions as F

    df = df.withColumn("_id", id_col)
    has_id = ~F.col("_blank") & ~F.col("_inv") & ~_blank("_id")
    firsts = (
        df.where(has_id)
        .groupBy("_id")
        .agg(F.count(F.lit(1)).alias("_n"), F.min(F.struct("blk", "mid")).alias("_first"))
        .where(F.col("_n") > 1)
        .select("_id", "_first")
        .persist()
    )
    cached.append(firsts)
    df = df.join(F.broadcast(firsts), on="_id", how="left")
    is_dup = F.col("_first").isNotNull() & (F.struct("blk", "mid") != F.col("_first"))

    checks: list[tuple[str, str, Column]] = [
        ("blank", "", F.col("_blank")),
        ("quarantined", "invalid_json", F.col("_inv")),
        ("quarantined", "missing_id", _blank("_id")),
    ]
    checks += [("quarantined", r, c) for r, c in quarantine_checks if r == "missing_id"]
    checks.append(("quarantined", "duplicate_id", is_dup))
    checks += [("quarantined", r, c) for r, c in quarantine_checks if r != "missing_id"]
    checks += [("excluded", reason, cond) for reason, cond in exclusion_checks]

    disposition = F.lit("released")
    reason = F.lit(None).cast("string")
    for disp, why, cond in reversed(checks):
        disposition = F.when(cond, F.lit(disp)).otherwise(disposition)
        reason = F.when(cond, F.lit(why or None)).otherwise(reason)
    return df.withColumn("disposition", disposition).withColumn("reason", reason)


# --------------------------------------------------------------------------------------------
# table builders
# --------------------------------------------------------------------------------------------
def _account_columns(j: str = "j") -> list[Column]:
    """The 10 published account columns from a raw user object."""
    from pyspark.sql import functions as F

    return [
        F.col(f"{j}.id_str").alias("userid"),
        F.col(f"{j}.name").alias("user_display_name"),
        F.col(f"{j}.screen_name").alias("user_screen_name"),
        F.col(f"{j}.location").alias("user_reported_location"),
        F.col(f"{j}.description").alias("user_profile_description"),
        F.col(f"{j}.url").alias("user_profile_url"),
        F.col(f"{j}.followers_count").alias("follower_count"),
        F.col(f"{j}.friends_count").alias("following_count"),
        F.to_date(F.col("_ts")).alias("account_creation_date"),
        F.col(f"{j}.lang").alias("account_language"),
    ]


def client_name(source: Column) -> Column:
    """The text of the ``source`` anchor (``<a href=...>Twitter Web App</a>``), entities decoded.

    A source without an anchor is taken as it is (older exports have plain ``web``).
    """
    from pyspark.sql import functions as F

    # One regular expression per row: the whole value is replaced by the anchor's text when it
    # is exactly one anchor, and left as it is otherwise (same result as a match test followed
    # by an extraction, at half the cost).
    text = F.regexp_replace(source, r"(?s)^\s*<a\b[^>]*>(.*)</a>\s*$", "$1")
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&")):
        text = F.replace(text, F.lit(entity), F.lit(char))
    return text


def _post_columns() -> list[Column]:
    """The post-specific published columns (everything but the 10 account columns)."""
    from pyspark.sql import functions as F

    def strings(arr: str, field: str) -> Column:
        # Field of an array of structs: native (no lambda per row), null elements kept as null.
        return F.coalesce(F.col(f"{arr}.{field}"), F.array().cast("array<string>"))

    coords = F.col("j.coordinates.coordinates")
    has_point = F.col("j.coordinates").isNotNull() & (F.size(coords) >= 2)
    return [
        F.col("j.id_str").alias("tweetid"),
        F.col("j.lang").alias("tweet_language"),
        F.col("j.full_text").alias("tweet_text"),
        F.col("_ts").alias("tweet_time"),
        client_name(F.col("j.source")).alias("tweet_client_name"),
        F.col("j.in_reply_to_status_id_str").alias("in_reply_to_tweetid"),
        F.col("j.in_reply_to_user_id_str").alias("in_reply_to_userid"),
        F.col("j.quoted_status_id_str").alias("quoted_tweet_tweetid"),
        F.col("j.retweeted_status").isNotNull().alias("is_retweet"),
        F.col("j.retweeted_status.user.id_str").alias("retweet_userid"),
        F.col("j.retweeted_status.id_str").alias("retweet_tweetid"),
        # GeoJSON order is [longitude, latitude].
        F.when(has_point, coords[1]).alias("latitude"),
        F.when(has_point, coords[0]).alias("longitude"),
        F.col("j.quote_count").alias("quote_count"),
        F.col("j.reply_count").alias("reply_count"),
        F.col("j.favorite_count").alias("like_count"),
        F.col("j.retweet_count").alias("retweet_count"),
        strings("j.entities.hashtags", "text").alias("hashtags"),
        strings("j.entities.urls", "expanded_url").alias("urls"),
        strings("j.entities.user_mentions", "id_str").alias("user_mentions"),
        F.coalesce(F.col("j.card.poll_choices"), F.array().cast("array<string>")).alias("poll_choices"),
    ]


def _negative(*fields: str) -> Column:
    from pyspark.sql import functions as F

    cond = F.lit(False)
    for field in fields:
        cond = cond | F.coalesce(F.col(field) < 0, F.lit(False))
    return cond


def classify_media_paths(media_root: Path, paths: Iterable[str]) -> dict[str, str]:
    """Reasons for media paths that must not be packed: path_escape, symlink, missing_file.

    ``..`` segments and absolute paths escape ``media/``; a symlink anywhere along the path
    could point anywhere; anything that is not a regular file is missing. Uses lstat only, so
    nothing outside ``media/`` is ever read.
    """
    bad: dict[str, str] = {}
    root = os.fspath(media_root)
    for raw in paths:
        p = raw.replace("\\", "/")
        parts = p.split("/")
        if p.startswith("/") or (len(p) > 1 and p[1] == ":") or ".." in parts or "\x00" in p:
            bad[raw] = "path_escape"
            continue
        current, reason = root, None
        for part in [x for x in parts if x not in ("", ".")]:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except OSError:
                reason = "missing_file"
                break
            if _is_link(st.st_mode):
                reason = "symlink"
                break
        else:
            if reason is None and not os.path.isfile(current):
                reason = "missing_file"
        if reason:
            bad[raw] = reason
    return bad


def _is_link(mode: int) -> bool:
    import stat

    return stat.S_ISLNK(mode)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def extract_campaign(
    spark: SparkSession, campaign_dir: str | Path, staging_dir: str | Path, release_id: str
) -> dict[str, Any]:
    """Extract one campaign into the release's staging folder; returns the reconciliation.

    Overwrites previous extraction outputs (work/unhashed, quarantine, reconciliation), so a
    rerun starts clean; later steps must be rerun after it.
    """

    check_release_id(release_id)
    campaign_dir = Path(campaign_dir)
    campaign = Campaign.load(campaign_dir)
    layout = StagingLayout(Path(staging_dir), release_id)
    schemas = _raw_schemas()
    files = {t: find_raw_file(campaign_dir, t, required=t in ("accounts", "posts")) for t in
             ("accounts", "posts", "media", "deletions")}
    log.info("release %s: extracting campaign %s from %s", release_id, campaign.campaign_id, campaign_dir)

    for path in (layout.quarantine_records, layout.quarantine_media):
        path.unlink(missing_ok=True)
    shutil.rmtree(layout.work_dir(VARIANT), ignore_errors=True)
    layout.root.mkdir(parents=True, exist_ok=True)

    campaign_ids = retractions.campaign_ids(spark, campaign.account_ids, retractions.load(layout))

    deletions = _read_deleted(spark, files["deletions"], schemas["deletions"])
    books = reconcile.empty(release_id)
    quarantine: list[dict[str, Any]] = []
    cached: list[DataFrame] = [deletions]

    counts: dict[str, dict[str, int]] = {}

    def book(table: str, df: DataFrame, path: Path | None, facets: dict[str, Column] | None = None) -> None:
        books["tables"][table], records = tally(spark, df, path, path.name if path else f"{table}.jsonl",
                                                facets=facets, stats=counts)
        quarantine.extend(records)

    try:
        accounts = _extract_accounts(spark, layout, files["accounts"], schemas["accounts"], campaign_ids, cached, book)
        _extract_posts(spark, layout, files["posts"], schemas["posts"], campaign_ids, deletions, accounts, cached, book)
        _extract_media(spark, layout, campaign_dir, files["media"], schemas["media"], campaign_ids, deletions,
                       cached, book)
    finally:
        for df in cached:
            df.unpersist()
        shutil.rmtree(_scratch(layout, ""), ignore_errors=True)

    quarantine.sort(key=lambda r: (r["source_file"], r["line"]))
    reconcile.append_quarantine(layout.quarantine_records, quarantine)
    layout.quarantine_dir.mkdir(parents=True, exist_ok=True)
    layout.quarantine_records.touch()
    data = reconcile.save(layout, books)
    release_stats.save_aggregate(layout, counts)
    release_stats.publish(layout, VARIANT)
    if not data["balanced"]:  # cannot happen by construction; a loud failure if it ever does
        raise reconcile.ReconciliationError(
            f"release {release_id}: reconciliation does not balance, see {layout.reconciliation}")
    for table, entry in data["tables"].items():
        log.info("release %s: %s read=%d released=%d excluded=%s quarantined=%s", release_id, table,
                 entry["read"], entry["released"], entry["excluded"], entry["quarantined"])
    return data


Book = Callable[..., None]
"""``book(table, classified frame, raw path, facets=None)``: books, quarantine and statistics."""


def _scratch(layout: StagingLayout, table: str) -> Path:
    """Scratch folder of one parsed raw table (removed when extraction ends)."""
    return layout.work_scratch(VARIANT, "parsed.building") / table


def _extract_accounts(spark: SparkSession, layout: StagingLayout, path: Path | None, schema: Any,
                      campaign_ids: DataFrame, cached: list[DataFrame], book: Book) -> DataFrame:
    """Classify account records, write ``work/unhashed/accounts``; returns it (read back)."""
    from pyspark.sql import functions as F

    acc = _parse(spark, path, schema, _scratch(layout, "accounts"), keep_raw=F.lit(True),
                 _ts=parse_v11_time(F.col("j.created_at")))
    acc = acc.join(campaign_ids, F.col("j.id_str") == F.col("cid"), "left")
    acc = _classify(
        acc, F.col("j.id_str"),
        [("unparseable_timestamp", F.col("_ts").isNull()),
         ("negative_count", _negative("j.followers_count", "j.friends_count"))],
        [retractions.check(), ("not_campaign_account", F.col("cid").isNull())],
        cached,
    )
    target = str(layout.work_table(VARIANT, "accounts"))
    acc.where(F.col("disposition") == "released").select(*_account_columns()).write.mode("overwrite").parquet(target)
    book("accounts", acc, path, account_facets())
    return spark.read.parquet(target)


def _extract_posts(spark: SparkSession, layout: StagingLayout, path: Path | None, schema: Any,
                   campaign_ids: DataFrame, deletions: DataFrame, accounts: DataFrame,
                   cached: list[DataFrame], book: Book) -> None:
    """Classify posts (parsed once, to scratch Parquet), write ``posts`` and ``identities`` work tables."""
    from pyspark.sql import functions as F

    ts = F.col("_ts").isNull()
    negative = _negative("j.quote_count", "j.reply_count", "j.favorite_count", "j.retweet_count")
    post = _parse(spark, path, schema, _scratch(layout, "posts"),
                  keep_raw=_blank("j.id_str") | _blank("j.user.id_str") | ts | negative,
                  _ts=parse_v11_time(F.col("j.created_at")))
    post = post.join(campaign_ids, F.col("j.user.id_str") == F.col("cid"), "left")
    post = post.join(F.broadcast(deletions.where(F.col("kind") == "post").select(F.col("id").alias("_del"))),
                     F.col("j.id_str") == F.col("_del"), "left")
    post = _classify(
        post, F.col("j.id_str"),
        [("missing_id", _blank("j.user.id_str")),
         ("unparseable_timestamp", ts),
         ("negative_count", negative)],
        [("deleted", F.col("_del").isNotNull()), retractions.check(),
         ("not_campaign_account", F.col("cid").isNull())],
        cached,
    )
    released = post.where(F.col("disposition") == "released")
    posts = released.select(F.col("j.user.id_str").alias("_uid"), *_post_columns()).join(
        F.broadcast(accounts), F.col("_uid") == accounts["userid"], "left"
    ).select(*[F.col("_uid").alias("userid") if c == "userid" else F.col(c) for c in POST_COLUMNS])
    posts = retractions.blank_references(posts, campaign_ids, _scratch(layout, "accounts"), released)
    posts.write.mode("overwrite").parquet(str(layout.work_table(VARIANT, "posts")))
    book("posts", post, path, post_facets())
    # identities: campaign accounts and every screen/display name seen for them
    mentions = released.select(F.explode("j.entities.user_mentions").alias("m")).select(
        F.col("m.id_str").alias("userid"), F.col("m.screen_name").alias("screen_name"))
    _write_identities(layout, retractions.kept(campaign_ids), accounts, mentions)


def _extract_media(spark: SparkSession, layout: StagingLayout, campaign_dir: Path, path: Path | None,
                   schema: Any, campaign_ids: DataFrame, deletions: DataFrame, cached: list[DataFrame],
                   book: Book) -> None:
    """Classify media records (paths checked with lstat only), write ``work/unhashed/media``."""
    from pyspark.sql import functions as F

    med = _parse(spark, path, schema, _scratch(layout, "media"), keep_raw=F.lit(True))
    paths = [r["p"] for r in med.where(~F.col("_inv")).select(F.col("j.path").alias("p"))
             .where(F.col("p").isNotNull()).distinct().collect()]
    bad_paths = classify_media_paths(campaign_dir / "media", paths)
    bad_df = spark.createDataFrame(sorted(bad_paths.items()) or [], "_bp string, _fs string")
    # Only the posts media point at: a broadcast-sized slice of the released posts.
    post_ids = med.where(~F.col("_inv")).select(F.col("j.post_id").alias("_pid")).where(F.col("_pid").isNotNull())
    released_posts = (
        spark.read.parquet(str(layout.work_table(VARIANT, "posts")))
        .select(F.col("tweetid").alias("_pid"), F.col("userid").alias("_puid"))
        .join(F.broadcast(post_ids.distinct()), "_pid", "left_semi")
    )
    med = (
        med.join(F.broadcast(bad_df), F.col("j.path") == F.col("_bp"), "left")
        .join(campaign_ids, F.col("j.user_id") == F.col("cid"), "left")
        .join(F.broadcast(deletions.where(F.col("kind") == "media").select(F.col("id").alias("_del"))),
              F.col("j.media_key") == F.col("_del"), "left")
        .join(F.broadcast(released_posts), F.col("j.post_id") == F.col("_pid"), "left")
    )
    is_post_media = ~_blank("j.post_id")
    med = _classify(
        med, F.col("j.media_key"),
        [("missing_id", ~is_post_media & _blank("j.user_id")),
         ("unknown_kind", ~F.coalesce(F.col("j.kind").isin(*MEDIA_KINDS), F.lit(False))),
         ("negative_count", _negative("j.bytes")),
         ("path_escape", _blank("j.path") | (F.col("_fs") == "path_escape")),
         ("symlink", F.col("_fs") == "symlink"),
         ("missing_file", F.col("_fs") == "missing_file")],
        [("deleted", F.col("_del").isNotNull()), retractions.check(),
         ("post_not_released", is_post_media & F.col("_pid").isNull()),
         ("not_campaign_account", ~is_post_media & F.col("cid").isNull())],
        cached,
    )
    media = med.where(F.col("disposition") == "released").select(
        F.col("j.media_key").alias("media_key"),
        F.when(is_post_media, F.col("j.post_id")).alias("tweetid"),
        F.when(is_post_media, F.col("_puid")).otherwise(F.col("j.user_id")).alias("userid"),
        F.col("j.kind").alias("kind"),
        F.regexp_replace(F.regexp_replace(F.col("j.path"), r"\\", "/"), r"^(\./)+", "").alias("source_path"),
        F.col("j.bytes").alias("bytes"),
        F.lower(F.col("j.sha256")).alias("sha256"),
    )
    media.write.mode("overwrite").parquet(str(layout.work_table(VARIANT, "media")))
    book("media", med, path)


def _read_deleted(spark: SparkSession, path: Path | None, schema: Any) -> DataFrame:
    """Deleted ids by kind (``post`` or ``media``); unreadable lines are logged and ignored."""
    from pyspark.sql import functions as F

    df = _read_lines(spark, path, schema).where(~_blank("value"))
    bad = df.where(_is_invalid_json() | _blank("j.id")).count() if path else 0
    if bad:
        log.warning("%s: %d unreadable deletion lines ignored; check the export", path, bad)
    return (
        df.where(~_is_invalid_json() & ~_blank("j.id"))
        .select(F.lower(F.trim("j.kind")).alias("kind"), F.col("j.id").alias("id"))
        .distinct()
        .persist()
    )


def _write_identities(layout: StagingLayout, campaign_ids: DataFrame, accounts: DataFrame,
                      mentions: DataFrame) -> None:
    """Internal table of campaign accounts' identifiers (userid, names, follower count).

    One row per campaign account (names from its account record, if released) plus one row
    per other screen name other posts used to mention it, so pseudonymization can replace
    ``@old_name`` mentions of renamed accounts too.
    """
    from pyspark.sql import functions as F

    base = campaign_ids.join(accounts, F.col("cid") == accounts["userid"], "left").select(
        F.col("cid").alias("userid"), F.col("user_screen_name").alias("screen_name"),
        F.col("user_display_name").alias("display_name"), "follower_count")
    extra = (
        mentions.join(campaign_ids, F.col("userid") == F.col("cid"), "left_semi")
        .join(accounts.select(F.col("userid").alias("_u"), F.col("follower_count")), F.col("userid") == F.col("_u"), "left")
        .select("userid", "screen_name", F.lit(None).cast("string").alias("display_name"), "follower_count")
        .where(F.col("screen_name").isNotNull())
    )
    base.unionByName(extra).distinct().write.mode("overwrite").parquet(str(layout.work_table(VARIANT, "identities")))


__all__ = [
    "ACCOUNT_COLUMNS", "POST_COLUMNS", "MEDIA_WORK_COLUMNS", "IDENTITY_COLUMNS", "extract_campaign",
    "classify_media_paths", "client_name", "parse_v11_time",
]
