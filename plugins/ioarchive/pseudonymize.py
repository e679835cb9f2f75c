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
Lookups are broadcast hash joins of exploded candidates (ids, text tokens) against a small
``(key, pseudonym)`` table, so the cost stays linear in the data whatever the campaign size.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive.campaign import check_release_id
from ioarchive.schema import ACCOUNT_COLUMNS, DEFAULT_THRESHOLD, POST_COLUMNS
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

TOKEN = "[A-Za-z0-9_]"
METHOD = "base64url(HMAC-SHA256(key, userid)), no padding"
FREE_TEXT_COLUMNS = ("user_reported_location", "user_profile_description", "user_profile_url")


def pseudonym_column(key: Column, userid: Column) -> Column:
    """Spark twin of ``ioarchive.pseudonym.pseudonym``: 43 characters of ``[A-Za-z0-9_-]``."""
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


def _tokens(text: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.regexp_extract_all(text, F.lit(f"({TOKEN}+)"), 1), F.array().cast("array<string>"))


def _with_hits(df: DataFrame, row_key: str, keys: DataFrame, id_cols: tuple[str, ...] = (),
               id_array_cols: tuple[str, ...] = (), text_cols: tuple[str, ...] = (),
               text_array_cols: tuple[str, ...] = ()) -> DataFrame:
    """``df`` plus ``_hits``: a small per-row map of the lookup keys this row contains.

    Every candidate (id values, text tokens) is exploded and matched against ``keys`` with a
    broadcast hash join; hits are gathered per row and joined back. This keeps the cost linear
    in the data whatever the number of accounts (a Spark map lookup is a linear scan).
    """
    from pyspark.sql import functions as F

    empty = F.array().cast("array<string>")
    parts = [F.array(F.concat(F.lit("i:"), F.col(c))) for c in id_cols]
    parts += [F.transform(F.coalesce(F.col(c), empty), lambda x: F.concat(F.lit("i:"), x)) for c in id_array_cols]
    text_tokens = [_tokens(F.col(c)) for c in text_cols]
    text_tokens += [F.flatten(F.transform(F.coalesce(F.col(c), empty), _tokens)) for c in text_array_cols]
    parts += [F.transform(t, lambda x: F.concat(F.lit("t:"), F.lower(x))) for t in text_tokens]
    candidates = F.array_distinct(F.filter(F.concat(*parts), lambda k: k.isNotNull()))
    hits = (
        df.select(F.col(row_key).alias("_rk"), F.explode(candidates).alias("key"))
        .join(F.broadcast(keys), "key")
        .groupBy("_rk")
        .agg(F.map_from_entries(F.collect_list(F.struct("key", "pseudonym"))).alias("_hits"))
    )
    return df.join(hits, df[row_key] == hits["_rk"], "left").drop("_rk")


def _hit_map() -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.col("_hits"), F.create_map().cast("map<string,string>"))


def _id(col: Column) -> Column:
    """Pseudonym of an id value if it belongs to a pseudonymized account, else the value."""
    from pyspark.sql import functions as F

    return F.coalesce(F.element_at(_hit_map(), F.concat(F.lit("i:"), col)), col)


def redact_text(text: Column) -> Column:
    """Replace every word token of ``text`` that is a pseudonymized identifier (see module doc).

    Uses the row's ``_hits``: each hit is rewritten with a case-insensitive regex anchored on
    non-token characters, so ``@abc`` never touches ``@abcd``.
    """
    from pyspark.sql import functions as F

    token_hits = F.filter(F.map_entries(_hit_map()), lambda e: e["key"].startswith("t:"))
    return F.when(text.isNull(), text).otherwise(F.aggregate(
        token_hits, text,
        lambda acc, e: F.regexp_replace(
            acc, F.concat(F.lit(f"(?i)(?<!{TOKEN})"), F.substring(e["key"], 3, 1000), F.lit(f"(?!{TOKEN})")),
            e["value"]),
    ))


