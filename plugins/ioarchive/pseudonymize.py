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
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive.campaign import check_release_id
from ioarchive.schema import ACCOUNT_COLUMNS, DEFAULT_THRESHOLD, LIST_COLUMNS, POST_COLUMNS
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


def pseudonym_maps(spark: SparkSession, identities: DataFrame, key: bytes, threshold: int) -> DataFrame:
    """One row: ``id_map`` (userid -> pseudonym) and ``token_map`` (lower token -> pseudonym).

    Built from the internal ``identities`` table (campaign accounts, their names and follower
    counts). The row stays inside Spark; the driver never sees pseudonyms or the key.
    """
    from pyspark.sql import functions as F

    per_account = identities.groupBy("userid").agg(F.max("follower_count").alias("fc"))
    targets = per_account.where(F.col("fc").isNull() | (F.col("fc") < F.lit(threshold))).select("userid")
    hashed = targets.crossJoin(F.broadcast(_key_frame(spark, key))).select(
        "userid", pseudonym_column(F.col("pseudonym_key"), F.col("userid")).alias("pseudonym")
    )
    names = identities.join(hashed, "userid").where(F.col("screen_name").rlike(f"^{TOKEN}+$")).select(
        F.lower("screen_name").alias("token"), "pseudonym")
    ids = hashed.where(F.col("userid").rlike(f"^{TOKEN}+$")).select(F.lower("userid").alias("token"), "pseudonym")
    tokens = names.unionByName(ids).groupBy("token").agg(F.min("pseudonym").alias("pseudonym"))
    id_map = hashed.agg(
        F.map_from_entries(F.collect_list(F.struct("userid", "pseudonym"))).alias("id_map"),
        F.count(F.lit(1)).alias("pseudonymized_accounts"),
    )
    token_map = tokens.agg(F.map_from_entries(F.collect_list(F.struct("token", "pseudonym"))).alias("token_map"))
    return id_map.crossJoin(token_map)


def redact_text(text: Column, token_map: Column) -> Column:
    """Replace every word token of ``text`` that is a pseudonymized identifier (see module doc).

    Tokens are looked up in ``token_map``; only the hits are rewritten, each with a
    case-insensitive regex anchored on non-token characters, so ``@abc`` never touches
    ``@abcd``.
    """
    from pyspark.sql import functions as F

    hits = F.array_distinct(F.filter(
        F.transform(F.regexp_extract_all(text, F.lit(f"({TOKEN}+)"), 1), lambda t: F.lower(t)),
        lambda t: F.element_at(token_map, t).isNotNull(),
    ))
    return F.when(text.isNull(), text).otherwise(F.aggregate(
        hits, text,
        lambda acc, t: F.regexp_replace(
            acc, F.concat(F.lit(f"(?i)(?<!{TOKEN})"), t, F.lit(f"(?!{TOKEN})")), F.element_at(token_map, t)),
    ))


def _mapped(col: Column, id_map: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.element_at(id_map, col), col)


def _account_part(p: Column, token_map: Column) -> dict[str, Column]:
    """Hashed values of the 10 account columns given the row's pseudonym ``p`` (or null)."""
    from pyspark.sql import functions as F

    out = {c: F.col(c) for c in ACCOUNT_COLUMNS}
    for c in ("userid", "user_display_name", "user_screen_name"):
        out[c] = F.when(p.isNotNull(), p).otherwise(F.col(c))
    for c in FREE_TEXT_COLUMNS:
        out[c] = redact_text(F.col(c), token_map)
    return out


def hashed_accounts(accounts: DataFrame, maps: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    df = accounts.crossJoin(F.broadcast(maps))
    cols = _account_part(F.element_at(F.col("id_map"), F.col("userid")), F.col("token_map"))
    return df.select(*[cols[c].alias(c) for c in ACCOUNT_COLUMNS])


def hashed_posts(posts: DataFrame, maps: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    df = posts.crossJoin(F.broadcast(maps))
    id_map, token_map = F.col("id_map"), F.col("token_map")
    cols = _account_part(F.element_at(id_map, F.col("userid")), token_map)
    cols["tweet_text"] = redact_text(F.col("tweet_text"), token_map)
    cols["in_reply_to_userid"] = _mapped(F.col("in_reply_to_userid"), id_map)
    cols["retweet_userid"] = _mapped(F.col("retweet_userid"), id_map)
    for c in LIST_COLUMNS:
        if c == "user_mentions":
            cols[c] = F.transform(F.col(c), lambda x: _mapped(x, id_map))
        else:
            cols[c] = F.transform(F.col(c), lambda x: redact_text(x, token_map))
    for c in ("latitude", "longitude"):
        cols[c] = F.when(F.col(c).isNotNull(), F.lit("present")).otherwise(F.lit("absent"))
    for c in POST_COLUMNS:
        cols.setdefault(c, F.col(c))
    return df.select(*[cols[c].alias(c) for c in POST_COLUMNS])


def hashed_media(media: DataFrame, maps: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    df = media.crossJoin(F.broadcast(maps))
    return df.select(*[
        _mapped(F.col("userid"), F.col("id_map")).alias("userid") if c == "userid" else F.col(c)
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
    maps = pseudonym_maps(spark, read["identities"], key, threshold).persist()
    try:
        count = maps.select("pseudonymized_accounts").first()[0]
        hashed_accounts(read["accounts"], maps).write.mode("overwrite").parquet(
            str(layout.work_table("hashed", "accounts")))
        hashed_posts(read["posts"], maps).write.mode("overwrite").parquet(str(layout.work_table("hashed", "posts")))
        hashed_media(read["media"], maps).write.mode("overwrite").parquet(str(layout.work_table("hashed", "media")))
    finally:
        maps.unpersist()
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
