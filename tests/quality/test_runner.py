"""The data-quality gate: clean data passes every suite; every expectation of every suite file
has a planted corruption that fails it, and the summary names the offending rows; hashed reports
never show a raw identifier.

The suites run on the clean release and on two corrupted copies (Spark DataFrames over the
clean files, passed as ``validate_release(tables=...)``: nothing is rewritten). In a copy every
corruption sits in its own (row, column), frame or table; each declares the (suite,
expectation, named row key) it fails. The tests check that:

- each corruption fails what it declares, and the variant's summary.json names it;
- nothing else fails, and an expectation names exactly the row keys of the corruptions that
  declared it (so corruption A cannot be what made expectation B fail);
- every (suite, expectation) of ``expectations/*.json`` is declared by some corruption, so a new
  expectation without a corruption fails this file.

A corruption fails ONE expectation unless a rule is stated twice by design or one fact implies
another; those groups are declared together, and each says why where it is declared:

- the row count is compared across the variants from both sides, and the reconciliation's
  ``released`` count with both variants: a count change fails both sides, and a change of one
  variant's count also fails that variant's reconciliation check (reconciliation_balanced is
  likewise stated in both posts suites);
- a malformed or null reference (post userid, media userid or tweetid) is never a released
  account or post, so the referential expectation names the same row;
- a list column that is not an array cannot be read as one: the queries reading it as an array
  fail with an error (these casts sit in the second copy, where no row-level list corruption
  needs those queries to run).

The second copy exists because its corruptions conflict with the first's: a reconciliation
``released`` change on a table whose row count is also changed would blur which one failed
what, and a non-array list column stops the list queries from naming rows. It validates only
the suites its corruptions touch.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ioarchive.quality.identifiers import REDACTED, IdentifierSet, tokens
from support.quality import (
    DELETED_MEDIA,
    DELETED_POST,
    RELEASE_ID,
    build_clean_release,
    pseudonymize,
    raw_accounts,
)


def tid(n: int) -> str:
    return str(1500000000000000000 + n)


ACCOUNTS = raw_accounts()
RAW_UID = [a["userid"] for a in ACCOUNTS]
HASHED_UID = [a["userid"] for a in pseudonymize(ACCOUNTS, [])[0]]
SILENT = RAW_UID[6:]
"""Public accounts that never posted and have no media: their keys can be corrupted without
orphaning a post or a media file."""


@pytest.fixture(scope="module")
def clean(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality_clean")
    layout = build_clean_release(spark, root / "staging", root / "campaign")
    return layout, root / "campaign"


@pytest.fixture(scope="module")
def clean_report(spark, clean):
    from ioarchive.quality.runner import validate_release

    layout, campaign = clean
    return validate_release(spark, layout.root, RELEASE_ID, campaign_dir=campaign)


Value = Callable[[], Any]
"""Builds the Spark column written into the corrupted cell (built lazily: needs a session)."""


@dataclass(frozen=True)
class Lit:
    """A literal cell value (kept readable so the plan can be checked without Spark)."""

    value: Any
    cast: str | None = None

    def __call__(self) -> Any:
        from pyspark.sql import functions as F

        col = F.lit(self.value)
        return col.cast(self.cast) if self.cast else col


def _lit(value, cast=None) -> Lit:
    return Lit(value, cast)


def _arr(*values) -> Value:
    def make():
        from pyspark.sql import functions as F

        return F.array(*[F.lit(v) if v is not None else F.lit(None).cast("string") for v in values])

    return make


def _user_path(rest: str) -> Value:
    """A media path under the row's own user key (so only the planted part is wrong)."""
    def make():
        from pyspark.sql import functions as F

        return F.concat(F.col("userid"), F.lit(rest))

    return make


ROWS = "<no row keys>"
"""Declared instead of a row key for expectations that name no rows (schema, type, counts)."""
ERROR = "<query error>"
"""Declared instead of a row key where the expectation's query cannot run (it fails, no rows)."""
NULL = None
"""The key named for a row whose key column was set to null."""

