"""Pseudonymization: the hashed variant's work tables from the unhashed ones (RELEASE_SPEC s.4).

Which accounts: campaign accounts with ``follower_count < threshold``, and campaign accounts
whose follower count is unknown (no usable account record): when in doubt, protect.

What is replaced, by ``base64url(HMAC-SHA256(key, userid))`` (Spark's native ``hmac``, no
Python UDF): ``userid``, ``user_display_name``, ``user_screen_name`` of their rows; their ids
in ``in_reply_to_userid``, ``retweet_userid``, ``user_mentions``; and in free text
(``tweet_text``, profile description/location/url, ``urls``, ``hashtags``, ``poll_choices``)
every ASCII word token (``[A-Za-z0-9_]+`` with no such character on either side) equal,
ignoring case, to one of their screen names (current, or as seen in mentions) or userids.
``@name`` therefore becomes ``@<pseudonym>``; a bare ``name`` is replaced too, because the
public variant must hold no raw identifier in any byte. Display names inside free text are not
replaced (they are ordinary words too); see docs/decisions.md.

The key never enters a query plan as a literal: it is a one-row DataFrame column, so it is not
printed by ``explain`` or written to the Spark event log (a test checks the event log).
Lookups go to a hash table kept in one broadcast array value (see
:func:`lookup_table`): every row is rewritten where it is, with no explode, shuffle or join
back, so the cost stays linear in the data whatever the campaign size.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive.errors import InvalidRelease, KeyUnavailable, MissingStageOutput
from ioarchive.extract import stats as release_stats
from ioarchive.request.campaign import check_release_id
from ioarchive.schema import ACCOUNT_COLUMNS, DEFAULT_THRESHOLD, POST_COLUMNS
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

TOKEN = "[A-Za-z0-9_]"
METHOD = "base64url(HMAC-SHA256(key, userid)), no padding"
FREE_TEXT_COLUMNS = ("user_reported_location", "user_profile_description", "user_profile_url")


def pseudonym_column(key: Column, userid: Column) -> Column:
    """Spark twin of ``ioarchive.pseudonymize.pseudonym.pseudonym``: 43 characters of ``[A-Za-z0-9_-]``."""
    from pyspark.sql import functions as F

    b64 = F.base64(F.hmac(key, F.encode(userid, "UTF-8")))
    return F.regexp_replace(F.translate(b64, "+/", "-_"), "=+$", "")


def _key_frame(spark: SparkSession, key: bytes) -> DataFrame:
    """The key as a one-row binary column: data, never a literal in the plan."""
    return spark.createDataFrame([(bytearray(key),)], "pseudonym_key binary")


def pseudonym_keys(spark: SparkSession, identities: DataFrame, key: bytes, threshold: int) -> DataFrame:
    """Lookup table ``(key, pseudonym)``: ``i:<userid>`` for id columns, ``t:<lower token>`` for text.

    Built from the internal ``identities`` table (campaign accounts, their names and follower
    counts). It stays inside Spark; the driver never sees pseudonyms or the key.
    """
    from pyspark.sql import functions as F

    per_account = identities.groupBy("userid").agg(F.max("follower_count").alias("fc"))
    targets = per_account.where(F.col("fc").isNull() | (F.col("fc") < F.lit(threshold))).select("userid")
    hashed = targets.crossJoin(F.broadcast(_key_frame(spark, key))).select(
        "userid", pseudonym_column(F.col("pseudonym_key"), F.col("userid")).alias("pseudonym")
    )
    names = identities.join(hashed, "userid").where(F.col("screen_name").rlike(f"^{TOKEN}+$")).select(
        F.concat(F.lit("t:"), F.lower("screen_name")).alias("key"), "pseudonym")
    id_tokens = hashed.where(F.col("userid").rlike(f"^{TOKEN}+$")).select(
        F.concat(F.lit("t:"), F.lower("userid")).alias("key"), "pseudonym")
    ids = hashed.select(F.concat(F.lit("i:"), F.col("userid")).alias("key"), "pseudonym")
    # A token shared by two accounts (a renamed account's old name) maps to one pseudonym.
    return ids.unionByName(names).unionByName(id_tokens).groupBy("key").agg(F.min("pseudonym").alias("pseudonym"))


LUT = "_lut"
BUCKETS_PER_KEY = 4
"""Mostly empty buckets: most tokens are not identifiers and stop at an empty bucket."""


def lookup_table(keys: DataFrame) -> DataFrame:
    """The ``(key, pseudonym)`` table as one row holding a hash table in an array (``_lut``).

    Spark's map lookups scan every key, and a join per token needs an explode, a group and a
    join back per post. Instead the keys are spread over ``4n`` buckets by ``xxhash64``; bucket
    ``b`` is element ``b`` of the array, a short list of ``(key, pseudonym)``. The one-row frame
    is broadcast to every row (:func:`_with_lookup`); it is data, never a literal in the plan, so
    no pseudonym, raw identifier or key is printed by ``explain`` or the event log.
    """
    from pyspark.sql import functions as F

    buckets = max(1, BUCKETS_PER_KEY * keys.count())
    spark = keys.sparkSession
    grouped = keys.groupBy(F.pmod(F.xxhash64("key"), F.lit(buckets)).alias("_b")).agg(
        F.collect_list(F.struct("key", "pseudonym")).alias("_e"))
    empty = F.array().cast("array<struct<key:string,pseudonym:string>>")
    dense = spark.range(buckets).join(grouped, F.col("id") == F.col("_b"), "left").select(
        F.struct(F.col("id"), F.coalesce(F.col("_e"), empty).alias("_e")).alias("_s"))
    return dense.agg(F.transform(F.sort_array(F.collect_list("_s")), lambda s: s["_e"]).alias(LUT))


def _with_lookup(df: DataFrame, lut: DataFrame) -> DataFrame:
    """``df`` plus the ``_lut`` column (a broadcast one-row cross join: no shuffle, no copy).

    Not a scalar subquery: Spark refuses subqueries inside higher-order functions, and the
    lookups run inside ``transform`` over a text's pieces.
    """
    from pyspark.sql import functions as F

    return df.crossJoin(F.broadcast(lut))


def _find(lut: Column, key: Column) -> Column:
    """Pseudonym stored under ``key`` in :func:`lookup_table`'s hash table, or null."""
    from pyspark.sql import functions as F

    # Higher-order functions are evaluated row by row, without common subexpressions: the bucket
    # is named once (``get`` of an empty filter result is null, so no separate size test).
    bucket = F.get(lut, F.pmod(F.xxhash64(key), F.size(lut)).cast("int"))
    return F.get(F.filter(bucket, lambda e: e["key"] == key), 0)["pseudonym"]


