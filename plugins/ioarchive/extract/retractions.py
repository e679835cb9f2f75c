"""Retracted accounts in the extraction (RELEASE_SPEC 8): left out, counted, and unnamed.

An account the platform restored after an appeal is recorded in the investigations registry
(``ioarchive.gates.registry``, table ``ioarchive_retractions``). The task that runs extraction
copies the release's retracted ids into ``<staging>/retractions.json`` (:func:`write`), so the
Spark job needs no database access and the staging folder says what it honoured. Then:

- the account, its posts and its media are excluded with reason ``retracted`` (reconciliation);
- posts of other accounts that stay (retweets of it, replies to it, mentions of it) no longer
  name it: ``in_reply_to_userid`` and ``retweet_userid`` are blanked, its id is dropped from
  ``user_mentions``, its screen names and id are replaced by ``[removed]`` in ``tweet_text``, and
  the text of a retweet of it (its own words) is blanked. Blanking rather than pseudonymizing:
  a pseudonym would still let a researcher link the restored account across releases, which is
  what the appeal revoked (docs/decisions.md, "Retraction").

Kept apart from ``extraction.py`` (one join column and one check per table hook in there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ioarchive.files import atomic_write_bytes
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

REASON = "retracted"
FLAG = "_rt"
"""Column of the campaign-id frame: true for a retracted campaign account."""
REMOVED = "[removed]"
"""What a retracted account's name or id becomes inside kept text (not a valid screen name)."""
_TOKEN = re.compile(r"^[A-Za-z0-9_]+$")


def write(layout: StagingLayout, account_ids: Iterable[str]) -> Path:
    """Record the release's retracted ids for the extraction (sorted: same ids, same bytes)."""
    ids = sorted({str(i) for i in account_ids})
    doc = {"release_id": layout.release_id, "account_ids": ids}
    layout.root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(layout.retractions, (json.dumps(doc, indent=1) + "\n").encode())
    return layout.retractions


def write_from_registry(layout: StagingLayout, *, db_url: str | None = None) -> list[str]:
    """Copy the registry's retractions of the release into the staging folder; returns the ids.

    Called by the extract task before the Spark job: a registry that cannot be read fails the
    task (retried: a database hiccup), never an extraction that silently forgets a retraction.
    """
    from ioarchive.gates.registry import retracted_accounts

    ids = [r.account_id for r in retracted_accounts(layout.release_id, db_url=db_url)]
    write(layout, ids)
    return ids


def load(layout: StagingLayout) -> list[str]:
    """Retracted ids recorded for this staging folder (none when the file is absent)."""
    if not layout.retractions.exists():
        return []
    doc = json.loads(layout.retractions.read_text(encoding="utf-8"))
    return sorted({str(i) for i in doc.get("account_ids", [])})


def campaign_ids(spark: SparkSession, account_ids: Iterable[str], retracted: Iterable[str]) -> DataFrame:
    """Broadcast frame ``(cid, _rt)`` of the campaign's accounts; ``_rt`` marks retracted ones."""
    from pyspark.sql import functions as F

    gone = set(retracted)
    rows = [(i, i in gone) for i in sorted(set(account_ids))]
    return F.broadcast(spark.createDataFrame(rows, f"cid string, {FLAG} boolean"))


def kept(campaign: DataFrame) -> DataFrame:
    """The campaign-id frame without retracted accounts (pseudonymization never sees them)."""
    from pyspark.sql import functions as F

    return campaign.where(~F.col(FLAG))


def check() -> tuple[str, Column]:
    """The exclusion check of a table joined with the campaign-id frame."""
    from pyspark.sql import functions as F

    return REASON, F.coalesce(F.col(FLAG), F.lit(False))


def _names(campaign: DataFrame, accounts_parsed: Path, released_posts: DataFrame) -> tuple[list[str], list[str]]:
    """Retracted ids and every lower-cased name token seen for them (account records, mentions)."""
    from pyspark.sql import functions as F

    ids = sorted(r["cid"] for r in campaign.where(F.col(FLAG)).select("cid").collect())
    if not ids:
        return [], []
    spark = released_posts.sparkSession
    names = {r[0] for r in spark.read.parquet(str(accounts_parsed)).where(F.col("j.id_str").isin(ids))
             .select("j.screen_name").collect()}
    names |= {r[0] for r in released_posts.select(F.explode("j.entities.user_mentions").alias("m"))
              .where(F.col("m.id_str").isin(ids)).select("m.screen_name").distinct().collect()}
    tokens = sorted({t.lower() for t in names | set(ids) if t and _TOKEN.match(t)})
    return ids, tokens


def blank_references(posts: DataFrame, campaign: DataFrame, accounts_parsed: Path,
                     released_posts: DataFrame) -> DataFrame:
    """Released posts (published columns) with every reference to a retracted account removed."""
    from pyspark.sql import functions as F

    ids, tokens = _names(campaign, accounts_parsed, released_posts)
    if not ids:
        return posts
    id_arr = F.array(*[F.lit(i) for i in ids])
    token_arr = F.array(*[F.lit(t) for t in tokens])

    def blank(col: str) -> Column:
        return F.when(F.array_contains(id_arr, F.col(col)), F.lit(None).cast("string")).otherwise(F.col(col))

    pieces = F.regexp_extract_all(F.col("tweet_text"), F.lit("[A-Za-z0-9_]+|[^A-Za-z0-9_]+"), 0)
    redacted = F.array_join(F.transform(pieces, lambda p: F.when(F.array_contains(token_arr, F.lower(p)),
                                                                 F.lit(REMOVED)).otherwise(p)), "")
    retweet_of_retracted = F.coalesce(F.array_contains(id_arr, F.col("retweet_userid")), F.lit(False))
    text = (F.when(retweet_of_retracted, F.lit(""))
            .when(F.col("tweet_text").isNull() | (F.col("tweet_text") == ""), F.col("tweet_text"))
            .otherwise(redacted))
    replaced = {
        "tweet_text": text,
        "in_reply_to_userid": blank("in_reply_to_userid"),
        "retweet_userid": blank("retweet_userid"),
        "user_mentions": F.filter(F.col("user_mentions"), lambda m: ~F.array_contains(id_arr, m)),
    }
    return posts.select(*[replaced[c].alias(c) if c in replaced else F.col(c) for c in posts.columns])