SCREEN0 = ACCOUNTS[0]["user_screen_name"]
BAD_ID = "not-an-id"
BAD_AUTHOR = "not-a-user"
"""A malformed post author (not BAD_ID: a malformed account id, which makes it a released one)."""
# name, variant, table, row key (before the corruption), {column: new value}, expected failures
# [(suite, expectation, the row key named: the new value when the key column itself was changed)]
CORRUPTIONS = [
    # posts, hashed
    ("unique", "hashed", "posts", tid(10), {"tweetid": _lit(tid(11))}, [("posts_hashed", "tweetid_unique", tid(11))]),
    ("id_format", "hashed", "posts", tid(12), {"tweetid": _lit("15x12")}, [("posts_hashed", "tweetid_format", "15x12")]),
    ("tweetid_null", "hashed", "posts", tid(13), {"tweetid": _lit(None, "string")},
     [("posts_hashed", "tweetid_not_null", NULL)]),
    ("threshold", "hashed", "posts", tid(14), {"follower_count": _lit(6000, "long")},
     [("posts_hashed", "threshold_rule", tid(14))]),
    ("leak_screen_name", "hashed", "posts", tid(15), {"tweet_text": _lit(f"hello\nnew line then {SCREEN0}, bye")},
     [("posts_hashed", "no_raw_identifier_leak", tid(15))]),
    ("leak_mention_id", "hashed", "posts", tid(16), {"user_mentions": _arr(RAW_UID[1])},
     [("posts_hashed", "no_raw_identifier_leak", tid(16))]),
    ("leak_display_name", "hashed", "posts", tid(17), {"tweet_text": _lit("praise ZORBLAT   quinnary3!")},
     [("posts_hashed", "no_raw_identifier_leak", tid(17))]),
    ("deleted_post", "hashed", "posts", tid(18), {"tweetid": _lit(DELETED_POST)},
     [("posts_hashed", "no_deleted_post", DELETED_POST)]),
    ("negative_count", "hashed", "posts", tid(19), {"like_count": _lit(-1, "long")},
     [("posts_hashed", "like_count_non_negative", tid(19))]),
    ("retweet_flag", "hashed", "posts", tid(20), {"is_retweet": _lit(True)},
     [("posts_hashed", "is_retweet_matches_retweet_ids", tid(20))]),
    ("list_null_element", "hashed", "posts", tid(21), {"hashtags": _arr("a", None)},
     [("posts_hashed", "list_columns_have_no_null_elements", tid(21))]),
    ("mention_format", "hashed", "posts", tid(22), {"user_mentions": _arr("not an id")},
     [("posts_hashed", "user_mentions_format", tid(22))]),
    ("coordinates_hidden", "hashed", "posts", tid(23), {"latitude": _lit("35.7")},
     [("posts_hashed", "latitude_in_set", tid(23))]),
    # a null author is never a released account (a public author's: the threshold rule is silent)
    ("userid_null", "hashed", "posts", tid(23), {"userid": _lit(None, "string")},
     [("posts_hashed", "userid_not_null", tid(23)), ("posts_hashed", "userid_is_released_account", tid(23))]),
    # a malformed author is never a released account
    ("userid_format", "hashed", "posts", tid(5), {"userid": _lit(BAD_AUTHOR)},
     [("posts_hashed", "userid_format", tid(5)), ("posts_hashed", "userid_is_released_account", tid(5))]),
    ("time_null", "hashed", "posts", tid(9), {"tweet_time": _lit(None, "timestamp")},
     [("posts_hashed", "tweet_time_not_null", tid(9))]),
    ("retweet_id_format", "hashed", "posts", tid(9), {"retweet_tweetid": _lit("x")},
     [("posts_hashed", "retweet_tweetid_format", tid(9))]),
    ("reply_id_format", "hashed", "posts", tid(8), {"in_reply_to_tweetid": _lit("x")},
     [("posts_hashed", "in_reply_to_tweetid_format", tid(8))]),
    ("retweet_null", "hashed", "posts", tid(7), {"is_retweet": _lit(None, "boolean")},
     [("posts_hashed", "is_retweet_not_null", tid(7))]),
    ("quoted_id_format", "hashed", "posts", tid(6), {"quoted_tweet_tweetid": _lit("x")},
     [("posts_hashed", "quoted_tweet_tweetid_format", tid(6))]),
    ("longitude_shown", "hashed", "posts", tid(6), {"longitude": _lit("51.4")},
     [("posts_hashed", "longitude_in_set", tid(6))]),
    ("reply_user_format", "hashed", "posts", tid(1), {"in_reply_to_userid": _lit("x!")},
     [("posts_hashed", "in_reply_to_userid_format", tid(1))]),
    ("reply_count_negative", "hashed", "posts", tid(1), {"reply_count": _lit(-1, "long")},
     [("posts_hashed", "reply_count_non_negative", tid(1))]),
    ("retweet_user_format", "hashed", "posts", tid(14), {"retweet_userid": _lit("x!")},
     [("posts_hashed", "retweet_userid_format", tid(14))]),
    # tid(2)'s author is pseudonymized: still below the threshold, so the threshold rule holds
    ("follower_negative", "hashed", "posts", tid(2), {"follower_count": _lit(-1, "long")},
     [("posts_hashed", "follower_count_non_negative", tid(2))]),
    ("retweet_count_negative", "hashed", "posts", tid(2), {"retweet_count": _lit(-1, "long")},
     [("posts_hashed", "retweet_count_non_negative", tid(2))]),
    ("following_negative_post", "hashed", "posts", tid(3), {"following_count": _lit(-1, "long")},
     [("posts_hashed", "following_count_non_negative", tid(3))]),
    ("longitude_null", "hashed", "posts", tid(3), {"longitude": _lit(None, "string")},
     [("posts_hashed", "longitude_not_null", tid(3))]),
    ("quote_count_negative", "hashed", "posts", tid(0), {"quote_count": _lit(-1, "long")},
     [("posts_hashed", "quote_count_non_negative", tid(0))]),
    ("latitude_null", "hashed", "posts", tid(5), {"latitude": _lit(None, "string")},
     [("posts_hashed", "latitude_not_null", tid(5))]),
    ("not_an_account_hashed", "hashed", "posts", tid(4), {"userid": _lit("1999999999999999999")},
     [("posts_hashed", "userid_is_released_account", tid(4))]),
    # posts, unhashed
    ("not_an_account", "unhashed", "posts", tid(5), {"userid": _lit("1999999999999999999")},
     [("posts_unhashed", "userid_is_released_account", tid(5))]),
    ("retweet_flag_unhashed", "unhashed", "posts", tid(10), {"is_retweet": _lit(True)},
     [("posts_unhashed", "is_retweet_matches_retweet_ids", tid(10))]),
    ("list_null_unhashed", "unhashed", "posts", tid(11), {"urls": _arr(None)},
     [("posts_unhashed", "list_columns_have_no_null_elements", tid(11))]),
    ("mention_format_unhashed", "unhashed", "posts", tid(12), {"user_mentions": _arr("@someone")},
     [("posts_unhashed", "user_mentions_format", tid(12))]),
    ("deleted_post_unhashed", "unhashed", "posts", tid(13), {"tweetid": _lit(DELETED_POST)},
     [("posts_unhashed", "no_deleted_post", DELETED_POST)]),
    ("tweetid_null_unhashed", "unhashed", "posts", tid(14), {"tweetid": _lit(None, "string")},
     [("posts_unhashed", "tweetid_not_null", NULL)]),
    ("unique_unhashed", "unhashed", "posts", tid(15), {"tweetid": _lit(tid(16))},
     [("posts_unhashed", "tweetid_unique", tid(16))]),
    ("id_format_unhashed", "unhashed", "posts", tid(17), {"tweetid": _lit("15x17")},
     [("posts_unhashed", "tweetid_format", "15x17")]),
    ("userid_null_unhashed", "unhashed", "posts", tid(18), {"userid": _lit(None, "string")},
     [("posts_unhashed", "userid_not_null", tid(18)), ("posts_unhashed", "userid_is_released_account", tid(18))]),
    ("userid_format_unhashed", "unhashed", "posts", tid(19), {"userid": _lit(BAD_AUTHOR)},
     [("posts_unhashed", "userid_format", tid(19)), ("posts_unhashed", "userid_is_released_account", tid(19))]),
    ("retweet_user_format_unhashed", "unhashed", "posts", tid(19), {"retweet_userid": _lit("x")},
     [("posts_unhashed", "retweet_userid_format", tid(19))]),
    ("reply_id_format_unhashed", "unhashed", "posts", tid(21), {"in_reply_to_tweetid": _lit("x")},
     [("posts_unhashed", "in_reply_to_tweetid_format", tid(21))]),
    ("quoted_id_format_unhashed", "unhashed", "posts", tid(20), {"quoted_tweet_tweetid": _lit("x")},
     [("posts_unhashed", "quoted_tweet_tweetid_format", tid(20))]),
    ("retweet_id_format_unhashed", "unhashed", "posts", tid(4), {"retweet_tweetid": _lit("x")},
     [("posts_unhashed", "retweet_tweetid_format", tid(4))]),
    ("reply_user_format_unhashed", "unhashed", "posts", tid(9), {"in_reply_to_userid": _lit("x")},
     [("posts_unhashed", "in_reply_to_userid_format", tid(9))]),
    ("time_null_unhashed", "unhashed", "posts", tid(22), {"tweet_time": _lit(None, "timestamp")},
     [("posts_unhashed", "tweet_time_not_null", tid(22))]),
    ("retweet_null_unhashed", "unhashed", "posts", tid(23), {"is_retweet": _lit(None, "boolean")},
     [("posts_unhashed", "is_retweet_not_null", tid(23))]),
    ("follower_negative_unhashed", "unhashed", "posts", tid(0), {"follower_count": _lit(-1, "long")},
     [("posts_unhashed", "follower_count_non_negative", tid(0))]),
    ("latitude_range", "unhashed", "posts", tid(0), {"latitude": _lit(95.0, "double")},
     [("posts_unhashed", "latitude_range", tid(0))]),
    ("following_negative_unhashed", "unhashed", "posts", tid(1), {"following_count": _lit(-1, "long")},
     [("posts_unhashed", "following_count_non_negative", tid(1))]),
    ("longitude_range", "unhashed", "posts", tid(1), {"longitude": _lit(200.0, "double")},
     [("posts_unhashed", "longitude_range", tid(1))]),
    ("quote_count_negative_unhashed", "unhashed", "posts", tid(2), {"quote_count": _lit(-1, "long")},
     [("posts_unhashed", "quote_count_non_negative", tid(2))]),
    ("reply_count_negative_unhashed", "unhashed", "posts", tid(3), {"reply_count": _lit(-1, "long")},
     [("posts_unhashed", "reply_count_non_negative", tid(3))]),
    ("like_count_negative_unhashed", "unhashed", "posts", tid(7), {"like_count": _lit(-1, "long")},
     [("posts_unhashed", "like_count_non_negative", tid(7))]),
    ("retweet_count_negative_unhashed", "unhashed", "posts", tid(8), {"retweet_count": _lit(-1, "long")},
     [("posts_unhashed", "retweet_count_non_negative", tid(8))]),
    # accounts, hashed (SILENT accounts carry the key corruptions)
    ("following_negative", "hashed", "accounts", HASHED_UID[2], {"following_count": _lit(-5, "long")},
     [("accounts_hashed", "following_count_non_negative", HASHED_UID[2])]),
    # a pseudonymized account: still below the threshold, so the threshold rule holds
    ("follower_negative_account", "hashed", "accounts", HASHED_UID[1], {"follower_count": _lit(-1, "long")},
     [("accounts_hashed", "follower_count_non_negative", HASHED_UID[1])]),
    ("leak_in_description", "hashed", "accounts", RAW_UID[4],
     {"user_profile_description": _lit("friend of @QZX_vortan1")},
     [("accounts_hashed", "no_raw_identifier_leak", RAW_UID[4])]),
    ("threshold_account", "hashed", "accounts", RAW_UID[5], {"follower_count": _lit(10, "long")},
     [("accounts_hashed", "threshold_rule", RAW_UID[5])]),
    ("screen_name_null", "hashed", "accounts", SILENT[0], {"user_screen_name": _lit(None, "string")},
     [("accounts_hashed", "user_screen_name_not_null", SILENT[0])]),
    ("account_unique", "hashed", "accounts", SILENT[2], {"userid": _lit(SILENT[1])},
     [("accounts_hashed", "userid_unique", SILENT[1])]),
    ("account_id_format", "hashed", "accounts", SILENT[3], {"userid": _lit(BAD_ID)},
     [("accounts_hashed", "userid_format", BAD_ID)]),
    ("account_id_null", "hashed", "accounts", SILENT[4], {"userid": _lit(None, "string")},
     [("accounts_hashed", "userid_not_null", NULL)]),
    ("follower_null", "hashed", "accounts", SILENT[5], {"follower_count": _lit(None, "long")},
     [("accounts_hashed", "follower_count_not_null", SILENT[5])]),
    # accounts, unhashed (the source of the identifier list: only public accounts are touched,
    # and pseudonymized ones stay below the threshold)
    ("follower_negative_account_unhashed", "unhashed", "accounts", RAW_UID[1], {"follower_count": _lit(-1, "long")},
     [("accounts_unhashed", "follower_count_non_negative", RAW_UID[1])]),
    ("following_negative_unhashed_account", "unhashed", "accounts", RAW_UID[2], {"following_count": _lit(-5, "long")},
     [("accounts_unhashed", "following_count_non_negative", RAW_UID[2])]),
    ("follower_null_unhashed", "unhashed", "accounts", RAW_UID[4], {"follower_count": _lit(None, "long")},
     [("accounts_unhashed", "follower_count_not_null", RAW_UID[4])]),
    ("screen_name_null_unhashed", "unhashed", "accounts", SILENT[0], {"user_screen_name": _lit(None, "string")},
     [("accounts_unhashed", "user_screen_name_not_null", SILENT[0])]),
    ("account_unique_unhashed", "unhashed", "accounts", SILENT[2], {"userid": _lit(SILENT[1])},
     [("accounts_unhashed", "userid_unique", SILENT[1])]),
    ("account_id_format_unhashed", "unhashed", "accounts", SILENT[3], {"userid": _lit(BAD_ID)},
     [("accounts_unhashed", "userid_format", BAD_ID)]),
    ("account_id_null_unhashed", "unhashed", "accounts", SILENT[4], {"userid": _lit(None, "string")},
     [("accounts_unhashed", "userid_not_null", NULL)]),
    # accounts CSV
    ("leak_raw_key_redacted", "hashed", "accounts_csv", HASHED_UID[3], {"userid": _lit(RAW_UID[0])},
     [("accounts_csv_hashed", "no_raw_identifier_leak", REDACTED)]),
    ("csv_account_id_format", "hashed", "accounts_csv", SILENT[0], {"userid": _lit(BAD_ID)},
     [("accounts_csv_hashed", "userid_format", BAD_ID)]),
    ("csv_follower_format", "hashed", "accounts_csv", SILENT[1], {"follower_count": _lit("1,000")},
     [("accounts_csv_hashed", "follower_count_format", SILENT[1])]),
    ("csv_following_format", "hashed", "accounts_csv", SILENT[2], {"following_count": _lit("-5")},
     [("accounts_csv_hashed", "following_count_format", SILENT[2])]),
    ("csv_date_format_hashed", "hashed", "accounts_csv", SILENT[3], {"account_creation_date": _lit("01/03/2015")},
     [("accounts_csv_hashed", "account_creation_date_format", SILENT[3])]),
    ("csv_date_format", "unhashed", "accounts_csv", RAW_UID[2], {"account_creation_date": _lit("01/03/2015")},
     [("accounts_csv_unhashed", "account_creation_date_format", RAW_UID[2])]),
    ("csv_account_id_format_unhashed", "unhashed", "accounts_csv", SILENT[0], {"userid": _lit(BAD_ID)},
     [("accounts_csv_unhashed", "userid_format", BAD_ID)]),
    ("csv_follower_format_unhashed", "unhashed", "accounts_csv", SILENT[1], {"follower_count": _lit("1e3")},
     [("accounts_csv_unhashed", "follower_count_format", SILENT[1])]),
    ("csv_following_format_unhashed", "unhashed", "accounts_csv", SILENT[2], {"following_count": _lit("5.0")},
     [("accounts_csv_unhashed", "following_count_format", SILENT[2])]),
    # media index, hashed (post photos 3_<tweetid> of tid(0..3); 7_<i>_profile|banner per account)
    ("sha256_format", "hashed", "media_index", f"3_{tid(0)}", {"sha256": _lit("xyz")},
     [("media_index_hashed", "sha256_format", f"3_{tid(0)}")]),
    ("media_path_leak", "hashed", "media_index", f"3_{tid(0)}",
     {"path_in_archive": _user_path(f"/images/{tid(0)}-{SCREEN0}.jpg")},
     [("media_index_hashed", "no_raw_identifier_leak", f"3_{tid(0)}")]),
    ("media_kind", "hashed", "media_index", f"3_{tid(1)}", {"kind": _lit("gif")},
     [("media_index_hashed", "kind_in_set", f"3_{tid(1)}")]),
    ("deleted_media_hashed", "hashed", "media_index", f"3_{tid(2)}", {"media_key": _lit(DELETED_MEDIA)},
     [("media_index_hashed", "no_deleted_media", DELETED_MEDIA)]),
    ("path_format", "hashed", "media_index", f"3_{tid(3)}", {"path_in_archive": _user_path("/images/photo.jpg")},
     [("media_index_hashed", "path_in_archive_format", f"3_{tid(3)}")]),
    ("path_user_key_hashed", "hashed", "media_index", "7_0_profile",
     {"path_in_archive": _lit("otheruser/profile/otheruser_profile.jpg")},
     [("media_index_hashed", "path_names_user_key", "7_0_profile")]),
    ("media_orphan_hashed", "hashed", "media_index", "7_1_profile", {"tweetid": _lit("1599999999999999999")},
     [("media_index_hashed", "points_at_released_post_or_account", "7_1_profile")]),
    ("media_key_null", "hashed", "media_index", "7_2_profile", {"media_key": _lit(None, "string")},
     [("media_index_hashed", "media_key_not_null", NULL)]),
    ("media_key_unique", "hashed", "media_index", "7_2_banner", {"media_key": _lit("7_3_banner")},
     [("media_index_hashed", "media_key_unique", "7_3_banner")]),
    # a malformed post id is never a released post
    ("media_tweetid_format", "hashed", "media_index", "7_4_profile", {"tweetid": _lit("x")},
     [("media_index_hashed", "tweetid_format", "7_4_profile"),
      ("media_index_hashed", "points_at_released_post_or_account", "7_4_profile")]),
    # a null or malformed user key is never a released account (the path follows the malformed
    # key, so path_names_user_key and path_in_archive_format hold)
    ("media_userid_null", "hashed", "media_index", "7_5_profile", {"userid": _lit(None, "string")},
     [("media_index_hashed", "userid_not_null", "7_5_profile"),
      ("media_index_hashed", "points_at_released_post_or_account", "7_5_profile")]),
    ("media_userid_format", "hashed", "media_index", "7_0_banner",
     {"userid": _lit("abc"), "path_in_archive": _lit("abc/profile/abc_banner.jpg")},
     [("media_index_hashed", "userid_format", "7_0_banner"),
      ("media_index_hashed", "points_at_released_post_or_account", "7_0_banner")]),
    ("media_bytes_null", "hashed", "media_index", "7_1_banner", {"bytes": _lit(None, "long")},
     [("media_index_hashed", "bytes_not_null", "7_1_banner")]),
    ("media_bytes_negative", "hashed", "media_index", "7_4_banner", {"bytes": _lit(-1, "long")},
     [("media_index_hashed", "bytes_non_negative", "7_4_banner")]),
    ("media_archive_format", "hashed", "media_index", "7_5_banner", {"archive": _lit("other.zip")},
     [("media_index_hashed", "archive_format", "7_5_banner")]),
    # media index, unhashed
    ("deleted_media", "unhashed", "media_index", f"3_{tid(0)}", {"media_key": _lit(DELETED_MEDIA)},
     [("media_index_unhashed", "no_deleted_media", DELETED_MEDIA)]),
    ("path_user_key", "unhashed", "media_index", f"3_{tid(1)}",
     {"path_in_archive": _lit(f"otheruser/images/{tid(1)}-3_{tid(1)}.jpg")},
     [("media_index_unhashed", "path_names_user_key", f"3_{tid(1)}")]),
    ("media_orphan", "unhashed", "media_index", f"3_{tid(2)}", {"tweetid": _lit("1599999999999999999")},
     [("media_index_unhashed", "points_at_released_post_or_account", f"3_{tid(2)}")]),
    ("media_kind_unhashed", "unhashed", "media_index", "7_0_profile", {"kind": _lit("gif")},
     [("media_index_unhashed", "kind_in_set", "7_0_profile")]),
    ("sha256_format_unhashed", "unhashed", "media_index", "7_1_profile", {"sha256": _lit("XYZ")},
     [("media_index_unhashed", "sha256_format", "7_1_profile")]),
    ("media_key_null_unhashed", "unhashed", "media_index", "7_2_profile", {"media_key": _lit(None, "string")},
     [("media_index_unhashed", "media_key_not_null", NULL)]),
    ("media_key_unique_unhashed", "unhashed", "media_index", "7_2_banner", {"media_key": _lit("7_3_banner")},
     [("media_index_unhashed", "media_key_unique", "7_3_banner")]),
    ("path_format_unhashed", "unhashed", "media_index", "7_3_profile",
     {"path_in_archive": _user_path("/images/photo.jpg")},
     [("media_index_unhashed", "path_in_archive_format", "7_3_profile")]),
    ("media_tweetid_format_unhashed", "unhashed", "media_index", "7_4_profile", {"tweetid": _lit("x")},
     [("media_index_unhashed", "tweetid_format", "7_4_profile"),
      ("media_index_unhashed", "points_at_released_post_or_account", "7_4_profile")]),
    ("media_userid_null_unhashed", "unhashed", "media_index", "7_5_profile", {"userid": _lit(None, "string")},
     [("media_index_unhashed", "userid_not_null", "7_5_profile"),
      ("media_index_unhashed", "points_at_released_post_or_account", "7_5_profile")]),
    ("media_userid_format_unhashed", "unhashed", "media_index", "7_0_banner",
     {"userid": _lit("abc"), "path_in_archive": _lit("abc/profile/abc_banner.jpg")},
     [("media_index_unhashed", "userid_format", "7_0_banner"),
      ("media_index_unhashed", "points_at_released_post_or_account", "7_0_banner")]),
    ("media_bytes_null_unhashed", "unhashed", "media_index", "7_1_banner", {"bytes": _lit(None, "long")},
     [("media_index_unhashed", "bytes_not_null", "7_1_banner")]),
    ("media_bytes_negative_unhashed", "unhashed", "media_index", "7_4_banner", {"bytes": _lit(-1, "long")},
     [("media_index_unhashed", "bytes_non_negative", "7_4_banner")]),
    ("media_archive_format_unhashed", "unhashed", "media_index", "7_5_banner",
     {"archive": _lit(f"{RELEASE_ID}_tweet_media_hashed_001.zip")},
     [("media_index_unhashed", "archive_format", "7_5_banner")]),
    # posts CSV, hashed
    ("csv_time_format", "hashed", "posts_csv", tid(3), {"tweet_time": _lit("2020-05-01T12:03:30")},
     [("posts_csv_hashed", "tweet_time_format", tid(3))]),
    ("csv_bool", "hashed", "posts_csv", tid(4), {"is_retweet": _lit("True")},
     [("posts_csv_hashed", "is_retweet_in_set", tid(4))]),
    ("csv_list_hashed", "hashed", "posts_csv", tid(6), {"urls": _lit("https://example.com/a")},
     [("posts_csv_hashed", "list_columns_are_json_arrays", tid(6))]),
    ("csv_leak", "hashed", "posts_csv", tid(7), {"tweet_text": _lit(f"thanks {SCREEN0}")},
     [("posts_csv_hashed", "no_raw_identifier_leak", tid(7))]),
    ("csv_id_format", "hashed", "posts_csv", tid(8), {"tweetid": _lit("15x8")},
     [("posts_csv_hashed", "tweetid_format", "15x8")]),
    ("csv_userid_format", "hashed", "posts_csv", tid(9), {"userid": _lit(BAD_ID)},
     [("posts_csv_hashed", "userid_format", tid(9))]),
    ("csv_post_date_format", "hashed", "posts_csv", tid(10), {"account_creation_date": _lit("01/03/2015")},
     [("posts_csv_hashed", "account_creation_date_format", tid(10))]),
    ("csv_reply_id_format", "hashed", "posts_csv", tid(11), {"in_reply_to_tweetid": _lit("x")},
     [("posts_csv_hashed", "in_reply_to_tweetid_format", tid(11))]),
    ("csv_quoted_id_format", "hashed", "posts_csv", tid(12), {"quoted_tweet_tweetid": _lit("x")},
     [("posts_csv_hashed", "quoted_tweet_tweetid_format", tid(12))]),
    ("csv_retweet_id_format", "hashed", "posts_csv", tid(13), {"retweet_tweetid": _lit("1.4e18")},
     [("posts_csv_hashed", "retweet_tweetid_format", tid(13))]),
    ("csv_reply_user_format", "hashed", "posts_csv", tid(14), {"in_reply_to_userid": _lit("x!")},
     [("posts_csv_hashed", "in_reply_to_userid_format", tid(14))]),
    ("csv_retweet_user_format", "hashed", "posts_csv", tid(15), {"retweet_userid": _lit("x!")},
     [("posts_csv_hashed", "retweet_userid_format", tid(15))]),
    ("csv_quote_count", "hashed", "posts_csv", tid(16), {"quote_count": _lit("-1")},
     [("posts_csv_hashed", "quote_count_decimal", tid(16))]),
    ("csv_reply_count", "hashed", "posts_csv", tid(17), {"reply_count": _lit("1.0")},
     [("posts_csv_hashed", "reply_count_decimal", tid(17))]),
    ("csv_like_count", "hashed", "posts_csv", tid(18), {"like_count": _lit("1e3")},
     [("posts_csv_hashed", "like_count_decimal", tid(18))]),
    ("csv_retweet_count", "hashed", "posts_csv", tid(19), {"retweet_count": _lit("x")},
     [("posts_csv_hashed", "retweet_count_decimal", tid(19))]),
    ("csv_latitude_shown", "hashed", "posts_csv", tid(20), {"latitude": _lit("35.7")},
     [("posts_csv_hashed", "latitude_in_set", tid(20))]),
    ("csv_longitude_shown", "hashed", "posts_csv", tid(21), {"longitude": _lit("51.4")},
     [("posts_csv_hashed", "longitude_in_set", tid(21))]),
    # posts CSV, unhashed
    ("csv_list", "unhashed", "posts_csv", tid(5), {"hashtags": _lit("topic1")},
     [("posts_csv_unhashed", "list_columns_are_json_arrays", tid(5))]),
    ("csv_coordinates", "unhashed", "posts_csv", tid(0), {"latitude": _lit("35,7")},
     [("posts_csv_unhashed", "latitude_format", tid(0))]),
    ("csv_longitude_format", "unhashed", "posts_csv", tid(1), {"longitude": _lit("51.4N")},
     [("posts_csv_unhashed", "longitude_format", tid(1))]),
    ("csv_id_format_unhashed", "unhashed", "posts_csv", tid(8), {"tweetid": _lit("15x8")},
     [("posts_csv_unhashed", "tweetid_format", "15x8")]),
    ("csv_userid_format_unhashed", "unhashed", "posts_csv", tid(9), {"userid": _lit(BAD_ID)},
     [("posts_csv_unhashed", "userid_format", tid(9))]),
    ("csv_time_format_unhashed", "unhashed", "posts_csv", tid(10), {"tweet_time": _lit("2020-05-01")},
     [("posts_csv_unhashed", "tweet_time_format", tid(10))]),
    ("csv_post_date_format_unhashed", "unhashed", "posts_csv", tid(11), {"account_creation_date": _lit("2015-1-3")},
     [("posts_csv_unhashed", "account_creation_date_format", tid(11))]),
    ("csv_bool_unhashed", "unhashed", "posts_csv", tid(12), {"is_retweet": _lit("1")},
     [("posts_csv_unhashed", "is_retweet_in_set", tid(12))]),
    ("csv_reply_id_format_unhashed", "unhashed", "posts_csv", tid(13), {"in_reply_to_tweetid": _lit("x")},
     [("posts_csv_unhashed", "in_reply_to_tweetid_format", tid(13))]),
    ("csv_quoted_id_format_unhashed", "unhashed", "posts_csv", tid(14), {"quoted_tweet_tweetid": _lit("x")},
     [("posts_csv_unhashed", "quoted_tweet_tweetid_format", tid(14))]),
    ("csv_retweet_id_format_unhashed", "unhashed", "posts_csv", tid(15), {"retweet_tweetid": _lit("x")},
     [("posts_csv_unhashed", "retweet_tweetid_format", tid(15))]),
    ("csv_reply_user_format_unhashed", "unhashed", "posts_csv", tid(16), {"in_reply_to_userid": _lit("x")},
     [("posts_csv_unhashed", "in_reply_to_userid_format", tid(16))]),
    ("csv_retweet_user_format_unhashed", "unhashed", "posts_csv", tid(17), {"retweet_userid": _lit("x")},
     [("posts_csv_unhashed", "retweet_userid_format", tid(17))]),
    ("csv_quote_count_unhashed", "unhashed", "posts_csv", tid(18), {"quote_count": _lit("-1")},
     [("posts_csv_unhashed", "quote_count_decimal", tid(18))]),
    ("csv_reply_count_unhashed", "unhashed", "posts_csv", tid(19), {"reply_count": _lit("1.0")},
     [("posts_csv_unhashed", "reply_count_decimal", tid(19))]),
    ("csv_like_count_unhashed", "unhashed", "posts_csv", tid(20), {"like_count": _lit("1e3")},
     [("posts_csv_unhashed", "like_count_decimal", tid(20))]),
    ("csv_retweet_count_unhashed", "unhashed", "posts_csv", tid(21), {"retweet_count": _lit("x")},
     [("posts_csv_unhashed", "retweet_count_decimal", tid(21))]),
]


