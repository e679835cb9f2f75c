"""Spark's native HMAC pseudonyms equal the Python reference; text redaction edge cases."""

from __future__ import annotations

from ioarchive.pseudonymize.pseudonym import pseudonym
from support.quality import ACCOUNT_SCHEMA, POST_TAIL

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


def _reference_post(post: dict, ids: dict[str, str], tokens: dict[str, str]) -> dict:
    """RELEASE_SPEC s.4 for one post, in plain Python (no account record joined)."""
    import re

    def redact(text):
        return text if not text else re.sub(r"[A-Za-z0-9_]+", lambda m: tokens.get(m.group(0).lower(), m.group(0)), text)

    out = dict(post)
    out["tweet_text"] = redact(post["tweet_text"])
    for c in ("hashtags", "urls", "poll_choices"):
        out[c] = None if post[c] is None else [redact(x) for x in post[c]]
    for c in ("userid", "in_reply_to_userid", "retweet_userid"):
        out[c] = ids.get(post[c], post[c])
    out["user_mentions"] = None if post["user_mentions"] is None else [ids.get(u, u) for u in post["user_mentions"]]
    if post["userid"] in ids:
        out["user_display_name"] = out["user_screen_name"] = ids[post["userid"]]
    for c in ("latitude", "longitude"):
        out[c] = "present" if post[c] is not None else "absent"
    return out


def test_hashed_posts_equal_the_plain_python_reference(spark):
    """Every column of every hashed post equals RELEASE_SPEC s.4 written in plain Python.

    Including tokens that only a correct cut finds (a Kelvin sign glued to a name lower-cases to
    ``k``), ids that match only exactly, names inside each list column, an author without an
    account record, null lists, a null ``tweetid`` and a duplicated one.
    """
    from ioarchive.pseudonymize.variant import hashed_accounts, hashed_posts, pseudonym_keys
    from ioarchive.schema import ACCOUNT_COLUMNS, POST_COLUMNS

    identities = spark.createDataFrame(
        [("11", "Sara", None, 1), ("X9y", "bob_2", None, 3), ("12", "SaraDaily", None, 6000)],
        "userid string, screen_name string, display_name string, follower_count long",
    )
    keys = pseudonym_keys(spark, identities, KEY, 5000)
    p11, px = pseudonym(KEY, "11"), pseudonym(KEY, "X9y")
    ids = {"11": p11, "X9y": px}
    tokens = {"sara": p11, "11": p11, "bob_2": px, "x9y": px}

    base = dict.fromkeys(POST_COLUMNS)
    base.update(userid="12", user_display_name="Big", user_screen_name="SaraDaily", follower_count=6000,
                hashtags=[], urls=[], user_mentions=[], poll_choices=[])
    cases = {
        "plain": {"tweet_text": "nothing here, SaraDaily and sarah and 111 é 🙂"},
        "at": {"tweet_text": "hi @Sara! and @SARA."},
        "kelvin": {"tweet_text": "x \u212aSara y"},
        "id_token": {"tweet_text": "id 11, not 111 nor 11x; X9Y"},
        "hashtag": {"hashtags": ["SARA", "other"], "tweet_text": "tags", "urls": ["https://example.com/"]},
        "url": {"urls": ["https://example.com/bob_2?q=1"]},
        "poll": {"poll_choices": ["yes", "sara"]},
        "mention": {"user_mentions": ["x9y", "X9y", "13"], "hashtags": ["plain"]},
        "reply": {"in_reply_to_userid": "11"},
        "retweet": {"retweet_userid": "X9y", "is_retweet": True},
        "author": {"userid": "11", "user_display_name": None, "user_screen_name": None, "follower_count": None},
        "null lists": {"hashtags": None, "urls": None, "user_mentions": None, "poll_choices": None,
                       "tweet_text": None},
        "unicode only": {"tweet_text": "\u212a\u0130 é"},
    }
    posts = []
    for i, (name, change) in enumerate(cases.items()):
        posts.append({**base, "tweetid": str(100 + i), "tweet_text": name, **change})
    posts.append({**base, "tweetid": None, "tweet_text": "no id but @sara"})
    posts.append({**base, "tweetid": "101", "tweet_text": "same id as 'at', names no one"})
    post_schema = f"tweetid string, {ACCOUNT_SCHEMA}, {POST_TAIL.format(geo='double')}"
    df = spark.createDataFrame([tuple(p[c] for c in POST_COLUMNS) for p in posts], post_schema)

    accounts = spark.createDataFrame([tuple(base[c] for c in ACCOUNT_COLUMNS)], ACCOUNT_SCHEMA)
    hashed_raw = hashed_accounts(accounts, keys, keep_raw_userid=True)
    got = [r.asDict() for r in hashed_posts(df, hashed_raw, keys).collect()]
    assert len(got) == len(posts)
    want = [_reference_post(p, ids, tokens) for p in posts]
    key = lambda r: (r["tweetid"] or "", r["tweet_text"] or "")  # noqa: E731
    for g, w in zip(sorted(got, key=key), sorted(want, key=key), strict=True):
        assert g == w