def _id(lut: Column, col: Column) -> Column:
    """Pseudonym of an id value if it belongs to a pseudonymized account, else the value."""
    from pyspark.sql import functions as F

    return F.coalesce(_find(lut, F.concat(F.lit("i:"), col)), col)


def _is_token(piece: Column) -> Column:
    """A piece of :func:`redact_text` is a token run when its first character is ``[A-Za-z0-9_]``.

    Separator runs (about half the pieces) skip the lookup; ``ascii`` is the first character's
    code, an arithmetic test instead of a regular expression per piece.
    """
    from pyspark.sql import functions as F

    c = F.ascii(piece)
    return c.between(48, 57) | c.between(65, 90) | c.between(97, 122) | (c == 95)


def redact_text(lut: Column, text: Column) -> Column:
    """Replace every word token of ``text`` that is a pseudonymized identifier (see module doc).

    The text is cut into maximal runs of token and non-token characters (their concatenation is
    the text), each token run is looked up (lower-cased) and replaced by its pseudonym: one
    pass, so ``@abc`` never touches ``@abcd`` and a pseudonym is never rewritten again.
    """
    from pyspark.sql import functions as F

    pieces = F.regexp_extract_all(text, F.lit(f"{TOKEN}+|[^A-Za-z0-9_]+"), 0)
    replaced = F.transform(pieces, lambda p: F.when(
        _is_token(p), F.coalesce(_find(lut, F.concat(F.lit("t:"), F.lower(p))), p)).otherwise(p))
    return F.when(text.isNull() | (text == ""), text).otherwise(F.array_join(replaced, ""))