SUITE_FILES = {json.loads(p.read_text())["name"]: json.loads(p.read_text())
               for p in (Path(__file__).parents[2] / "expectations").glob("*.json")}


TABLE_KEYS = {"posts": "tweetid", "posts_csv": "tweetid", "accounts": "userid", "accounts_csv": "userid",
              "media_index": "media_key"}


def _swap(variant: str, table: str, a: str, b: str) -> tuple:
    return ("swap", variant, (table,), (a, b), [(f"{table}_{variant}", "columns_in_order", ROWS)])


def _cast(variant: str, table: str, column: str, to: str, *errors: str) -> tuple:
    """A column of another type; ``errors``: expectations whose query cannot read that type."""
    suite = f"{table}_{variant}"
    return ("cast", variant, (table,), (column, to),
            [(suite, f"{column}_type", ROWS), *((suite, e, ERROR) for e in errors)])


def _duplicate_csv(variant: str, table: str, key: str) -> tuple:
    """A CSV row written twice: only the CSV-vs-Parquet row count of that variant notices."""
    return ("duplicate", variant, (table,), key, [(f"{table}_{variant}", "row_count_equals_parquet", ROWS)])


def _dropped(table: str, tables: tuple[str, ...], key: str) -> tuple:
    """A row missing from the unhashed variant (its CSV too, so the CSV agrees with its Parquet):
    the row count is compared from both variants' sides, and the reconciliation's released count
    (still right for hashed) now disagrees with unhashed."""
    return ("drop", "unhashed", tables, key, [(f"{table}_hashed", "row_count_equals_unhashed", ROWS),
                                              (f"{table}_unhashed", "row_count_equals_hashed", ROWS),
                                              (f"{table}_unhashed", "reconciliation_released_equals_rows", ROWS)])


