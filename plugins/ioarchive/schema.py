"""Column layouts of the published tables (RELEASE_SPEC section 3) and shared constants.

One place for every column list so that writers, expectations, templates and tests agree.
"""

from __future__ import annotations

SCHEMA_VERSION = "1.0"

VARIANTS: tuple[str, ...] = ("hashed", "unhashed")
"""``hashed``: public, pseudonymized. ``unhashed``: consortium members only."""

DEFAULT_THRESHOLD = 5000
"""Accounts with fewer followers than this are pseudonymized in the hashed variant."""

DEFAULT_ARCHIVE_TARGET_BYTES = 2 * 1024**3
"""Media archives are at most this large (a single larger file gets its own archive)."""

CSV_PART_MAX_BYTES = 1024**3
"""A CSV larger than this is split into numbered parts on row boundaries."""

ACCOUNT_COLUMNS: tuple[str, ...] = (
    "userid",
    "user_display_name",
    "user_screen_name",
    "user_reported_location",
    "user_profile_description",
    "user_profile_url",
    "follower_count",
    "following_count",
    "account_creation_date",
    "account_language",
)

POST_COLUMNS: tuple[str, ...] = (
    "tweetid",
    *ACCOUNT_COLUMNS,
    "tweet_language",
    "tweet_text",
    "tweet_time",
    "tweet_client_name",
    "in_reply_to_tweetid",
    "in_reply_to_userid",
    "quoted_tweet_tweetid",
    "is_retweet",
    "retweet_userid",
    "retweet_tweetid",
    "latitude",
    "longitude",
    "quote_count",
    "reply_count",
    "like_count",
    "retweet_count",
    "hashtags",
    "urls",
    "user_mentions",
    "poll_choices",
)

MEDIA_INDEX_COLUMNS: tuple[str, ...] = (
    "media_key",
    "tweetid",
    "userid",
    "kind",
    "bytes",
    "sha256",
    "archive",
    "path_in_archive",
)
"""Published media index: which archive holds which file (RELEASE_SPEC section 5)."""

LIST_COLUMNS: tuple[str, ...] = ("hashtags", "urls", "user_mentions", "poll_choices")

MEDIA_KINDS: tuple[str, ...] = ("photo", "video", "animated_gif", "profile_image", "profile_banner")

assert len(ACCOUNT_COLUMNS) == 10
assert len(POST_COLUMNS) == 31
