"""Text material for the synthetic campaign generator: names, nasty strings, timestamps, ids.

Real exports are hostile input: post text and profile fields carry newlines, quotes, commas,
emoji, right-to-left scripts, HTML and Markdown that downstream CSV writers, HTML templates and
mention replacement must survive. Every class lives here, named, so tests can look for it.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

TWITTER_EPOCH_MS = 1288834974657
"""Snowflake epoch (2010-11-04): ids made from a timestamp look like the platform's."""

# Worker-id ranges of the snowflake (10 bits): each id class draws from its own range, so ids
# of different classes (and injected bad records) can never collide, whatever the seed.
WORKERS_POST = (0, 255)
WORKERS_OUTSIDE_POST = (256, 511)
WORKERS_INJECTED = (512, 767)
WORKERS_USER = (768, 895)
WORKERS_INJECTED_USER = (896, 1023)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

NASTY_TEXT: dict[str, str] = {
    "newline": "first line\nsecond line",
    "crlf": "windows line\r\nnext line",
    "double_quotes": 'he said "hello" and then ""bye""',
    "commas": "one, two,, three,",
    "emoji": "🔥🇮🇷 👨\u200d👩\u200d👧 😀",
    "arabic": "مرحبا بالعالم، هذا اختبار",
    "persian": "سلام دنیا، ایران آزاد",
    "hebrew": "שלום עולם, בדיקה",
    "script_tag": "<script>alert(1)</script>",
    "bold_tag": "<b>bold</b> &amp; <i>",
    "line_separator": "paragraph\u2028separator\u2029end",
    "tab_backslash": "tab\there C:\\path\\ \\\"",
    "csv_formula": "=HYPERLINK(\"http://evil.example\",\"x\")",
    "rtl_override": "abc\u202edcba",
}
"""Classes of hostile text; every class appears in post text of a default-size campaign."""

NASTY_PROFILE: dict[str, str] = {
    **NASTY_TEXT,
    "markdown_link": "[x](http://evil.example)",
}
"""Classes of hostile text in account names, descriptions and locations."""

CLIENTS: tuple[tuple[str, str], ...] = (
    ("http://twitter.com/download/android", "Twitter for Android"),
    ("http://twitter.com/download/iphone", "Twitter for iPhone"),
    ("https://mobile.twitter.com", "Twitter Web App"),
    ("https://about.twitter.com/products/tweetdeck", "TweetDeck"),
    ("https://www.hootsuite.com", "Hootsuite Inc."),
    ("https://ifttt.com", "IFTTT"),
    ("https://example.org/newsbot", "بوت الأخبار"),
)

PHRASES: tuple[str, ...] = (
    "Breaking news from the capital",
    "The people will not be silenced",
    "Read the full report here",
    "What the mainstream media won't tell you",
    "Our nation stands strong",
    "Another failure of the west",
    "Watch this video before it is deleted",
    "Truth always wins",
    "حقیقت پنهان نمی ماند",
    "اخبار امروز",
    "الحقيقة ستظهر",
    "La verdad siempre sale a la luz",
    "Правда всегда побеждает",
    "Les médias mentent",
    "Gerçekler gizlenemez",
)

HASHTAGS: tuple[str, ...] = (
    "Iran", "news", "truth", "StopTheWar", "ایران", "أخبار", "breaking", "FakeNews", "Election2020",
)

LANGS: tuple[str, ...] = ("en", "en", "en", "fa", "ar", "es", "ru", "fr", "tr", "und", "he")

SYLLABLES = (
    "ali", "sara", "reza", "news", "daily", "truth", "voice", "nima", "maryam", "free", "iran",
    "world", "info", "media", "press", "zahra", "amir", "omid", "leila", "post", "hub", "now",
)

_FIRST = ("Ali", "Sara", "Reza", "Maryam", "Nima", "Zahra", "Amir", "Leila", "John", "Maria", "Omid")
_LAST = ("Ahmadi", "Karimi", "Hosseini", "Smith", "Rezaei", "García", "Moradi", "Jafari")
_PLACES = ("Tehran", "Paris, France", "London", "New York, NY", "Beirut", "تهران", "", "Earth 🌍")


def created_at_ms(ms: int) -> str:
    """The v1.1 ``created_at`` form of an epoch-milliseconds instant, e.g.
    ``Wed Oct 10 20:19:24 +0000 2018`` (locale-free; fast enough for millions of posts)."""
    t = time.gmtime(ms // 1000)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000 {t.tm_year}"
    )


def ms_of(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def snowflake(rng: random.Random, ms: int, workers: tuple[int, int]) -> int:
    """A 64-bit platform-style id for an instant, worker bits drawn from ``workers``.

    Ids of instants after 2010-11-05 have 15 to 19 digits and stay below 2**63 until 2080.
    """
    delta = max(ms - TWITTER_EPOCH_MS, 86_400_000)
    return (delta << 22) | (rng.randint(*workers) << 12) | rng.getrandbits(12)


class IdPool:
    """Snowflake ids that are unique within the pool (retries on the rare collision)."""

    def __init__(self, workers: tuple[int, int]) -> None:
        self.workers = workers
        self.used: set[int] = set()

    def new(self, rng: random.Random, ms: int) -> str:
        while True:
            value = snowflake(rng, ms, self.workers)
            if value not in self.used:
                self.used.add(value)
                return str(value)


def screen_name(rng: random.Random) -> str:
    """A plausible mixed-case screen name (<= 15 chars of ``[A-Za-z0-9_]``)."""
    parts = [rng.choice(SYLLABLES).capitalize() for _ in range(rng.randint(1, 2))]
    name = "".join(parts)
    if rng.random() < 0.3:
        name += "_"
    name += str(rng.randint(1, 9999)) if rng.random() < 0.7 else ""
    return name[:15]


def display_name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def location(rng: random.Random) -> str:
    return rng.choice(_PLACES)


def description(rng: random.Random) -> str:
    return " ".join(rng.choice(PHRASES) for _ in range(rng.randint(0, 2)))


def client_source(rng: random.Random) -> str:
    """The ``source`` field: an HTML anchor whose text is the client name."""
    href, name = rng.choice(CLIENTS)
    return f'<a href="{href}" rel="nofollow">{name}</a>'


_BASE62 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def tco(rng: random.Random) -> str:
    """A shortened link like the platform's ``https://t.co/AbC123xYz0`` (one random draw)."""
    value = rng.getrandbits(60)
    chars = []
    for _ in range(10):
        value, digit = divmod(value, 62)
        chars.append(_BASE62[digit])
    return "https://t.co/" + "".join(chars)


_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def dumps(obj: object) -> str:
    """One JSON Lines line: UTF-8 text kept raw, but characters that some readers treat as line
    breaks (U+2028, U+2029, U+0085; ``str.splitlines`` does) escaped so a record is one line for
    every reader. The decoded value is unchanged."""
    line = _ENCODER.encode(obj)
    for char, escaped in _LINE_BREAKS.items():
        if char in line:  # str.translate is slow on non-ASCII text; most lines have none
            line = line.replace(char, escaped)
    return line


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