def _released(table: str, suite_table: str) -> tuple:
    """reconciliation.json says one more row was released (and read: still balanced); both
    variants compare it with their own rows."""
    return ("recon", None, (table,), {"read": 1, "released": 1},
            [(f"{suite_table}_{v}", "reconciliation_released_equals_rows", ROWS) for v in ("hashed", "unhashed")])


# Frame- and table-level corruptions: name -> (copy, (op, variant, tables, argument, expected)).
# Applied after the row corruptions, in this order: recon, drop, duplicate, cast, swap.
TABLE_LEVEL: dict[str, tuple[int, tuple]] = {
    "column_order_posts_hashed": (1, _swap("hashed", "posts", "tweet_language", "tweet_text")),
    "column_order_posts_unhashed": (1, _swap("unhashed", "posts", "quote_count", "reply_count")),
    "column_order_accounts_hashed": (1, _swap("hashed", "accounts", "user_reported_location",
                                              "user_profile_description")),
    "column_order_accounts_unhashed": (1, _swap("unhashed", "accounts", "follower_count", "following_count")),
    "column_order_media_hashed": (1, _swap("hashed", "media_index", "archive", "path_in_archive")),
    "column_order_media_unhashed": (1, _swap("unhashed", "media_index", "bytes", "sha256")),
    "column_order_accounts_csv_hashed": (1, _swap("hashed", "accounts_csv", "user_screen_name",
                                                  "user_display_name")),
    "column_order_accounts_csv_unhashed": (1, _swap("unhashed", "accounts_csv", "userid", "user_display_name")),
    "column_order_posts_csv_hashed": (1, _swap("hashed", "posts_csv", "hashtags", "urls")),
    "column_order_posts_csv_unhashed": (1, _swap("unhashed", "posts_csv", "latitude", "longitude")),
    # other types that every other expectation still accepts (e.g. strings "true"/"false" compare
    # with booleans in is_retweet_matches_retweet_ids, an int is not a long but still >= 0)
    "follower_count_int_hashed": (1, _cast("hashed", "accounts", "follower_count", "int")),
    "follower_count_int_unhashed": (1, _cast("unhashed", "accounts", "follower_count", "int")),
    "creation_date_string_hashed": (1, _cast("hashed", "accounts", "account_creation_date", "string")),
    "creation_date_string_unhashed": (1, _cast("unhashed", "accounts", "account_creation_date", "string")),
    "post_creation_date_string_hashed": (1, _cast("hashed", "posts", "account_creation_date", "string")),
    "post_creation_date_string_unhashed": (1, _cast("unhashed", "posts", "account_creation_date", "timestamp")),
    "tweet_time_string_hashed": (1, _cast("hashed", "posts", "tweet_time", "string")),
    "tweet_time_ntz_unhashed": (1, _cast("unhashed", "posts", "tweet_time", "timestamp_ntz")),
    "is_retweet_string_hashed": (1, _cast("hashed", "posts", "is_retweet", "string")),
    "is_retweet_string_unhashed": (1, _cast("unhashed", "posts", "is_retweet", "string")),
    "accounts_dropped": (1, _dropped("accounts", ("accounts", "accounts_csv"), SILENT[5])),
    "posts_dropped": (1, _dropped("posts", ("posts", "posts_csv"), tid(6))),
    "media_dropped": (1, _dropped("media_index", ("media_index",), f"3_{tid(3)}")),
    "accounts_csv_duplicate_hashed": (1, _duplicate_csv("hashed", "accounts_csv", SILENT[4])),
    "accounts_csv_duplicate_unhashed": (1, _duplicate_csv("unhashed", "accounts_csv", SILENT[4])),
    "posts_csv_duplicate_hashed": (1, _duplicate_csv("hashed", "posts_csv", tid(22))),
    "posts_csv_duplicate_unhashed": (1, _duplicate_csv("unhashed", "posts_csv", tid(22))),
    # one more accounts row read than accounted for: both posts suites state the balance
    "unbalanced": (1, ("recon", None, ("accounts",), {"read": 1},
                       [("posts_hashed", "reconciliation_balanced", "accounts"),
                        ("posts_unhashed", "reconciliation_balanced", "accounts")])),
    # second copy
    "accounts_released": (2, _released("accounts", "accounts")),
    "posts_released": (2, _released("posts", "posts")),
    "media_released": (2, _released("media", "media_index")),
    **{f"{column}_not_array_{variant}": (2, _cast(variant, "posts", column, "string", "list_columns_have_no_null_elements",
                                                  *(["user_mentions_format"] if column == "user_mentions" else [])))
       for variant in ("hashed", "unhashed") for column in ("hashtags", "urls", "user_mentions", "poll_choices")},
}
SECOND_COPY_SUITES = sorted({s for copy, spec in TABLE_LEVEL.values() if copy == 2 for s, _, _ in spec[4]})


