"""The leak query (first-token lookup, then whole-sequence comparison) on small tables.

Each case plants one identifier where a tokenizer or the first-token lookup could plausibly
lose it (start or end of a value, next to punctuation, non-Latin letters, only in one post's
copy of the account columns) and checks the exact row keys found; near misses (a longer token,
a partial display name) must not be found. The rows found must also be exactly those in which
the Python scan of the report redaction (``IdentifierSet.count_hits``) finds an identifier.
"""

from __future__ import annotations

import pytest

# Raw identifiers of the pseudonymized accounts (follower_count < 5000) and of one public account.
ACCOUNTS = [
    # userid, display name, screen name, followers
    ("1000000000000000001", "Zorblat Quinnary", "qzx_vortan1", 10),
    ("1000000000000000002", "رضا کاوه‌پور نیک", "sepid_dast2", 20),
    ("1000000000000000003", "Ξένια Μαυρίδου", "xenia_mav3", 30),
    ("1000000000000000004", "Leila Varnosh Tehrani", "lvt_04", 40),
    ("1000000000000000009", "Leila Public", "leila_public", 9000),  # at/above the threshold
]
PSEUDO = "A" * 43

POST_COLUMNS = ("tweetid", "userid", "user_display_name", "user_screen_name", "user_profile_description",
                "tweet_text", "hashtags", "user_mentions")
# The same cases with the account columns scanned per distinct combination (as the posts suites
# do), and with a list column and the post text grouped too: grouping changes speed, not rows.
GROUPINGS = {
    "ungrouped": (),
    "account_columns": (("userid", "user_display_name", "user_screen_name", "user_profile_description"),),
    "every_column_in_a_group": (("userid", "user_display_name", "user_screen_name", "user_profile_description"),
                                ("tweet_text",), ("hashtags", "user_mentions")),
}


def _post(n: int, text: str, *, description: str = "a quiet account", display: str = PSEUDO,
          hashtags: tuple[str, ...] = ("news",), mentions: tuple[str, ...] = ()) -> tuple:
    return (str(1500 + n), PSEUDO, display, PSEUDO, description, text, list(hashtags), list(mentions))


# (tweet number, post, leaks?) ; every post of the same pseudonymized account carries the same
# account columns except where a case says otherwise.
CASES = {
    "screen_name_at_start": (_post(1, "qzx_vortan1 said hi"), True),
    "screen_name_at_end_with_punctuation": (_post(2, "thanks @QZX_Vortan1!"), True),
    "userid_alone": (_post(3, "1000000000000000001"), True),
    "userid_in_list_element": (_post(4, "nothing", mentions=("1000000000000000001",)), True),
    "display_name_across_newline": (_post(5, "praise ZORBLAT\n\n  quinnary."), True),
    "persian_display_name_in_guillemets": (_post(6, "گفت «رضا کاوه‌پور نیک»"), True),
    "greek_display_name_upper_case": (_post(7, "ΞΈΝΙΑ ΜΑΥΡΊΔΟΥ είπε"), True),
    "only_in_this_posts_description": (_post(8, "plain text", description="fan of (xenia_mav3)"), True),
    "only_in_this_posts_display_name": (_post(9, "plain text", display="Leila Varnosh Tehrani"), True),
    # near misses: the first token occurs (the lookup finds it) but no whole sequence does
    "display_name_partial": (_post(20, "zorblat alone, then quinnary later zorblat"), False),
    "common_first_name_only": (_post(21, "Leila went home; leila varnosh"), False),
    "longer_token": (_post(22, "qzx_vortan12 and xqzx_vortan1 and 10000000000000000011"), False),
    "public_name": (_post(23, "Leila Public says hi"), False),
    "clean": (_post(24, "nothing to see"), False),
}


