"""The CSV suites' list-column check (``list_columns_are_json_arrays``) on tricky values.

The check is a regular expression in the suite files (cheaper than ``from_json``); it must
accept every JSON array of strings the writer prints (Spark ``to_json``) and reject anything
that is not a JSON array of strings.
"""

from __future__ import annotations

import json

import pytest
from ioarchive.quality.runner import EXPECTATIONS_DIR

GOOD = ["[]", '[""]', '["a"]', '["a","b"]', r'["say \"hi\""]', r'["back\\slash"]', r'["tab\tnew\nline"]',
        r'["\u00e9"]', '["é","رضا","🙂"]', '["https://t.co/x?a=1&b=[2]"]']
BAD = ["", "[", '["a",]', "[a]", '["a"] ', ' ["a"]', '["a" ,"b"]', '["unterminated]', "[1]", '[null]',
       '["raw\x01control"]', r'["bad \q escape"]', r'["\u00e"]', '{"a":1}', "https://example.com/a", "topic1"]


@pytest.mark.parametrize("variant", ["hashed", "unhashed"])
def test_list_check_accepts_what_the_writer_prints_and_rejects_the_rest(spark, variant):
    from ioarchive.quality.expectations import offending_rows
    from pyspark.sql import functions as F

    suite = json.loads((EXPECTATIONS_DIR / f"posts_csv_{variant}.json").read_text(encoding="utf-8"))
    (query,) = [e["kwargs"]["unexpected_rows_query"] for e in suite["expectations"]
                if e["meta"]["name"] == "list_columns_are_json_arrays"]
    written = [r[0] for r in spark.createDataFrame(
        [([], ), ([""], ), (['say "hi"'], ), (["back\\slash", "tab\tnew\nline"], ), (["é", "\u0001"], )],
        "v array<string>").select(F.to_json("v")).collect()]
    values = [*GOOD, *written, *BAD]
    for value in values[:len(GOOD) + len(written)]:
        assert json.loads(value) is not None
    rows = [(str(i), "[]", v, "[]", "[]") for i, v in enumerate(values)]
    frame = spark.createDataFrame(rows, "tweetid string, hashtags string, urls string, user_mentions string, "
                                        "poll_choices string")
    found = offending_rows(frame, [query])[query]
    offending = {int(r["tweetid"]) for r in found["rows"]}
    assert found["count"] == len(BAD)
    assert offending == set(range(len(GOOD) + len(written), len(values)))