def _declared(copy: int) -> list[tuple[str, str, str, Any]]:
    """(corruption, suite, expectation, named key) of every corruption in ``copy``."""
    rows = [(c[0], s, e, k) for c in CORRUPTIONS for s, e, k in c[5]] if copy == 1 else []
    rows += [(name, s, e, k) for name, (c, spec) in TABLE_LEVEL.items() if c == copy for s, e, k in spec[4]]
    return rows


def _build_copy(spark: Any, clean: tuple[Any, Path], root: Path, copy: int) -> tuple[Any, Path]:
    """Corrupt the clean tables as copy ``copy`` of the plan says and validate them."""
    from ioarchive.quality.data import load_release_tables
    from ioarchive.quality.runner import validate_release
    from pyspark.sql import functions as F

    layout, campaign = clean
    root.mkdir(parents=True)
    recon = json.loads(layout.reconciliation.read_text())
    tables = load_release_tables(spark, layout, root / "csv_scratch")
    frames = tables.frames
    if copy == 1:
        for _, variant, table, key, changes, _ in CORRUPTIONS:
            match = F.col(TABLE_KEYS[table]) == F.lit(key)
            df = frames[(variant, table)]
            # all columns of a row are computed from its values before the corruption
            frames[(variant, table)] = df.select(
                *[F.when(match, changes[c]()).otherwise(F.col(c)).alias(c) if c in changes else F.col(c)
                  for c in df.columns]
            )
    specs = [spec for copy_of, spec in TABLE_LEVEL.values() if copy_of == copy]
    for op in ("recon", "drop", "duplicate", "cast", "swap"):
        for kind, variant, names, arg, _ in specs:
            if kind != op:
                continue
            if op == "recon":
                for field, delta in arg.items():
                    recon["tables"][names[0]][field] += delta
                continue
            for table in names:
                df = frames[(variant, table)]
                if op == "drop":
                    df = df.where(~F.col(TABLE_KEYS[table]).eqNullSafe(F.lit(arg)))  # keep null keys
                elif op == "duplicate":
                    df = df.unionByName(df.where(F.col(TABLE_KEYS[table]) == F.lit(arg)))
                elif op == "cast":
                    df = df.withColumn(arg[0], F.col(arg[0]).cast(arg[1]))
                else:
                    cols = df.columns
                    i, j = cols.index(arg[0]), cols.index(arg[1])
                    cols[i], cols[j] = cols[j], cols[i]
                    df = df.select(*cols)
                frames[(variant, table)] = df
    (root / "reconciliation.json").write_text(json.dumps(recon))
    suites = SECOND_COPY_SUITES if copy == 2 else None
    report = validate_release(spark, root, RELEASE_ID, campaign_dir=campaign, tables=tables, suites=suites)
    return report, root