@pytest.fixture(scope="module")
def identifiers(spark):
    from ioarchive.quality.identifiers import identifier_frame

    accounts = spark.createDataFrame(
        ACCOUNTS, "userid string, user_display_name string, user_screen_name string, follower_count long"
    )
    frame = identifier_frame(accounts, 5000).cache()
    frame.createOrReplaceTempView("leak_paths_identifiers")
    yield frame
    frame.unpersist()


@pytest.fixture(scope="module")
def posts(spark):
    schema = ", ".join(f"`{c}` array<string>" if c in ("hashtags", "user_mentions") else f"`{c}` string"
                       for c in POST_COLUMNS)
    return spark.createDataFrame([case[0] for case in CASES.values()], schema)


def _found(spark, df, query: str) -> list[tuple[str, str]]:
    from ioarchive.quality.expectations import offending_rows

    result = offending_rows(df, [query])[query]
    return sorted((r["row_key"], r["kind"]) for r in result["rows"])


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_each_planted_identifier_is_found_and_near_misses_are_not(spark, identifiers, posts, grouping):
    from ioarchive.quality.expectations import leak_query

    query = leak_query("tweetid", "leak_paths_identifiers", GROUPINGS[grouping])
    found = {key for key, _ in _found(spark, posts, query)}
    for name, (post, leaks) in CASES.items():
        assert (post[0] in found) is leaks, name


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_query_agrees_with_the_python_scan(spark, identifiers, posts, grouping):
    """Spark's tokenizer and sequence match find the rows the Python redaction scan finds."""
    from ioarchive.quality.expectations import leak_query
    from ioarchive.quality.identifiers import IdentifierSet

    ids = IdentifierSet.from_frame(identifiers)
    expected = {
        post[0] for post, _ in CASES.values()
        if ids.count_hits(" ".join(" ".join(v) if isinstance(v, list) else v for v in post))
    }
    found = {key for key, _ in _found(spark, posts, leak_query("tweetid", "leak_paths_identifiers", GROUPINGS[grouping]))}
    assert found == expected
    assert len(found) == sum(leaks for _, leaks in CASES.values())


@pytest.mark.parametrize("grouping", ["ungrouped", "account_columns"])
def test_leak_only_in_one_posts_account_columns_names_that_post(spark, identifiers, grouping):
    """Many posts of one account; only one copy of its account columns carries a raw name.

    Grouped, the 5000 posts hold two distinct account-column combinations: the one with the
    raw name must be joined back to exactly the one post that carries it."""
    from ioarchive.quality.expectations import leak_query
    from pyspark.sql import functions as F

    many = spark.range(5000).select(
        F.format_string("%d", F.col("id") + F.lit(2000)).alias("tweetid"),
        F.lit(PSEUDO).alias("userid"),
        F.lit(PSEUDO).alias("user_display_name"),
        F.lit(PSEUDO).alias("user_screen_name"),
        F.when(F.col("id") == 4321, F.lit("ex-member of lvt_04's team")).otherwise(F.lit("a quiet account"))
        .alias("user_profile_description"),
        F.format_string("post %d", "id").alias("tweet_text"),
    )
    groups = GROUPINGS[grouping]
    rows = _found(spark, many, leak_query("tweetid", "leak_paths_identifiers", groups))
    assert rows == [("6321", "screen_name")]


def test_raw_row_key_is_redacted_and_empty_identifier_set_finds_nothing(spark, identifiers):
    from ioarchive.quality.expectations import leak_query
    from ioarchive.quality.identifiers import REDACTED

    accounts = spark.createDataFrame([("1000000000000000003", "x", 1)], "userid string, tweet_text string, n long")
    assert _found(spark, accounts, leak_query("userid", "leak_paths_identifiers")) == [(REDACTED, "userid")]
    spark.createDataFrame([], "identifier_id long, kind string, pos int, n_tokens int, token string") \
        .createOrReplaceTempView("leak_paths_no_identifiers")
    assert _found(spark, accounts, leak_query("userid", "leak_paths_no_identifiers")) == []
