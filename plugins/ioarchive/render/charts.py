"""The release charts: hand-written SVG from ``stats.json``, byte-for-byte deterministic.

Six charts per variant, in ``charts/`` of the release folder (``ioarchive.extract.stats`` writes
them with ``stats.json``): accounts created per month, posts per day, post languages, top
hashtags, top clients, share of retweets. Why hand-written and not matplotlib: the bytes depend
only on the statistics and this module (no font metrics, no library version, no hash salt or
date in the file), nothing new to install, and the files stay small and offline (no font or
script is fetched). Every bar is a ``<rect>`` carrying its data: ``data-key`` (the month, day,
language, hashtag or client, exactly as in ``stats.json``) and ``data-value`` (the count), plus a
``<title>`` tooltip; a reader can take the numbers back from the SVG itself. Time series are
drawn with zero bars for the months or days without any record between the first and the last.

Text from accounts (hashtags, client names) is untrusted: it is XML-escaped, characters XML
cannot hold become U+FFFD, and in ``data-key`` tab, CR and LF are written as character
references so an XML parser returns the exact string.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

CHARTS: dict[str, str] = {
    "accounts_created_per_month": "Accounts created per month",
    "posts_per_day": "Posts per day",
    "post_languages": "Post languages",
    "top_hashtags": "Top hashtags",
    "top_clients": "Top clients",
    "retweet_share": "Share of retweets",
}
"""Chart file stem -> title, in README order."""

WIDTH = 760
TS_HEIGHT = 320
ROW = 22
LABEL_CHARS = 34
MAX_LANGUAGES = 15
OTHER_KEY = "(other)"
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
BAR = "#4c72b0"
ACCENT = "#dd8452"
GRID = "#d0d0d0"
INK = "#222222"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _text(text: str) -> str:
    return _clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return (_text(text).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
            .replace("\r", "&#13;"))


def _num(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _short(label: str) -> str:
    label = re.sub(r"\s+", " ", label)
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "\u2026"


def nice_ceiling(value: float) -> float:
    """Smallest 1, 2 or 5 x 10^k at or above ``value`` (axis maxima); at least 1."""
    if value <= 1:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if m * 10**exp >= value:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


def _thousands(n: float) -> str:
    return f"{int(n):,}" if float(n).is_integer() else _num(n)


def _svg(name: str, title: str, subtitle: str, height: float, body: list[str]) -> bytes:
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{_num(height)}" '
        f'viewBox="0 0 {WIDTH} {_num(height)}" font-family="{FONT}" font-size="12" fill="{INK}" '
        f'role="img" aria-labelledby="title desc" data-chart="{name}">',
        f'<title id="title">{_text(title)}</title>',
        f'<desc id="desc">{_text(subtitle)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{_num(height)}" fill="#ffffff"/>',
        f'<text x="16" y="22" font-size="15" font-weight="bold">{_text(title)}</text>',
        f'<text x="16" y="38" font-size="11" fill="#555555">{_text(subtitle)}</text>',
    ]
    return ("\n".join(head + body + ["</svg>"]) + "\n").encode("utf-8")


def _bar(x: float, y: float, w: float, h: float, key: str, value: int, tip: str, fill: str = BAR) -> str:
    return (f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
            f'fill="{fill}" data-key="{_attr(key)}" data-value="{value}"><title>{_text(tip)}</title></rect>')


# --- time series ----------------------------------------------------------------------------

def _months(first: str, last: str) -> list[str]:
    y, m = int(first[:4]), int(first[5:7])
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _days(first: str, last: str) -> list[str]:
    day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    out = []
    while day <= end:
        out.append(day.isoformat())
        day += dt.timedelta(days=1)
    return out


def time_series(name: str, title: str, subtitle: str, points: dict[str, int], unit: str) -> bytes:
    """Column chart over every month (``YYYY-MM``) or day (``YYYY-MM-DD``) from first to last."""
    left, right, top, bottom = 64.0, 16.0, 52.0, 40.0
    pw, ph = WIDTH - left - right, TS_HEIGHT - top - bottom
    body: list[str] = []
    if not points:
        body.append(f'<text x="{_num(WIDTH / 2)}" y="{_num(top + ph / 2)}" text-anchor="middle">no {unit}</text>')
        return _svg(name, title, subtitle, TS_HEIGHT, body)
    keys = sorted(points)
    axis = _months(keys[0], keys[-1]) if len(keys[0]) == 7 else _days(keys[0], keys[-1])
    ymax = nice_ceiling(max(points.values()))
    for frac in (0.0, 0.5, 1.0):
        y = top + ph - frac * ph
        body.append(f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + pw)}" y2="{_num(y)}" stroke="{GRID}"/>')
        body.append(f'<text x="{_num(left - 6)}" y="{_num(y + 4)}" text-anchor="end">{_thousands(ymax * frac)}</text>')
    step = pw / len(axis)
    width = step * 0.85 if step >= 3 else step
    body.append(f'<g class="bars" data-unit="{unit}">')
    for i, key in enumerate(axis):
        value = int(points.get(key, 0))
        h = value / ymax * ph
        body.append(_bar(left + i * step, top + ph - h, width, h, key, value, f"{key}: {value:,} {unit}"))
    body.append("</g>")
    ticks = sorted({round(i * (len(axis) - 1) / 5) for i in range(6)}) if len(axis) > 1 else [0]
    for i in ticks:
        x = left + i * step + width / 2
        body.append(f'<text x="{_num(x)}" y="{_num(top + ph + 16)}" text-anchor="middle" font-size="10">'
                    f'{_text(axis[i])}</text>')
    return _svg(name, title, subtitle, TS_HEIGHT, body)


# --- ranked bars ----------------------------------------------------------------------------

def ranked_bars(name: str, title: str, subtitle: str, rows: list[tuple[str, str, int, str]], unit: str) -> bytes:
    """Horizontal bars, one per ``(key, label, value, note)``, in the given order."""
    top, label_w, right = 52.0, 230.0, 130.0
    height = top + ROW * max(1, len(rows)) + 16
    body: list[str] = []
    if not rows:
        body.append(f'<text x="{_num(WIDTH / 2)}" y="{_num(top + 14)}" text-anchor="middle">no {unit}</text>')
        return _svg(name, title, subtitle, height, body)
    vmax = max(v for _, _, v, _ in rows) or 1
    pw = WIDTH - label_w - right
    body.append(f'<g class="bars" data-unit="{unit}">')
    for i, (key, label, value, note) in enumerate(rows):
        y = top + i * ROW
        w = value / vmax * pw
        tip = f"{label}: {value:,} {unit}" + (f" ({note})" if note else "")
        fill = ACCENT if key == OTHER_KEY else BAR
        body.append(_bar(label_w, y + 3, w, ROW - 6, key, value, tip, fill))
        body.append(f'<text x="{_num(label_w - 8)}" y="{_num(y + 15)}" text-anchor="end" direction="ltr" '
                    f'unicode-bidi="embed">{_text(_short(label))}</text>')
        text = f"{value:,}" + (f" ({note})" if note else "")
        body.append(f'<text x="{_num(label_w + w + 6)}" y="{_num(y + 15)}">{_text(text)}</text>')
    body.append("</g>")
    return _svg(name, title, subtitle, height, body)


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def render_charts(stats: dict[str, Any]) -> dict[str, bytes]:
    """Every chart of one variant's ``stats.json`` document: ``{stem: SVG bytes}``."""
    where = f"Release {stats['release_id']}, {stats['variant']} variant"
    posts = int(stats["posts"])
    out: dict[str, bytes] = {}
    out["accounts_created_per_month"] = time_series(
        "accounts_created_per_month", CHARTS["accounts_created_per_month"],
        f"{where}: {stats['accounts']:,} accounts by creation month (UTC)",
        {p["month"]: p["accounts"] for p in stats["accounts_created_per_month"]}, "accounts")
    out["posts_per_day"] = time_series(
        "posts_per_day", CHARTS["posts_per_day"], f"{where}: {posts:,} posts by day (UTC)",
        {p["day"]: p["posts"] for p in stats["posts_per_day"]}, "posts")
    langs = stats["post_languages"]
    rows = [(x["language"], x["language"] or "(none)", x["posts"], _percent(x["share"])) for x in langs[:MAX_LANGUAGES]]
    rest = langs[MAX_LANGUAGES:]
    if rest:
        n = sum(x["posts"] for x in rest)
        rows.append((OTHER_KEY, f"{len(rest)} other languages", n, _percent(n / posts if posts else 0.0)))
    out["post_languages"] = ranked_bars("post_languages", CHARTS["post_languages"],
                                        f"{where}: posts by detected language", rows, "posts")
    hashed_note = " (hashtags naming a pseudonymized account are left out)" if stats["variant"] == "hashed" else ""
    out["top_hashtags"] = ranked_bars(
        "top_hashtags", CHARTS["top_hashtags"], f"{where}: posts per hashtag{hashed_note}",
        [(x["hashtag"], "#" + x["hashtag"], x["posts"], "") for x in stats["top_hashtags"]], "posts")
    out["top_clients"] = ranked_bars(
        "top_clients", CHARTS["top_clients"], f"{where}: posts per client app",
        [(x["client"], x["client"] or "(none)", x["posts"], "") for x in stats["top_clients"]], "posts")
    rt = stats["retweets"]
    out["retweet_share"] = ranked_bars(
        "retweet_share", CHARTS["retweet_share"], f"{where}: {_percent(rt['share'])} of {posts:,} posts are retweets",
        [("retweets", "Retweets", rt["retweets"], _percent(rt["share"])),
         ("original_posts", "Original posts", rt["original_posts"], _percent(1 - rt["share"]) if posts else "0.0%")],
        "posts")
    return out