@pytest.fixture(scope="module")
def corrupted_report(spark, clean, tmp_path_factory):
    return _build_copy(spark, clean, tmp_path_factory.mktemp("quality_corrupted") / "staging", 1)


@pytest.fixture(scope="module")
def corrupted_report_2(spark, clean, tmp_path_factory):
    return _build_copy(spark, clean, tmp_path_factory.mktemp("quality_corrupted_2") / "staging", 2)


def _copy(request, copy: int) -> tuple:
    """(report, staging root) of a corrupted copy, built on first use (a test of copy 1 alone
    does not pay for copy 2)."""
    return request.getfixturevalue({1: "corrupted_report", 2: "corrupted_report_2"}[copy])


def _row_keys(examples: list) -> list:
    """The row keys among a failure's examples: query rows like {row_key, kind} give their row
    key; other multi-column rows (counts) are not row keys."""
    keys = []
    for example in examples:
        if isinstance(example, dict):
            if "row_key" in example:
                keys.append(example["row_key"])
        else:
            keys.append(example)
    return keys


def _failures(report) -> dict[tuple[str, str], Any]:
    """(suite, expectation) -> the FailedExpectation of the report."""
    return {(suite, f.expectation): f for _, suite, f in report.failures()}


def _failed(report) -> dict[tuple[str, str], list]:
    """(suite, expectation) -> row keys named."""
    return {k: _row_keys(f.examples) for k, f in _failures(report).items()}


