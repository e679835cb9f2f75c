"""Planning of a synthetic campaign: every account, post, media file and deletion, decided
up front from the clean random stream (so later writing order cannot change the content).

Special accounts sit at fixed plan indices so the edge cases always exist: 0-2 have exactly
4999, 5000 and 5001 followers, 3-4 are large, 5/6 and 7/8 are screen-name prefix pairs on
opposite sides of the threshold, 9 has no followers; indices >= 10 may never post.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ioarchive.devtools.generate import media as gm
from ioarchive.devtools.generate import text as gt


@dataclass
class Account:
    idx: int
    id_str: str
    screen_name: str
    followers: int
    created_ms: int
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Everything decided up front from the clean random stream."""

    accounts: list[Account]
    outside: list[Account]
    posting: list[int]
    weights: list[float]
    times: list[int]
    post_ids: list[str]
    authors: list[int]
    types: list[str]
    features: dict[int, str]
    deleted_posts: set[int]
    media_by_post: dict[int, list[gm.MediaFile]]
    profile_media: list[gm.MediaFile]
    deleted_media: list[gm.MediaFile]
    window: tuple[int, int]


def month_start(release_month: str) -> datetime:
    try:
        year, month = (int(x) for x in release_month.split("-"))
        return datetime(year, month, 1, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"release_month {release_month!r} is not YYYY-MM") from exc


POST_FEATURES: tuple[str, ...] = (
    "reply_campaign", "reply_outside", "retweet_campaign", "retweet_outside", "quote_campaign",
    "quote_outside", "mention_case", "prefix_trap", "prefix_trap_reverse", "bare_screen_name",
    "mention_outside", "coordinates", "coordinates", "poll", "poll",
    *(f"nasty:{name}" for name in gt.NASTY_TEXT),
)
"""Features forced into posts spread over the stream, so even a small campaign has them all."""


def _followers(rng: random.Random, idx: int) -> int:
    special = {0: 4999, 1: 5000, 2: 5001, 3: rng.randint(100_000, 900_000), 4: rng.randint(1_000_000, 3_000_000),
               5: rng.randint(50, 4000), 6: rng.randint(5000, 20_000), 7: rng.randint(5000, 20_000),
               8: rng.randint(50, 4000), 9: 0}
    if idx in special:
        return special[idx]
    r = rng.random()
    if r < 0.72:
        return int(min(4998, math.exp(rng.uniform(0, math.log(4998)))))
    if r < 0.95:
        return rng.randint(5002, 100_000)
    return rng.randint(100_001, 2_000_000)


def _unique_screen_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = gt.screen_name(rng)
        if name.lower() not in taken and len(name) >= 4:
            taken.add(name.lower())
            return name


def _prefix_pair(rng: random.Random, taken: set[str], suffix: str) -> tuple[str, str]:
    """Two screen names where the first is a prefix of the second (``@abc`` vs ``@abcd``)."""
    while True:
        base = "".join(rng.choice(gt.SYLLABLES).capitalize() for _ in range(2))[:10]
        long = (base + suffix)[:15]
        if base.lower() not in taken and long.lower() not in taken and long != base:
            taken.update({base.lower(), long.lower()})
            return base, long


