"""The data-quality gate: clean data passes every suite; each planted corruption fails exactly
the expectations it targets and the summary names the offending rows; hashed reports never show
a raw identifier.

The suites run twice: on the clean release, and on ONE corrupted copy in which every corruption
sits in its own (row, column) or table; each corruption declares the expectations it must fail,
a test per corruption checks that they fail and name its row, and one test checks that nothing
else failed. The corrupted copy is Spark DataFrames over the clean files
(``validate_release(tables=...)``): nothing is rewritten.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ioarchive.quality_identifiers import REDACTED, IdentifierSet, tokens
from test_quality_support import (
    DELETED_MEDIA,
    DELETED_POST,
    RELEASE_ID,
    build_clean_release,
    media_rows,
    pseudonymize,
    raw_accounts,
)


def tid(n: int) -> str:
    return str(1500000000000000000 + n)


ACCOUNTS = raw_accounts()
RAW_UID = [a["userid"] for a in ACCOUNTS]


@pytest.fixture(scope="module")
def clean(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality_clean")
    layout = build_clean_release(spark, root / "staging", root / "campaign")
    return layout, root / "campaign"


@pytest.fixture(scope="module")
def clean_report(spark, clean):
    from ioarchive.quality import validate_release

    layout, campaign = clean
    return validate_release(spark, layout.root, RELEASE_ID, campaign_dir=campaign)


def _lit(value, cast=None):
    def make():
        from pyspark.sql import functions as F

        col = F.lit(value)
        return col.cast(cast) if cast else col

    return make


def _arr(*values):
    def make():
        from pyspark.sql import functions as F

        return F.array(*[F.lit(v) if v is not None else F.lit(None).cast("string") for v in values])

    return make


def _user_path(rest: str):
    """A media path under the row's own user key (so only the planted part is wrong)."""
    def make():
        from pyspark.sql import functions as F

        return F.concat(F.col("userid"), F.lit(rest))

    return make