def _summary_names(root: Path, suite: str) -> list[str]:
    variant = suite.rsplit("_", 1)[1]
    summary = json.loads((root / "validation" / variant / "summary.json").read_text())
    return [f["expectation"] for f in summary["suites"][suite]["failed"]]


def _check_declared(report, root: Path, name: str, expected: list) -> None:
    failures = _failures(report)
    for suite, expectation, key in expected:
        assert (suite, expectation) in failures, f"{name}: {suite}/{expectation} did not fail"
        failure = failures[(suite, expectation)]
        if key == ERROR:
            # GX 1.24 nests the exception under the metric id; the summary must still give its reason
            assert str(failure.observed).startswith("error: "), f"{name}: {failure.observed!r}"
            assert failure.examples == [], f"{name}: {failure.examples!r}"
        elif key != ROWS:
            assert key in _row_keys(failure.examples), f"{name}: examples {failure.examples}"
        assert expectation in _summary_names(root, suite), f"{name}: summary.json does not name {expectation}"


def _validation_pages(validation_dir: Path) -> dict[str, str]:
    """Suite name -> visible text of its rendered Data Docs validation page (tags dropped)."""
    site = validation_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations"
    return {p.relative_to(site).parts[0]: " ".join(re.sub(r"<[^>]+>", " ", p.read_text(encoding="utf-8")).split())
            for p in site.rglob("*.html")}


def _assert_pages_cover_suites(validation_dir: Path, variant: str) -> dict[str, str]:
    """GX skips (with a log line only) a page it cannot render: every suite must have its page,
    showing every expectation of the suite file as evaluated."""
    pages = _validation_pages(validation_dir)
    assert set(pages) == {f"{t}_{variant}" for t in TABLE_KEYS}
    for suite, text in pages.items():
        assert f"Evaluated Expectations {len(SUITE_FILES[suite]['expectations'])} " in text, suite
    return pages


def test_clean_release_passes_every_suite(clean_report, clean):
    layout, _ = clean
    assert clean_report.success, "\n".join(clean_report.summary_lines())
    for variant in ("hashed", "unhashed"):
        summary = json.loads((layout.validation_dir(variant) / "summary.json").read_text())
        assert summary["success"] is True
        assert set(summary["suites"]) == {f"{t}_{variant}" for t in TABLE_KEYS}
        assert all(s["success"] and s["failed"] == [] for s in summary["suites"].values())
        assert clean_report.variants[variant].data_docs.is_file()
        _assert_pages_cover_suites(layout.validation_dir(variant), variant)
    # the suites really ran: every expectation of every file was evaluated
    expected_total = sum(len(suite["expectations"]) for suite in SUITE_FILES.values())
    assert sum(s.evaluated for v in clean_report.variants.values() for s in v.suites.values()) == expected_total


def test_every_expectation_has_a_corruption():
    """The union of what the corruptions declare is every (suite, expectation) of the suite
    files: a new expectation without a corruption that fails it fails here."""
    in_files = {(name, e["meta"]["name"]) for name, suite in SUITE_FILES.items() for e in suite["expectations"]}
    assert len(in_files) == sum(len(suite["expectations"]) for suite in SUITE_FILES.values())
    declared = {(s, e) for copy in (1, 2) for _, s, e, _ in _declared(copy)}
    assert declared - in_files == set(), "declared expectations that no suite file has"
    assert in_files - declared == set(), "expectations without a corruption"


def test_corruptions_keep_to_their_own_rows():
    """Static checks of the plan: a row is targeted by its key before any corruption, so no
    corruption may target a key that another one writes into the same frame; no two
    corruptions write the same (row, column); rows dropped or doubled carry no corruption."""
    for variant, table in {(c[1], c[2]) for c in CORRUPTIONS}:
        mine = [c for c in CORRUPTIONS if (c[1], c[2]) == (variant, table)]
        key_column = TABLE_KEYS[table]
        written_keys = {c[4][key_column].value for c in mine if isinstance(c[4].get(key_column), Lit)}
        cells = [(c[3], column) for c in mine for column in c[4]]
        assert len(cells) == len(set(cells)), f"{variant}/{table}: two corruptions in one cell"
        assert not written_keys & {c[3] for c in mine}, f"{variant}/{table}: a corruption targets a rewritten key"
    for name, (copy, (op, variant, tables, key, _)) in TABLE_LEVEL.items():
        if op in ("drop", "duplicate"):  # a dropped or doubled row must be a clean one
            assert copy == 1 and not [c for c in CORRUPTIONS if c[1] == variant and c[2] in tables and c[3] == key], name


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corruption_fails_its_expectation(corrupted_report, corruption):
    report, root = corrupted_report
    _check_declared(report, root, corruption[0], corruption[5])


