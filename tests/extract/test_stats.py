"""Release statistics counted by extraction, published per variant, read back exactly.

A generated campaign is rewritten with a planted distribution: accounts created in two bursts
(March 2019 and November 2020), post languages in known shares (50 % fa, 30 % ar, the rest en),
and a hashtag that is a pseudonymized account's screen name. The real jobs (extract,
pseudonymize) run in-process; expectations come from the raw JSON, never from the code under
test.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime

import pytest
from ioarchive.extract import stats as release_stats
from ioarchive.pseudonymize.pseudonym import pseudonym, write_key_file
from ioarchive.render.charts import CHARTS, render_charts
from ioarchive.staging import StagingLayout
from support.release import extract_both_variants

RELEASE = "stats_202102"
KEY = b"test-only key: stats 0123456789abcdef0123456789abcdef"
SVG = "{http://www.w3.org/2000/svg}"
V11 = "%a %b %d %H:%M:%S %z %Y"


def _objects(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]


def _write(path, objs):
    path.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in objs) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def planted(spark, tmp_path_factory):
    from ioarchive.devtools.generate.campaign import generate_campaign

    campaign_dir = tmp_path_factory.mktemp("campaign") / "campaign"
    generate_campaign(campaign_dir, seed=23, accounts=20, posts=300, media_bytes=1024**2)
    campaign = json.loads((campaign_dir / "campaign.json").read_text())
    members = set(campaign["account_ids"])
    accounts = _objects(campaign_dir / "accounts.jsonl")
    for i, a in enumerate(accounts):  # two bursts
        a["created_at"] = (f"Tue Mar {1 + i % 28:02d} 10:00:00 +0000 2019" if i % 5 < 3
                           else f"Sun Nov {1 + i % 28:02d} 23:59:59 +0000 2020")
    small = [a for a in accounts if a["id_str"] in members and a["followers_count"] < 5000]
    target = small[0]
    target["screen_name"] = "PlantedHandle77"
    _write(campaign_dir / "accounts.jsonl", accounts)
    deleted = {d["id"] for d in _objects(campaign_dir / "deletions.jsonl")}
    posts = _objects(campaign_dir / "posts.jsonl")
    released = [p for p in posts if p["user"]["id_str"] in members and p["id_str"] not in deleted]
    n = len(released)
    shares = {"fa": n // 2, "ar": 3 * n // 10}
    shares["en"] = n - shares["fa"] - shares["ar"]
    langs = ["fa"] * shares["fa"] + ["ar"] * shares["ar"] + ["en"] * shares["en"]
    for p, lang in zip(released, langs, strict=True):
        p["lang"] = lang
    for p in released[:40]:  # the most frequent hashtag names a pseudonymized account
        p["entities"]["hashtags"] = [*(p["entities"].get("hashtags") or []), {"text": "PlantedHandle77"}]
    _write(campaign_dir / "posts.jsonl", posts)

    staging = tmp_path_factory.mktemp("staging")
    key_file = write_key_file(KEY, tmp_path_factory.mktemp("key") / "key")
    extract_both_variants(spark, campaign_dir, staging, RELEASE, key_file)
    return {"layout": StagingLayout(staging, RELEASE), "accounts": [a for a in accounts if a["id_str"] in members],
            "released": released, "shares": shares, "target": target, "members": members,
            "small": small}


def _svg_bars(path) -> list[tuple[str, int]]:
    root = ET.parse(path).getroot()
    return [(r.get("data-key"), int(r.get("data-value"))) for r in root.iter(f"{SVG}rect") if r.get("data-key") is not None]


def _ranked(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("variant", ["hashed", "unhashed"])
def test_planted_distribution_reads_back_from_stats_json_and_svg(planted, variant):
    layout, released = planted["layout"], planted["released"]
    doc = json.loads(layout.release_stats(variant).read_text(encoding="utf-8"))
    months = Counter(datetime.strptime(a["created_at"], V11).strftime("%Y-%m") for a in planted["accounts"])
    assert set(months) == {"2019-03", "2020-11"}
    assert doc["accounts_created_per_month"] == [{"month": m, "accounts": months[m]} for m in sorted(months)]
    n = len(released)
    assert doc["posts"] == n and doc["accounts"] == len(planted["accounts"])
    assert doc["post_languages"] == [{"language": k, "posts": v, "share": round(v / n, 6)}
                                     for k, v in _ranked(Counter(planted["shares"]))]
    days = Counter(datetime.strptime(p["created_at"], V11).strftime("%Y-%m-%d") for p in released)
    assert doc["posts_per_day"] == [{"day": d, "posts": days[d]} for d in sorted(days)]
    clients = Counter(re.sub(r"<[^>]+>", "", p["source"]) for p in released)
    assert doc["top_clients"] == [{"client": k, "posts": v} for k, v in _ranked(clients)[:release_stats.TOP_CLIENTS]]
    retweets = sum(1 for p in released if p.get("retweeted_status"))
    assert doc["retweets"] == {"retweets": retweets, "original_posts": n - retweets, "share": round(retweets / n, 6)}
    tags = Counter(t for p in released for t in {h["text"] for h in p["entities"].get("hashtags") or []})
    if variant == "hashed":
        tags.pop("PlantedHandle77")
    assert doc["top_hashtags"] == [{"hashtag": k, "posts": v} for k, v in _ranked(tags)[:release_stats.TOP_HASHTAGS]]
    assert (doc["top_hashtags"][0]["hashtag"] == "PlantedHandle77") == (variant == "unhashed")

    # The same numbers from the SVG files themselves.
    charts = {name: layout.chart(variant, name) for name in CHARTS}
    assert sorted(p.name for p in layout.charts_dir(variant).iterdir()) == sorted(f"{c}.svg" for c in CHARTS)
    month_bars = _svg_bars(charts["accounts_created_per_month"])
    assert len(month_bars) == 21 and [kv for kv in month_bars if kv[1]] == sorted(months.items())
    assert [kv for kv in _svg_bars(charts["posts_per_day"]) if kv[1]] == sorted(days.items())
    assert _svg_bars(charts["post_languages"]) == _ranked(Counter(planted["shares"]))
    assert _svg_bars(charts["top_hashtags"]) == [(h["hashtag"], h["posts"]) for h in doc["top_hashtags"]]
    assert _svg_bars(charts["top_clients"]) == [(c["client"], c["posts"]) for c in doc["top_clients"]]
    assert _svg_bars(charts["retweet_share"]) == [("retweets", retweets), ("original_posts", n - retweets)]
    # Drawing the same statistics again gives the same bytes; so does publishing them again.
    before = {p: p.read_bytes() for p in [layout.release_stats(variant), *charts.values()]}
    assert render_charts(doc) == {name: path.read_bytes() for name, path in charts.items()}
    if variant == "unhashed":
        release_stats.publish(layout, "unhashed")
        assert {p: p.read_bytes() for p in before} == before


def test_hashed_statistics_name_no_account(planted):
    layout = planted["layout"]
    blobs = [layout.release_stats("hashed").read_bytes(),
             *(p.read_bytes() for p in sorted(layout.charts_dir("hashed").iterdir()))]
    text = b"\n".join(blobs).decode("utf-8")
    for a in planted["accounts"]:  # no raw id of any campaign account, no pseudonym
        assert a["id_str"] not in text
        assert pseudonym(KEY, a["id_str"]) not in text
    for a in planted["small"]:  # no screen name of a pseudonymized account, as a word
        assert not re.search(rf"(?<![A-Za-z0-9_]){re.escape(a['screen_name'])}(?![A-Za-z0-9_])", text, re.I)
    unhashed = layout.release_stats("unhashed").read_text(encoding="utf-8")
    assert "PlantedHandle77" in unhashed and not any(a["id_str"] in unhashed for a in planted["accounts"])
