"""Release statistics: small aggregates for the researchers' first look, and their charts.

Extraction counts them in the aggregation that already balances the books (no second pass
over the posts; see ``extraction.tally``) over the *released* records:

- ``accounts_created_per_month``: accounts by creation month (UTC, ``YYYY-MM``);
- ``posts_per_day``: posts by day (UTC, ``YYYY-MM-DD``);
- ``post_languages``: posts by ``tweet_language`` (``""`` when the export had none);
- ``hashtags``: posts carrying each hashtag (once per post, as written; the
  :data:`TOP_K` most frequent are kept);
- ``clients``: posts by client name (most frequent :data:`TOP_K` kept);
- ``retweets``: posts that are retweets (``"true"``) or not (``"false"``).

The counts go to ``work/unhashed/stats.json`` (internal). Each variant publishes
``release/<variant>/stats.json`` (:func:`published`) and ``release/<variant>/charts/*.svg``
(``ioarchive.render.charts``). None of them holds an account id, name or pseudonym: the
statistics are counts by month, day, language, hashtag and client only. In the hashed variant
a hashtag that pseudonymization would rewrite (it contains a pseudonymized account's screen
name or id as a word) is left out of the top hashtags (``hashtag_allowed``, computed by the
pseudonymization step with the same rule); its posts still count everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ioarchive.files import atomic_write_bytes
from ioarchive.staging import StagingLayout

STATS_FORMAT = 1
TOP_HASHTAGS = 20
TOP_CLIENTS = 10
TOP_K = {"hashtags": 1000, "clients": 1000}
"""Facets with many distinct keys: how many of the most frequent extraction keeps."""
FACETS = ("accounts_created_per_month", "posts_per_day", "post_languages", "hashtags", "clients", "retweets")


class StatsError(RuntimeError):
    """The statistics cannot be published; the message says which step to rerun."""


def _canonical(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def save_aggregate(layout: StagingLayout, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Write extraction's counts to ``work/unhashed/stats.json``; returns the document."""
    doc = {"stats_format": STATS_FORMAT, "release_id": layout.release_id,
           **{name: dict(sorted((counts.get(name) or {}).items())) for name in FACETS}}
    atomic_write_bytes(layout.work_stats("unhashed"), _canonical(doc))
    return doc


def load_aggregate(layout: StagingLayout) -> dict[str, Any]:
    path = layout.work_stats("unhashed")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StatsError(f"{path} does not exist: run `ioarchive extract` (extraction) first") from None
    if doc.get("stats_format") != STATS_FORMAT or doc.get("release_id") != layout.release_id:
        raise StatsError(f"{path} is not release {layout.release_id}'s statistics (format {STATS_FORMAT}): "
                         "rerun `ioarchive extract`")
    return doc


def _ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most frequent first, ties by key (deterministic)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def published(aggregate: dict[str, Any], variant: str,
              hashtag_allowed: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """The ``stats.json`` document of ``variant`` from extraction's counts."""
    months = aggregate["accounts_created_per_month"]
    days = aggregate["posts_per_day"]
    posts = sum(days.values())
    retweets = int(aggregate["retweets"].get("true", 0))
    hashtags = [(k, n) for k, n in _ranked(aggregate["hashtags"]) if hashtag_allowed is None or hashtag_allowed(k)]
    return {
        "stats_format": STATS_FORMAT,
        "release_id": aggregate["release_id"],
        "variant": variant,
        "accounts": sum(months.values()),
        "posts": posts,
        "accounts_created_per_month": [{"month": k, "accounts": n} for k, n in sorted(months.items())],
        "posts_per_day": [{"day": k, "posts": n} for k, n in sorted(days.items())],
        "post_languages": [{"language": k, "posts": n, "share": _share(n, posts)}
                           for k, n in _ranked(aggregate["post_languages"])],
        "top_hashtags": [{"hashtag": k, "posts": n} for k, n in hashtags[:TOP_HASHTAGS]],
        "top_clients": [{"client": k, "posts": n} for k, n in _ranked(aggregate["clients"])[:TOP_CLIENTS]],
        "retweets": {"retweets": retweets, "original_posts": posts - retweets, "share": _share(retweets, posts)},
    }


def write_published(layout: StagingLayout, variant: str, doc: dict[str, Any]) -> list[str]:
    """Write ``stats.json`` and the charts of ``variant``; returns the chart names written."""
    from ioarchive.render.charts import render_charts

    charts = render_charts(doc)
    folder = layout.charts_dir(variant)
    if folder.is_dir():
        for old in folder.iterdir():
            if old.suffix == ".svg" and old.stem not in charts:
                old.unlink()
    for name, svg in charts.items():
        atomic_write_bytes(layout.chart(variant, name), svg)
    atomic_write_bytes(layout.release_stats(variant), _canonical(doc))
    return list(charts)


def publish(layout: StagingLayout, variant: str, hashtag_allowed: Callable[[str], bool] | None = None
            ) -> dict[str, Any]:
    """Publish ``variant``'s statistics and charts from ``work/unhashed/stats.json``."""
    doc = published(load_aggregate(layout), variant, hashtag_allowed)
    write_published(layout, variant, doc)
    return doc


def hashtag_candidates(aggregate: dict[str, Any]) -> list[str]:
    """Hashtags the hashed variant may show (before the identifier filter), most frequent first."""
    return [k for k, _ in _ranked(aggregate["hashtags"])]