SCREEN0 = ACCOUNTS[0]["user_screen_name"]
PROFILE_KEYS = [m["media_key"] for m in media_rows(pseudonymize(ACCOUNTS, [])[0], [], "hashed")]
"""Media keys of the two profile images in the hashed media index (named after the pseudonym)."""
# name, variant, table, row key (None: the last row by key), column, new value, expected failures
# [(suite, expectation, an example row key that must be named, or None)]
CORRUPTIONS = [
    ("unique", "hashed", "posts", tid(10), "tweetid", _lit(tid(11)), [("posts_hashed", "tweetid_unique", tid(11))]),
    ("id_format", "hashed", "posts", tid(12), "tweetid", _lit("15x12"), [("posts_hashed", "tweetid_format", "15x12")]),
    ("threshold", "hashed", "posts", tid(14), "follower_count", _lit(6000, "long"),
     [("posts_hashed", "threshold_rule", tid(14))]),
    ("leak_screen_name", "hashed", "posts", tid(15), "tweet_text", _lit(f"hello\nnew line then {SCREEN0}, bye"),
     [("posts_hashed", "no_raw_identifier_leak", tid(15))]),
    ("leak_mention_id", "hashed", "posts", tid(16), "user_mentions", _arr(RAW_UID[1]),
     [("posts_hashed", "no_raw_identifier_leak", tid(16))]),
    ("leak_display_name", "hashed", "posts", tid(17), "tweet_text", _lit("praise ZORBLAT   quinnary3!"),
     [("posts_hashed", "no_raw_identifier_leak", tid(17))]),
    ("deleted_post", "hashed", "posts", tid(18), "tweetid", _lit(DELETED_POST),
     [("posts_hashed", "no_deleted_post", DELETED_POST)]),
    ("negative_count", "hashed", "posts", tid(19), "like_count", _lit(-1, "long"),
     [("posts_hashed", "like_count_non_negative", tid(19))]),
    ("retweet_flag", "hashed", "posts", tid(20), "is_retweet", _lit(True),
     [("posts_hashed", "is_retweet_matches_retweet_ids", tid(20))]),
    ("list_null_element", "hashed", "posts", tid(21), "hashtags", _arr("a", None),
     [("posts_hashed", "list_columns_have_no_null_elements", tid(21))]),
    ("mention_format", "hashed", "posts", tid(22), "user_mentions", _arr("not an id"),
     [("posts_hashed", "user_mentions_format", tid(22))]),
    ("coordinates_hidden", "hashed", "posts", tid(23), "latitude", _lit("35.7"),
     [("posts_hashed", "latitude_in_set", tid(23))]),
    ("time_null", "hashed", "posts", tid(9), "tweet_time", _lit(None, "timestamp"),
     [("posts_hashed", "tweet_time_not_null", tid(9))]),
    ("reply_id_format", "hashed", "posts", tid(8), "in_reply_to_tweetid", _lit("x"),
     [("posts_hashed", "in_reply_to_tweetid_format", tid(8))]),
    ("retweet_null", "hashed", "posts", tid(7), "is_retweet", _lit(None, "boolean"),
     [("posts_hashed", "is_retweet_not_null", tid(7))]),
    ("not_an_account", "unhashed", "posts", tid(5), "userid", _lit("1999999999999999999"),
     [("posts_unhashed", "userid_is_released_account", tid(5))]),
    ("following_negative", "hashed", "accounts", None, "following_count", _lit(-5, "long"),
     [("accounts_hashed", "following_count_non_negative", None)]),
    ("leak_in_description", "hashed", "accounts", RAW_UID[4], "user_profile_description",
     _lit("friend of @QZX_vortan1"), [("accounts_hashed", "no_raw_identifier_leak", RAW_UID[4])]),
    ("leak_raw_key_redacted", "hashed", "accounts_csv", None, "userid", _lit(RAW_UID[0]),
     [("accounts_csv_hashed", "no_raw_identifier_leak", REDACTED)]),
    ("sha256_format", "hashed", "media_index", f"3_{tid(0)}", "sha256", _lit("xyz"),
     [("media_index_hashed", "sha256_format", f"3_{tid(0)}")]),
    ("media_kind", "hashed", "media_index", f"3_{tid(1)}", "kind", _lit("gif"),
     [("media_index_hashed", "kind_in_set", f"3_{tid(1)}")]),
    ("media_orphan", "unhashed", "media_index", f"3_{tid(2)}", "tweetid", _lit("1599999999999999999"),
     [("media_index_unhashed", "points_at_released_post_or_account", f"3_{tid(2)}")]),
    ("deleted_media", "unhashed", "media_index", f"3_{tid(0)}", "media_key", _lit(DELETED_MEDIA),
     [("media_index_unhashed", "no_deleted_media", DELETED_MEDIA)]),
    ("path_user_key", "unhashed", "media_index", f"3_{tid(1)}", "path_in_archive",
     _lit(f"otheruser/images/{tid(1)}-3_{tid(1)}.jpg"), [("media_index_unhashed", "path_names_user_key", f"3_{tid(1)}")]),
    ("csv_time_format", "hashed", "posts_csv", tid(3), "tweet_time", _lit("2020-05-01T12:03:30"),
     [("posts_csv_hashed", "tweet_time_format", tid(3))]),
    ("csv_bool", "hashed", "posts_csv", tid(4), "is_retweet", _lit("True"), [("posts_csv_hashed", "is_retweet_in_set", tid(4))]),
    ("csv_list", "unhashed", "posts_csv", tid(5), "hashtags", _lit("topic1"),
     [("posts_csv_unhashed", "list_columns_are_json_arrays", tid(5))]),
    ("csv_coordinates", "unhashed", "posts_csv", tid(0), "latitude", _lit("35,7"), [("posts_csv_unhashed", "latitude_format", tid(0))]),
    ("csv_date_format", "unhashed", "accounts_csv", RAW_UID[2], "account_creation_date", _lit("01/03/2015"),
     [("accounts_csv_unhashed", "account_creation_date_format", RAW_UID[2])]),
    ("threshold_account", "hashed", "accounts", RAW_UID[5], "follower_count", _lit(10, "long"),
     [("accounts_hashed", "threshold_rule", RAW_UID[5])]),
    ("not_an_account_hashed", "hashed", "posts", tid(4), "userid", _lit("1999999999999999999"),
     [("posts_hashed", "userid_is_released_account", tid(4))]),
    ("retweet_flag_unhashed", "unhashed", "posts", tid(10), "is_retweet", _lit(True),
     [("posts_unhashed", "is_retweet_matches_retweet_ids", tid(10))]),
    ("list_null_unhashed", "unhashed", "posts", tid(11), "urls", _arr(None),
     [("posts_unhashed", "list_columns_have_no_null_elements", tid(11))]),
    ("mention_format_unhashed", "unhashed", "posts", tid(12), "user_mentions", _arr("@someone"),
     [("posts_unhashed", "user_mentions_format", tid(12))]),
    ("deleted_post_unhashed", "unhashed", "posts", tid(13), "tweetid", _lit(DELETED_POST),
     [("posts_unhashed", "no_deleted_post", DELETED_POST)]),
    ("csv_list_hashed", "hashed", "posts_csv", tid(6), "urls", _lit("https://example.com/a"),
     [("posts_csv_hashed", "list_columns_are_json_arrays", tid(6))]),
    ("csv_leak", "hashed", "posts_csv", tid(7), "tweet_text", _lit(f"thanks {SCREEN0}"),
     [("posts_csv_hashed", "no_raw_identifier_leak", tid(7))]),
    ("deleted_media_hashed", "hashed", "media_index", f"3_{tid(2)}", "media_key", _lit(DELETED_MEDIA),
     [("media_index_hashed", "no_deleted_media", DELETED_MEDIA)]),
    ("path_user_key_hashed", "hashed", "media_index", PROFILE_KEYS[0], "path_in_archive",
     _lit("otheruser/profile/otheruser_profile.jpg"), [("media_index_hashed", "path_names_user_key", PROFILE_KEYS[0])]),
    ("media_orphan_hashed", "hashed", "media_index", PROFILE_KEYS[1], "tweetid", _lit("1599999999999999999"),
     [("media_index_hashed", "points_at_released_post_or_account", PROFILE_KEYS[1])]),
    ("media_path_leak", "hashed", "media_index", f"3_{tid(0)}", "path_in_archive",
     _user_path(f"/images/{tid(0)}-{SCREEN0}.jpg"), [("media_index_hashed", "no_raw_identifier_leak", f"3_{tid(0)}")]),
]