def hashed_accounts(accounts: DataFrame, keys: DataFrame, keep_raw_userid: bool = False,
                    table: DataFrame | None = None) -> DataFrame:
    from pyspark.sql import functions as F

    accounts = _with_lookup(accounts, lookup_table(keys) if table is None else table)
    lut = F.col(LUT)
    # The pseudonym is computed once, as a column: the same lambda expression used three times
    # in one projection gave wrong (raw) values in Spark 4.3.
    df = accounts.select(*ACCOUNT_COLUMNS, _find(lut, F.concat(F.lit("i:"), F.col("userid"))).alias("_p"),
                         *[redact_text(lut, F.col(c)).alias(f"_r_{c}") for c in FREE_TEXT_COLUMNS])
    p = F.col("_p")
    cols = {c: F.col(c) for c in ACCOUNT_COLUMNS}
    for c in ("userid", "user_display_name", "user_screen_name"):
        cols[c] = F.when(p.isNotNull(), p).otherwise(F.col(c))
    for c in FREE_TEXT_COLUMNS:
        cols[c] = F.col(f"_r_{c}")
    out = [cols[c].alias(c) for c in ACCOUNT_COLUMNS]
    return df.select(*out, F.col("userid").alias("_raw_userid")) if keep_raw_userid else df.select(*out)


def hashed_posts(posts: DataFrame, hashed_accounts_raw: DataFrame, keys: DataFrame,
                 table: DataFrame | None = None) -> DataFrame:
    """Hashed posts; account columns come from the hashed accounts (joined on the raw userid).

    Row by row, no shuffle: ids and text tokens are looked up in the broadcast hash table of
    :func:`lookup_table`, the account columns come from a broadcast join.
    """
    from pyspark.sql import functions as F

    posts = _with_lookup(posts, lookup_table(keys) if table is None else table)
    lut = F.col(LUT)
    own = [c for c in POST_COLUMNS if c not in ACCOUNT_COLUMNS]
    p = _find(lut, F.concat(F.lit("i:"), F.col("userid")))
    cols: dict[str, Column] = {c: F.col(c) for c in own}
    cols["tweet_text"] = redact_text(lut, F.col("tweet_text"))
    cols["in_reply_to_userid"] = _id(lut, F.col("in_reply_to_userid"))
    cols["retweet_userid"] = _id(lut, F.col("retweet_userid"))
    cols["user_mentions"] = F.transform(F.col("user_mentions"), lambda m: _id(lut, m))
    for c in ("hashtags", "urls", "poll_choices"):
        cols[c] = F.transform(F.col(c), lambda x: redact_text(lut, x))
    for c in ("latitude", "longitude"):
        cols[c] = F.when(F.col(c).isNotNull(), F.lit("present")).otherwise(F.lit("absent"))
    df = posts.select(F.col("userid").alias("_raw_userid"), p.alias("_p"), *[cols[c].alias(c) for c in own])
    df = df.join(F.broadcast(hashed_accounts_raw), "_raw_userid", "left")
    # Posts of campaign accounts without a released record: no account columns, id still hashed.
    df = df.withColumn("userid", F.coalesce(F.col("_p"), F.col("userid"), F.col("_raw_userid")))
    for c in ("user_display_name", "user_screen_name"):
        df = df.withColumn(c, F.when(F.col("_p").isNotNull(), F.col("_p")).otherwise(F.col(c)))
    return df.select(*POST_COLUMNS)


