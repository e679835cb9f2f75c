"""Spark's native HMAC pseudonyms equal the Python reference; text redaction edge cases."""

from __future__ import annotations

from ioarchive.pseudonymize.pseudonym import pseudonym

KEY = b"unit-test key 0123456789abcdef0123456789abcdef"


def test_spark_pseudonym_matches_python_reference(spark):
    from ioarchive.pseudonymize.variant import pseudonym_keys

    ids = ["1", "786665862725850473", "9" * 19, "ünïcode"]
    identities = spark.createDataFrame(
        [(u, f"name{i}", None, 10) for i, u in enumerate(ids)] + [("42", "big", None, 5000)],
        "userid string, screen_name string, display_name string, follower_count long",
    )
    got = {r["key"]: r["pseudonym"] for r in pseudonym_keys(spark, identities, KEY, 5000).collect()}
    for i, uid in enumerate(ids):
        assert got[f"i:{uid}"] == pseudonym(KEY, uid)
        assert got[f"t:name{i}"] == pseudonym(KEY, uid)
    assert "i:42" not in got and "t:big" not in got  # 5000 followers: not pseudonymized
    assert len(set(got.values())) == len(ids)


def test_redaction_respects_token_boundaries_and_case(spark):
    from ioarchive.pseudonymize.variant import hashed_accounts, pseudonym_keys

    identities = spark.createDataFrame(
        [("11", "Sara", None, 1), ("12", "SaraDaily", None, 6000)],
        "userid string, screen_name string, display_name string, follower_count long",
    )
    keys = pseudonym_keys(spark, identities, KEY, 5000)
    accounts = spark.createDataFrame(
        [("12", "Big", "SaraDaily", "", "ask @sara or @SARA, not @SaraDaily nor mail@sarah; sara_x; 11 and 111",
          None, 6000, 1, None, "en")],
        "userid string, user_display_name string, user_screen_name string, user_reported_location string, "
        "user_profile_description string, user_profile_url string, follower_count long, following_count long, "
        "account_creation_date date, account_language string",
    )
    (row,) = hashed_accounts(accounts, keys).collect()
    p = pseudonym(KEY, "11")
    assert row["user_profile_description"] == (
        f"ask @{p} or @{p}, not @SaraDaily nor mail@sarah; sara_x; {p} and 111"
    )
    assert (row["userid"], row["user_screen_name"]) == ("12", "SaraDaily")