SUITE_FILES = {json.loads(p.read_text())["name"]: json.loads(p.read_text())
               for p in (Path(__file__).parents[1] / "expectations").glob("*.json")}


TABLE_KEYS = {"posts": "tweetid", "posts_csv": "tweetid", "accounts": "userid", "accounts_csv": "userid",
              "media_index": "media_key"}
# Whole-table corruptions with their expected failures.
TABLE_LEVEL = {
    "column_order": [("posts_hashed", "columns_in_order", None)],
    "row_dropped": [("posts_unhashed", "row_count_equals_hashed", None), ("posts_hashed", "row_count_equals_unhashed", None),
                    ("posts_unhashed", "reconciliation_released_equals_rows", None),
                    ("posts_csv_unhashed", "row_count_equals_parquet", None)],
    "unbalanced": [("posts_hashed", "reconciliation_balanced", "accounts"),
                   ("posts_unhashed", "reconciliation_balanced", "accounts")],
}


@pytest.fixture(scope="module")
def corrupted_report(spark, clean, tmp_path_factory):
    from ioarchive.quality import validate_release
    from ioarchive.quality_data import load_release_tables
    from pyspark.sql import functions as F

    layout, campaign = clean
    root = tmp_path_factory.mktemp("quality_corrupted") / "staging"
    root.mkdir()
    recon = json.loads(layout.reconciliation.read_text())
    recon["tables"]["accounts"]["read"] += 1  # "unbalanced"
    (root / "reconciliation.json").write_text(json.dumps(recon))
    tables = load_release_tables(spark, layout, root / "csv_scratch")
    frames = tables.frames
    for _, variant, table, key, column, value, _ in CORRUPTIONS:
        df = frames[(variant, table)]
        if key is None:  # first row by key order
            key = sorted(r[0] for r in df.select(TABLE_KEYS[table]).collect())[-1]
        match = F.col(TABLE_KEYS[table]) == F.lit(key)
        frames[(variant, table)] = df.withColumn(column, F.when(match, value()).otherwise(F.col(column)))
    posts = frames[("hashed", "posts")]
    cols = posts.columns
    i, j = cols.index("tweet_language"), cols.index("tweet_text")
    cols[i], cols[j] = cols[j], cols[i]
    frames[("hashed", "posts")] = posts.select(*cols)  # "column_order"
    frames[("unhashed", "posts")] = frames[("unhashed", "posts")].where(F.col("tweetid") != tid(6))  # "row_dropped"
    report = validate_release(spark, root, RELEASE_ID, campaign_dir=campaign, tables=tables)
    return report, root


def _failed(report) -> dict[tuple[str, str], list]:
    """(suite, expectation) -> row keys named (query rows like {row_key, kind} give their values)."""
    failed = {}
    for _, suite, f in report.failures():
        keys = []
        for example in f.examples:
            keys.extend(example.values() if isinstance(example, dict) else [example])
        failed[(suite, f.expectation)] = keys
    return failed


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


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corruption_fails_its_expectation(corrupted_report, corruption):
    report, root = corrupted_report
    name, variant, table, key, column, value, expected = corruption
    failed = _failed(report)
    for suite, expectation, example in expected:
        assert (suite, expectation) in failed, f"{name}: {suite}/{expectation} did not fail"
        if example is not None:
            assert example in failed[(suite, expectation)], f"{name}: examples {failed[(suite, expectation)]}"
        summary = json.loads((root / "validation" / variant / "summary.json").read_text())
        names = [f["expectation"] for f in summary["suites"][suite]["failed"]]
        assert expectation in names


@pytest.mark.parametrize("name", sorted(TABLE_LEVEL))
def test_table_level_corruption_fails_its_expectation(corrupted_report, name):
    failed = _failed(corrupted_report[0])
    for suite, expectation, example in TABLE_LEVEL[name]:
        assert (suite, expectation) in failed
        if example is not None:
            assert example in failed[(suite, expectation)]


def test_nothing_but_the_planted_corruptions_fails(corrupted_report):
    expected = {(s, e) for c in CORRUPTIONS for s, e, _ in c[6]}
    expected |= {(s, e) for items in TABLE_LEVEL.values() for s, e, _ in items}
    assert set(_failed(corrupted_report[0])) == expected
    assert not corrupted_report[0].success


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
    from ioarchive.cli import main

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

    from ioarchive.quality_data import split_csv

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