def hashed_accounts(accounts: DataFrame, keys: DataFrame, keep_raw_userid: bool = False) -> DataFrame:
    from pyspark.sql import functions as F

    df = _with_hits(accounts, "userid", keys, id_cols=("userid",), text_cols=FREE_TEXT_COLUMNS)
    p = F.element_at(_hit_map(), F.concat(F.lit("i:"), F.col("userid")))
    cols = {c: F.col(c) for c in ACCOUNT_COLUMNS}
    for c in ("userid", "user_display_name", "user_screen_name"):
        cols[c] = F.when(p.isNotNull(), p).otherwise(F.col(c))
    for c in FREE_TEXT_COLUMNS:
        cols[c] = redact_text(F.col(c))
    out = [cols[c].alias(c) for c in ACCOUNT_COLUMNS]
    return df.select(*out, F.col("userid").alias("_raw_userid")) if keep_raw_userid else df.select(*out)


def hashed_posts(posts: DataFrame, hashed_accounts_raw: DataFrame, keys: DataFrame) -> DataFrame:
    """Hashed posts; account columns come from the hashed accounts (joined on the raw userid)."""
    from pyspark.sql import functions as F

    own = [c for c in POST_COLUMNS if c not in ACCOUNT_COLUMNS]
    df = _with_hits(
        posts.select("userid", *own), "tweetid", keys,
        id_cols=("userid", "in_reply_to_userid", "retweet_userid"), id_array_cols=("user_mentions",),
        text_cols=("tweet_text",), text_array_cols=("hashtags", "urls", "poll_choices"),
    )
    p = F.element_at(_hit_map(), F.concat(F.lit("i:"), F.col("userid")))
    cols: dict[str, Column] = {c: F.col(c) for c in own}
    cols["tweet_text"] = redact_text(F.col("tweet_text"))
    cols["in_reply_to_userid"] = _id(F.col("in_reply_to_userid"))
    cols["retweet_userid"] = _id(F.col("retweet_userid"))
    cols["user_mentions"] = F.transform(F.col("user_mentions"), _id)
    for c in ("hashtags", "urls", "poll_choices"):
        cols[c] = F.transform(F.col(c), redact_text)
    for c in ("latitude", "longitude"):
        cols[c] = F.when(F.col(c).isNotNull(), F.lit("present")).otherwise(F.lit("absent"))
    df = df.select(F.col("userid").alias("_raw_userid"), p.alias("_p"), *[cols[c].alias(c) for c in own])
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


def pseudonymize_release(
    spark: SparkSession,
    staging_dir: str | Path,
    release_id: str,
    key: bytes,
    key_id: str,
    threshold: int = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Write ``work/hashed/{accounts,posts,media}`` and ``work/hashed/pseudonymization.json``.

    Returns the pseudonymization record ``{key_id, threshold, pseudonymized_accounts, method}``
    (never the key). Reads ``work/unhashed/`` written by ``extract_campaign``.
    """
    check_release_id(release_id)
    if not key:
        raise ValueError("pseudonymization key is empty")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    layout = StagingLayout(Path(staging_dir), release_id)
    source = {t: layout.work_table("unhashed", t) for t in ("accounts", "posts", "media", "identities")}
    for _table, path in source.items():
        if not path.exists():
            raise FileNotFoundError(
                f"release {release_id}: {path} does not exist; run `ioarchive extract` (extraction) first")
    hashed_root = layout.root / "work" / "hashed"
    for table in ("accounts", "posts", "media"):
        shutil.rmtree(layout.work_table("hashed", table), ignore_errors=True)

    read = {t: spark.read.parquet(str(p)) for t, p in source.items()}
    keys = pseudonym_keys(spark, read["identities"], key, threshold).persist()
    accounts = hashed_accounts(read["accounts"], keys, keep_raw_userid=True).persist()
    try:
        count = keys.where(keys["key"].startswith("i:")).count()
        accounts.drop("_raw_userid").write.mode("overwrite").parquet(str(layout.work_table("hashed", "accounts")))
        hashed_posts(read["posts"], accounts, keys).write.mode("overwrite").parquet(
            str(layout.work_table("hashed", "posts")))
        hashed_media(read["media"], keys).write.mode("overwrite").parquet(str(layout.work_table("hashed", "media")))
    finally:
        accounts.unpersist()
        keys.unpersist()
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