def _plan_accounts(rng: random.Random, n: int, start_ms: int, users: gt.IdPool) -> tuple[list[Account], list[Account]]:
    taken: set[str] = set()
    created_lo = min(gt.ms_of(datetime(2012, 1, 1, tzinfo=UTC)), start_ms - 3 * 365 * 86_400_000)
    created_hi = max(created_lo + 86_400_000, start_ms - 60 * 86_400_000)
    pair_a = _prefix_pair(rng, taken, "Daily")
    pair_b = _prefix_pair(rng, taken, "2020")
    names = {5: pair_a[0], 6: pair_a[1], 7: pair_b[0], 8: pair_b[1]}
    accounts = []
    for idx in range(n):
        created = rng.randint(created_lo, created_hi)
        sn = names.get(idx) or _unique_screen_name(rng, taken)
        accounts.append(Account(idx, users.new(rng, created), sn, _followers(rng, idx), created))
    outside = []
    for idx in range(max(8, n // 4)):
        created = rng.randint(created_lo, created_hi)
        outside.append(Account(idx, users.new(rng, created), _unique_screen_name(rng, taken),
                               rng.randint(0, 500_000), created))
    return accounts, outside


def _plan_types(rng: random.Random, n: int) -> tuple[list[str], dict[int, str]]:
    types = []
    for i in range(n):
        r = rng.random()
        types.append("original" if i == 0 else "retweet" if r < 0.25 else "reply" if r < 0.40
                     else "quote" if r < 0.45 else "original")
    features: dict[int, str] = {}
    lo = max(1, n // 10)
    step = (n - lo) / len(POST_FEATURES)
    for k, feature in enumerate(POST_FEATURES):
        i = lo + int(k * step)
        features[i] = feature
        types[i] = feature.split("_")[0] if feature.split("_")[0] in ("reply", "retweet", "quote") else "original"
    return types, features


def _plan_media(rng: random.Random, plan_counts: dict[str, int], types: list[str],
                authors: list[int], accounts: list[Account], post_ids: list[str], times: list[int],
                keys: gt.IdPool) -> tuple[dict[int, list[gm.MediaFile]], list[gm.MediaFile]]:
    candidates = [i for i, t in enumerate(types) if t != "retweet"]
    rng.shuffle(candidates)
    by_post: dict[int, list[gm.MediaFile]] = {}
    cursor = 0

    def new_file(kind: str, user: Account, post: int | None, ms: int) -> gm.MediaFile:
        key = f"{gm.MEDIA_KEY_PREFIX[kind]}_{keys.new(rng, ms)}"
        return gm.MediaFile(key, kind, user.id_str, None if post is None else post_ids[post], gm.media_ext(rng, kind), 0)

    for kind in ("video", "animated_gif"):
        for _ in range(plan_counts[kind]):
            if cursor >= len(candidates):
                break
            i = candidates[cursor]
            cursor += 1
            by_post[i] = [new_file(kind, accounts[authors[i]], i, times[i])]
    photos_left = plan_counts["photo"]
    while photos_left > 0 and cursor < len(candidates):
        i = candidates[cursor]
        cursor += 1
        group = min(photos_left, rng.choice((1, 1, 1, 2, 3, 4)) if plan_counts["photo"] >= 20 else 1)
        by_post[i] = [new_file("photo", accounts[authors[i]], i, times[i]) for _ in range(group)]
        photos_left -= group
    profile: list[gm.MediaFile] = []
    with_image = set(rng.sample(range(len(accounts)), plan_counts["profile_image"]))
    with_banner = set(rng.sample(range(len(accounts)), plan_counts["profile_banner"]))
    for acc in accounts:
        if acc.idx in with_image:
            profile.append(new_file("profile_image", acc, None, acc.created_ms))
        if acc.idx in with_banner:
            profile.append(new_file("profile_banner", acc, None, acc.created_ms))
    return dict(sorted(by_post.items())), profile


def make_plan(rng: random.Random, *, accounts: int, posts: int, media_bytes: int, release_month: str,
              pools: dict[str, gt.IdPool]) -> Plan:
    """Decide every account, post, media file and deletion (no output yet)."""
    disclosure = month_start(release_month)
    end_ms = gt.ms_of(disclosure - timedelta(days=31))
    start_ms = end_ms - 700 * 86_400_000
    campaign, outside = _plan_accounts(rng, accounts, start_ms, pools["user"])
    never = max(2, round(0.1 * accounts))
    never_posted = set(rng.sample(range(10, accounts), never))
    posting = [a.idx for a in campaign if a.idx not in never_posted]
    weights = [rng.paretovariate(1.2) for _ in posting]
    times = sorted(rng.randint(start_ms, end_ms) for _ in range(posts))
    post_ids = [pools["post"].new(rng, ms) for ms in times]
    authors = rng.choices(posting, weights=weights, k=posts)
    types, features = _plan_types(rng, posts)
    counts, size_factor = gm.plan_counts(media_bytes, accounts, posts)
    by_post, profile = _plan_media(rng, counts, types, authors, campaign, post_ids, times, pools["media"])
    all_files = [f for files in by_post.values() for f in files] + profile
    gm.sample_sizes(rng, all_files, size_factor, media_bytes)

    # Deletions: never a forced-feature post (tests look for those in the release), never the
    # last video/gif posts; always one post that carries a photo (its media become unreleasable).
    photo_posts = [i for i, fs in by_post.items() if fs[0].kind == "photo" and i not in features]
    other_media_posts = {i for i, fs in by_post.items() if fs[0].kind != "photo"}
    deletable = [i for i in range(posts) if i not in features and i not in other_media_posts]
    deleted_posts = {rng.choice(photo_posts)} if photo_posts else set()
    want = max(2, round(0.02 * posts))
    pool = [i for i in deletable if i not in deleted_posts]
    deleted_posts.update(rng.sample(pool, min(len(pool), want - len(deleted_posts))))
    released_photos = [f for i, fs in by_post.items() if i not in deleted_posts for f in fs if f.kind == "photo"]
    want_media = max(2, round(0.03 * len(all_files)))
    deleted_media = rng.sample(released_photos, min(max(0, len(released_photos) - 2), want_media - 1))
    posting_users = {campaign[i].id_str for i in posting}
    profile_images = [f for f in profile if f.kind == "profile_image" and f.user_id in posting_users]
    if profile_images:
        deleted_media.append(rng.choice(profile_images))
    return Plan(campaign, outside, posting, weights, times, post_ids, authors, types, features, deleted_posts,
                by_post, profile, deleted_media, (start_ms, end_ms))
