"""Release charts from stats.json: data read back from the SVG, deterministic bytes, listed and shown.

The statistics are planted by hand here (the Spark side that counts them is tested in
tests/extract/test_stats.py); each chart's bars are read back with an XML parser.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET

from ioarchive.extract import stats as release_stats
from ioarchive.render.charts import CHARTS, render_charts
from ioarchive.render.documents import render_release
from support.render import RELEASE_ID, make_campaign, make_staging

SVG = "{http://www.w3.org/2000/svg}"


def aggregate() -> dict:
    """Two bursts of account creation, known language shares, hostile hashtag and client text."""
    return {
        "stats_format": 1,
        "release_id": RELEASE_ID,
        "accounts_created_per_month": {"2019-03": 12, "2020-11": 8},
        "posts_per_day": {"2021-01-30": 5, "2021-02-01": 15},
        "post_languages": {"fa": 10, "ar": 6, "en": 4},
        "hashtags": {"Iran": 7, 'a<b&"c"': 3, "x\ty": 1, **{f"tag{i:02d}": 1 for i in range(30)}},
        "clients": {"Twitter Web App": 12, "بوت الأخبار": 6, "<script>alert(1)</script>": 2},
        "retweets": {"true": 5, "false": 15},
    }


def bars(svg: bytes) -> list[tuple[str, int]]:
    root = ET.fromstring(svg)
    return [(r.get("data-key"), int(r.get("data-value"))) for r in root.iter(f"{SVG}rect") if r.get("data-key") is not None]


def test_planted_statistics_read_back_from_stats_and_svg() -> None:
    doc = release_stats.published(aggregate(), "unhashed")
    assert doc["accounts"] == 20 and doc["posts"] == 20
    assert doc["accounts_created_per_month"] == [{"month": "2019-03", "accounts": 12}, {"month": "2020-11", "accounts": 8}]
    assert doc["post_languages"] == [{"language": "fa", "posts": 10, "share": 0.5},
                                     {"language": "ar", "posts": 6, "share": 0.3},
                                     {"language": "en", "posts": 4, "share": 0.2}]
    assert doc["retweets"] == {"retweets": 5, "original_posts": 15, "share": 0.25}
    assert len(doc["top_hashtags"]) == release_stats.TOP_HASHTAGS
    assert doc["top_hashtags"][:3] == [{"hashtag": "Iran", "posts": 7}, {"hashtag": 'a<b&"c"', "posts": 3},
                                       {"hashtag": "tag00", "posts": 1}]
    charts = render_charts(doc)
    assert list(charts) == list(CHARTS)
    months = bars(charts["accounts_created_per_month"])
    # Every month from the first burst to the second, zero between the bursts.
    assert len(months) == 21 and months[0] == ("2019-03", 12) and months[-1] == ("2020-11", 8)
    assert [kv for kv in months if kv[1]] == [("2019-03", 12), ("2020-11", 8)]
    assert bars(charts["posts_per_day"]) == [("2021-01-30", 5), ("2021-01-31", 0), ("2021-02-01", 15)]
    assert bars(charts["post_languages"]) == [("fa", 10), ("ar", 6), ("en", 4)]
    assert bars(charts["top_hashtags"]) == [(h["hashtag"], h["posts"]) for h in doc["top_hashtags"]]
    assert bars(charts["top_clients"]) == [("Twitter Web App", 12), ("بوت الأخبار", 6), ("<script>alert(1)</script>", 2)]
    assert bars(charts["retweet_share"]) == [("retweets", 5), ("original_posts", 15)]
    assert b"<script>" not in charts["top_clients"] and b"25.0%" in charts["retweet_share"]
    # The tallest bar of a series reaches the axis maximum it was scaled to; heights are proportional.
    root = ET.fromstring(charts["accounts_created_per_month"])
    heights = {r.get("data-key"): float(r.get("height")) for r in root.iter(f"{SVG}rect") if r.get("data-key")}
    assert abs(heights["2019-03"] / heights["2020-11"] - 12 / 8) < 0.01


def test_rendering_twice_gives_identical_bytes_and_json_round_trips() -> None:
    doc = release_stats.published(aggregate(), "hashed", lambda h: h != "Iran")
    again = json.loads(json.dumps(doc))
    assert render_charts(doc) == render_charts(again)
    assert "Iran" not in {h["hashtag"] for h in doc["top_hashtags"]}
    assert b"Iran" not in render_charts(doc)["top_hashtags"]


def test_many_languages_end_in_an_other_bar_and_empty_release_draws() -> None:
    agg = aggregate()
    agg["post_languages"] = {f"l{i:02d}": 20 - i for i in range(18)}
    doc = release_stats.published(agg, "unhashed")
    got = bars(render_charts(doc)["post_languages"])
    assert got[:15] == [(f"l{i:02d}", 20 - i) for i in range(15)] and got[15] == ("(other)", 5 + 4 + 3)
    empty = {"stats_format": 1, "release_id": RELEASE_ID, **{k: {} for k in release_stats.FACETS}}
    charts = render_charts(release_stats.published(empty, "hashed"))
    assert all(bars(svg) in ([], [("retweets", 0), ("original_posts", 0)]) for svg in charts.values())


def test_charts_are_listed_in_the_manifest_and_shown_in_the_readme(tmp_path) -> None:
    layout = make_staging(tmp_path)
    campaign = make_campaign(tmp_path)
    for variant in ("hashed", "unhashed"):
        release_stats.write_published(layout, variant, release_stats.published(aggregate(), variant))
    manifests = render_release(layout.root, campaign, RELEASE_ID)
    for variant, manifest in manifests.items():
        rel = layout.release_dir(variant)
        entries = {f["name"]: f for f in manifest["files"]}
        charts = {f"charts/{name}.svg" for name in CHARTS}
        assert {n for n, f in entries.items() if f["kind"] == "chart"} == charts
        assert entries["stats.json"]["kind"] == "stats"
        for name in [*charts, "stats.json"]:
            data = (rel / name).read_bytes()
            assert entries[name]["bytes"] == len(data) and entries[name]["sha256"] == hashlib.sha256(data).hexdigest()
            assert f"{entries[name]['sha256']}  {name}\n" in layout.sha256sums(variant).read_text()
        readme = layout.readme(variant).read_text()
        links = re.findall(r"!\[([^\]]*)\]\(([^)]*)\)", readme)
        assert links == [(title, f"charts/{name}.svg") for name, title in CHARTS.items()]
        assert all((rel / target).is_file() for _, target in links)
        assert "stats.json" in readme.split("## Files")[0]
        assert ("Top hashtags leave out any hashtag" in readme) == (variant == "hashed")
    # Rerunning the statistics and the render rewrites the same bytes.
    before = {p: p.read_bytes() for p in layout.release_dir("hashed").rglob("*") if p.is_file()}
    release_stats.write_published(layout, "hashed", release_stats.published(aggregate(), "hashed"))
    render_release(layout.root, campaign, RELEASE_ID)
    assert {p: p.read_bytes() for p in layout.release_dir("hashed").rglob("*") if p.is_file()} == before