def hashed_media(media: DataFrame, keys: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    ids = keys.where(F.col("key").startswith("i:")).select(
        F.substring("key", 3, 1000).alias("_uid"), F.col("pseudonym").alias("_p"))
    df = media.join(F.broadcast(ids), media["userid"] == F.col("_uid"), "left")
    return df.select(*[
        F.coalesce(F.col("_p"), F.col("userid")).alias("userid") if c == "userid" else F.col(c)
        for c in media.columns
    ])


def publish_hashed_stats(spark: SparkSession, layout: StagingLayout, table: DataFrame) -> dict[str, Any]:
    """The hashed variant's ``stats.json`` and charts (``ioarchive.extract.stats``).

    Extraction's counts hold no account column; the only text that may name an account is a
    hashtag. A hashtag is shown only if pseudonymization leaves it unchanged (:func:`redact_text`
    with the same lookup table): one containing a pseudonymized account's screen name or id as
    a word is left out, and no pseudonym is ever written there either.
    """
    from pyspark.sql import functions as F

    aggregate = release_stats.load_aggregate(layout)
    candidates = release_stats.hashtag_candidates(aggregate)
    allowed: set[str] = set()
    if candidates:
        df = _with_lookup(spark.createDataFrame([(h,) for h in candidates], "h string"), table)
        allowed = {r["h"] for r in df.where(redact_text(F.col(LUT), F.col("h")) == F.col("h")).select("h").collect()}
    return release_stats.publish(layout, "hashed", allowed.__contains__)


def pseudonymize_release(
    spark: SparkSession,
    staging_dir: str | Path,
    release_id: str,
    key: bytes,
    key_id: str,
    threshold: int = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Write ``work/hashed/{accounts,posts,media}``, ``work/hashed/pseudonymization.json`` and the
    hashed variant's statistics (``release/hashed/stats.json``, ``charts/``).

    Returns the pseudonymization record ``{key_id, threshold, pseudonymized_accounts, method}``
    (never the key). Reads ``work/unhashed/`` written by ``extract_campaign``.
    """
    check_release_id(release_id)
    if not key:
        raise KeyUnavailable("pseudonymization key is empty")
    if threshold < 0:
        raise InvalidRelease(f"threshold must be >= 0, got {threshold}")
    layout = StagingLayout(Path(staging_dir), release_id)
    source = {t: layout.work_table("unhashed", t) for t in ("accounts", "posts", "media", "identities")}
    for _table, path in source.items():
        if not path.exists():
            raise MissingStageOutput(
                f"release {release_id}: {path} does not exist; run `ioarchive extract` (extraction) first")
    hashed_root = layout.work_dir("hashed")
    for table in ("accounts", "posts", "media"):
        shutil.rmtree(layout.work_table("hashed", table), ignore_errors=True)

    read = {t: spark.read.parquet(str(p)) for t, p in source.items()}
    keys = pseudonym_keys(spark, read["identities"], key, threshold).persist()
    accounts = table = None
    try:
        table = lookup_table(keys).persist()
        count = keys.where(keys["key"].startswith("i:")).count()
        accounts = hashed_accounts(read["accounts"], keys, keep_raw_userid=True, table=table).persist()
        accounts.drop("_raw_userid").write.mode("overwrite").parquet(str(layout.work_table("hashed", "accounts")))
        hashed_posts(read["posts"], accounts, keys, table=table).write.mode("overwrite").parquet(
            str(layout.work_table("hashed", "posts")))
        hashed_media(read["media"], keys).write.mode("overwrite").parquet(str(layout.work_table("hashed", "media")))
        publish_hashed_stats(spark, layout, table)
    finally:
        for df in (accounts, table, keys):
            if df is not None:
                df.unpersist()
    record = {
        "key_id": key_id,
        "threshold": int(threshold),
        "pseudonymized_accounts": int(count),
        "method": METHOD,
    }
    hashed_root.mkdir(parents=True, exist_ok=True)
    (hashed_root / "pseudonymization.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                                                       encoding="utf-8")
    log.info("release %s: pseudonymized %d accounts (threshold %d, key id %s)", release_id, count, threshold, key_id)
    return record