@pytest.mark.parametrize("name", sorted(TABLE_LEVEL))
def test_table_level_corruption_fails_its_expectation(request, name):
    copy, spec = TABLE_LEVEL[name]
    report, root = _copy(request, copy)
    _check_declared(report, root, name, spec[4])


@pytest.mark.parametrize("copy", [1, 2])
def test_nothing_but_the_planted_corruptions_fails(request, copy):
    report, _ = _copy(request, copy)
    assert set(_failures(report)) == {(s, e) for _, s, e, _ in _declared(copy)}
    assert not report.success


@pytest.mark.parametrize("copy", [1, 2])
def test_each_failure_names_exactly_the_rows_of_its_corruptions(request, copy):
    """Attribution is exact: a failed expectation names the row keys of the corruptions that
    declared it and no other row (so corruption A cannot be what made expectation B fail);
    expectations declared without row keys (schema, type, counts, query errors) name none."""
    report, _ = _copy(request, copy)
    declared: dict[tuple[str, str], set] = {}
    for _, suite, expectation, key in _declared(copy):
        declared.setdefault((suite, expectation), set()).add(key)
    for pair, named in _failed(report).items():
        assert pair in declared, f"{pair} failed, but no corruption declares it"
        keys = declared[pair]
        if keys & {ROWS, ERROR}:
            assert keys <= {ROWS, ERROR}, f"{pair}: declared both with and without row keys: {keys}"
            assert named == [], f"{pair} names rows {named}"
        else:
            assert set(named) == keys, f"{pair} names {named}, its corruptions {keys}"


def test_hashed_reports_never_show_a_raw_identifier(corrupted_report, clean_report, clean):
    """Leaks were planted (text, list column, description, even a raw row key): the hashed Data
    Docs and summary name tweetids and a redaction marker, never the raw identifier."""
    report, root = corrupted_report
    raw = set()
    for a in ACCOUNTS[:4]:  # below the threshold: pseudonymized
        raw |= {a["userid"].lower(), a["user_screen_name"].lower()}
        raw |= set(tokens(a["user_display_name"]))
    hashed_files = [p for p in (root / "validation" / "hashed").rglob("*") if p.suffix in (".html", ".json")]
    assert any(p.suffix == ".html" for p in hashed_files)
    for path in hashed_files:
        found = raw & set(tokens(path.read_text(encoding="utf-8", errors="replace")))
        assert not found, f"{path} shows a raw identifier"
    summary = (root / "validation" / "hashed" / "summary.json").read_text()
    assert tid(15) in summary and REDACTED in summary
    # the failed expectations' pages exist and name the offending row keys (details of pass 2)
    pages = _assert_pages_cover_suites(root / "validation" / "hashed", "hashed")
    for suite, outcome in json.loads(summary)["suites"].items():
        assert f"Unsuccessful Expectations {len(outcome['failed'])} " in pages[suite], suite
    # the member-only docs are a separate folder (not under the hashed one)
    unhashed_docs = report.variants["unhashed"].data_docs
    assert unhashed_docs.is_file() and (root / "validation" / "unhashed") in unhashed_docs.parents
    assert (root / "validation" / "hashed") not in unhashed_docs.parents


def test_identifier_set_matches_tokens_and_sequences():
    ids = IdentifierSet.from_sequences([("qzx_vortan0",), ("1000000000000000001",), ("zorblat", "quinnary3")])
    assert ids.count_hits("hi @QZX_Vortan0!") == 1
    assert ids.count_hits("qzx_vortan01") == 0  # a longer token is another name
    assert ids.count_hits("Zorblat &amp; quinnary3") == 1  # entities decoded; '&' separates tokens
    assert ids.count_hits("zorblat x quinnary3") == 0  # a display name is a whole token sequence
    assert ids.count_hits("<b>zorblat</b> quinnary3") == 1
    assert ids.redact({"a": ["ok", "x 1000000000000000001"]}) == {"a": ["ok", REDACTED]}


def test_validate_cli_exit_code_and_summary(clean, clean_report, tmp_path, capsys):
    """The CLI on copies of the validated clean staging: 0 when clean, 1 naming the failed
    expectation, 2 on a usage error (before Spark starts)."""
    from ioarchive.cli.main import main

    layout, campaign = clean
    for name in ("clean", "broken"):
        shutil.copytree(layout.root, tmp_path / name, ignore=shutil.ignore_patterns("validation"))
    recon_path = tmp_path / "broken" / layout.reconciliation.relative_to(layout.root)
    recon = json.loads(recon_path.read_text())
    recon["tables"]["accounts"]["released"] += 1
    recon["tables"]["accounts"]["read"] += 1  # still balanced: only the row count disagrees
    recon_path.write_text(json.dumps(recon))

    def validate(name: str, *extra: str) -> tuple[int, str]:
        code = main(["validate", "--staging", str(tmp_path / name), "--release-id", RELEASE_ID,
                     "--campaign", str(campaign), "--suite", "accounts_unhashed", *extra])
        return code, capsys.readouterr().out

    code, out = validate("clean")
    assert code == 0 and "PASSED" in out, out
    code, out = validate("broken")
    assert code == 1, out
    assert "FAIL unhashed/accounts_unhashed: reconciliation_released_equals_rows" in out
    summary = json.loads((tmp_path / "broken" / "validation" / "unhashed" / "summary.json").read_text())
    assert [f["expectation"] for f in summary["suites"]["accounts_unhashed"]["failed"]] == [
        "reconciliation_released_equals_rows"
    ]
    code, _ = validate("clean", "--threshold", "-1")
    assert code == 2  # invalid threshold: usage error, not a gate failure


def test_split_csv_cuts_only_between_records(tmp_path):
    """Scratch CSV parts (read in parallel by Spark) hold exactly the records of the whole file:
    quoted line breaks and doubled quotes never become cut points; each part has the header."""
    import csv
    import io

    from ioarchive.quality.data import split_csv

    rows = [[str(n), f'line one\r\nline "two" {n}' if n % 3 else "x" * (n % 50), '""' if n % 7 else "\n"]
            for n in range(400)]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows([["id", "text", "other"], *rows])
    data = buf.getvalue().encode("utf-8")
    parts = split_csv(io.BytesIO(data), tmp_path, "t", part_bytes=1000)
    assert parts == len(list(tmp_path.glob("t_part*.csv"))) > 5
    read = []
    for path in sorted(tmp_path.glob("t_part*.csv")):
        records = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
        assert records[0] == ["id", "text", "other"]
        read.extend(records[1:])
    assert read == rows
