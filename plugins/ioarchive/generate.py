"""Synthetic campaign generator: a raw campaign folder in the input contract (RELEASE_SPEC s.2).

Real exports are not available to tests or demos, so this writes one that contains what real
ones contain: accounts that never posted, follower counts on both sides of the pseudonymization
threshold (exactly 4999 and 5000 too), replies/retweets/quotes/mentions inside and outside the
campaign, mentions in varied case and screen names that are prefixes of others, deletions,
coordinates, polls, hostile text, every media kind at plausible sizes; and, on request, every
kind of bad record, listed in the ``injected_invalid.json`` sidecar so tests can reconcile.

Deterministic: the same seed and arguments give byte-identical files (``random.Random(seed)``,
no clock, no uuid). All planning happens first from the clean random stream; bad records come
from a separate stream and are extra lines, so clean records do not depend on the invalid rate.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ioarchive import generate_invalid as inv
from ioarchive import generate_media as gm
from ioarchive import generate_text as gt

log = logging.getLogger(__name__)

MIN_ACCOUNTS = 15
MIN_POSTS = 100
THRESHOLD_EDGE_FOLLOWERS = (4999, 5000, 5001)
SIDECAR = "injected_invalid.json"
OUTSIDE_DIR = "outside_media"
"""Folder beside ``media/`` holding the targets of injected escaping paths and symlinks."""

POST_FEATURES: tuple[str, ...] = (
    "reply_campaign", "reply_outside", "retweet_campaign", "retweet_outside", "quote_campaign",
    "quote_outside", "mention_case", "prefix_trap", "prefix_trap_reverse", "bare_screen_name",
    "mention_outside", "coordinates", "coordinates", "poll", "poll",
    *(f"nasty:{name}" for name in gt.NASTY_TEXT),
)
"""Features forced into posts spread over the stream, so even a small campaign has them all."""


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


def _month_start(release_month: str) -> datetime:
    try:
        year, month = (int(x) for x in release_month.split("-"))
        return datetime(year, month, 1, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"release_month {release_month!r} is not YYYY-MM") from exc


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
        base = "".join(rng.choice(gt._SYLLABLES).capitalize() for _ in range(2))[:10]
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
    disclosure = _month_start(release_month)
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


def _account_record(rng: random.Random, acc: Account, profile_keys: dict[tuple[str, str], str]) -> dict[str, Any]:
    classes = list(gt.NASTY_PROFILE)
    name = gt.display_name(rng)
    desc = gt.description(rng)
    loc = gt.location(rng)
    if acc.idx < len(classes):
        desc = f"{desc} {gt.NASTY_PROFILE[classes[acc.idx]]}".strip()
        name = f"{name} {gt.NASTY_PROFILE[classes[(acc.idx + 7) % len(classes)]]}"
        loc = f"{loc} {gt.NASTY_PROFILE[classes[(acc.idx + 3) % len(classes)]]}".strip()
    elif rng.random() < 0.2:
        desc = f"{desc} {gt.NASTY_PROFILE[rng.choice(classes)]}".strip()
    image = profile_keys.get((acc.id_str, "profile_image"))
    banner = profile_keys.get((acc.id_str, "profile_banner"))
    return {
        "id_str": acc.id_str,
        "name": name,
        "screen_name": acc.screen_name,
        "location": loc,
        "description": desc,
        "url": gt.tco(rng) if rng.random() < 0.4 else None,
        "followers_count": acc.followers,
        "friends_count": rng.randint(0, 5000),
        "created_at": gt.created_at_ms(acc.created_ms),
        "lang": rng.choice(("en", "fa", "ar", None)),
        "profile_image_media_key": image,
        "profile_banner_media_key": banner,
    }


def _case_variant(rng: random.Random, sn: str) -> str:
    r = rng.random()
    return sn if r < 0.6 else sn.lower() if r < 0.8 else sn.upper()


def _mention(acc: Account) -> dict[str, str]:
    return {"screen_name": acc.screen_name, "id_str": acc.id_str}


class _PostMaker:
    """Builds post objects in time order; keeps what later replies/retweets may point at."""

    def __init__(self, rng: random.Random, plan: Plan, pools: dict[str, gt.IdPool]) -> None:
        self.rng = rng
        self.plan = plan
        self.pools = pools
        self.targets: list[tuple[str, int]] = []  # (post id, author idx) of non-retweets so far
        posting = set(plan.posting)
        self.hashed = [a for a in plan.accounts if a.followers < 5000 and a.idx in posting]
        self.by_idx = plan.accounts

    def _outside_status(self, ms: int) -> str:
        return self.pools["outside_post"].new(self.rng, ms - self.rng.randint(60_000, 30 * 86_400_000))

    def make(self, i: int) -> dict[str, Any]:
        rng, plan = self.rng, self.plan
        kind = plan.types[i]
        feature = plan.features.get(i, "")
        author = self.by_idx[plan.authors[i]]
        ms = plan.times[i]
        text: list[str] = []
        mentions: list[dict[str, str]] = []
        hashtags: list[str] = []
        urls: list[dict[str, str]] = []
        post: dict[str, Any] = {
            "id_str": plan.post_ids[i],
            "user": {"id_str": author.id_str},
            "full_text": "",
            "created_at": gt.created_at_ms(ms),
            "lang": rng.choice(gt.LANGS),
            "source": gt.client_source(rng),
            "in_reply_to_status_id_str": None,
            "in_reply_to_user_id_str": None,
            "in_reply_to_screen_name": None,
            "quoted_status_id_str": None,
            "coordinates": None,
        }
        outside_target = feature.endswith("_outside") or (not feature and rng.random() < 0.4)
        if kind in ("reply", "retweet", "quote") and (outside_target or not self.targets):
            target_user = rng.choice(plan.outside)
            target_id = self._outside_status(ms)
        elif kind in ("reply", "retweet", "quote"):
            target_id, target_idx = rng.choice(self.targets)
            target_user = self.by_idx[target_idx]
        if kind == "retweet":
            text.append(f"RT @{target_user.screen_name}: {rng.choice(gt.PHRASES)}")
            mentions.append(_mention(target_user))
            post["retweeted_status"] = {"id_str": target_id, "user": {"id_str": target_user.id_str}}
        else:
            if kind == "reply":
                post["in_reply_to_status_id_str"] = target_id
                post["in_reply_to_user_id_str"] = target_user.id_str
                post["in_reply_to_screen_name"] = target_user.screen_name
                text.append(f"@{target_user.screen_name}")
                mentions.append(_mention(target_user))
            text.append(rng.choice(gt.PHRASES))
            self._features(feature, text, mentions)
            if rng.random() < 0.25:
                hashtags = rng.sample(gt.HASHTAGS, rng.randint(1, 3))
                text.extend(f"#{h}" for h in hashtags)
            if kind == "quote":
                post["quoted_status_id_str"] = target_id
                url = gt.tco(rng)
                urls.append({"url": url, "expanded_url": f"https://twitter.com/i/web/status/{target_id}"})
                text.append(url)
            if rng.random() < 0.2:
                url = gt.tco(rng)
                urls.append({"url": url, "expanded_url": f"https://example.com/story?id={rng.randint(1, 99999)}&src=a,b"})
                text.append(url)
            if feature == "coordinates" or rng.random() < 0.03:
                post["coordinates"] = {"type": "Point",
                                       "coordinates": [round(rng.uniform(-180, 180), 6), round(rng.uniform(-90, 90), 6)]}
            self.targets.append((plan.post_ids[i], author.idx))
        media = plan.media_by_post.get(i, [])
        if media:
            url = gt.tco(rng)
            text.append(url)
        post["full_text"] = " ".join(text)
        counts_scale = 1 + (author.followers // 1000)
        post["quote_count"] = 0 if kind == "retweet" else rng.randint(0, 3 * counts_scale)
        post["reply_count"] = 0 if kind == "retweet" else rng.randint(0, 5 * counts_scale)
        post["favorite_count"] = 0 if kind == "retweet" else rng.randint(0, 40 * counts_scale)
        post["retweet_count"] = rng.randint(0, 20 * counts_scale)
        post["entities"] = {
            "hashtags": [{"text": h} for h in hashtags],
            "urls": urls,
            "user_mentions": mentions,
            "media": [{"media_key": f.media_key, "type": f.kind} for f in media],
        }
        if kind != "retweet" and (feature == "poll" or rng.random() < 0.01):
            post["card"] = {"name": "poll4choice_text_only",
                            "poll_choices": ["Yes, definitely", 'No "never"', "ایران", "🔥 maybe"][: rng.randint(2, 4)]}
        return post

    def _features(self, feature: str, text: list[str], mentions: list[dict[str, str]]) -> None:
        rng, acc = self.rng, self.plan.accounts
        if feature == "mention_case":
            target = rng.choice(self.hashed)
            sn = target.screen_name
            text.append(f"@{sn} @{sn.lower()} @{sn.upper()} please share")
            mentions.extend([_mention(target)] * 3)
        elif feature in ("prefix_trap", "prefix_trap_reverse"):
            short, long = (acc[5], acc[6]) if feature == "prefix_trap" else (acc[7], acc[8])
            text.append(f"@{short.screen_name} and @{long.screen_name}, also @{long.screen_name.lower()}")
            mentions.extend([_mention(short), _mention(long), _mention(long)])
        elif feature == "bare_screen_name":
            text.append(f"{acc[5].screen_name} and {rng.choice(self.hashed).screen_name} said so (no at sign)")
        elif feature == "mention_outside":
            target = rng.choice(self.plan.outside)
            text.append(f"cc @{target.screen_name}")
            mentions.append(_mention(target))
        elif feature.startswith("nasty:"):
            text.append(gt.NASTY_TEXT[feature.split(":", 1)[1]])
        elif not feature:
            if rng.random() < 0.15:
                for _ in range(rng.randint(1, 2)):
                    target = rng.choice(self.hashed if rng.random() < 0.7 else self.plan.outside)
                    text.append(f"@{_case_variant(rng, target.screen_name)}")
                    mentions.append(_mention(target))
            if rng.random() < 0.08:
                text.append(gt.NASTY_TEXT[rng.choice(list(gt.NASTY_TEXT))])


def _fake_account(rng: random.Random, user_id: str | None, window: tuple[int, int]) -> dict[str, Any]:
    created = rng.randint(window[0] - 400 * 86_400_000, window[0] - 86_400_000)
    return {
        "id_str": user_id,
        "name": gt.display_name(rng),
        "screen_name": f"Injected{rng.randint(100000, 999999)}",
        "location": gt.location(rng),
        "description": gt.description(rng),
        "url": None,
        "followers_count": rng.randint(0, 4000),
        "friends_count": rng.randint(0, 4000),
        "created_at": gt.created_at_ms(created),
        "lang": "en",
        "profile_image_media_key": None,
        "profile_banner_media_key": None,
    }


def _fake_post(rng: random.Random, post_id: str | None, user_id: str, window: tuple[int, int]) -> dict[str, Any]:
    ms = rng.randint(*window)
    return {
        "id_str": post_id,
        "user": {"id_str": user_id},
        "full_text": f"{rng.choice(gt.PHRASES)} (injected)",
        "created_at": gt.created_at_ms(ms),
        "lang": "en",
        "source": gt.client_source(rng),
        "in_reply_to_status_id_str": None,
        "in_reply_to_user_id_str": None,
        "in_reply_to_screen_name": None,
        "quoted_status_id_str": None,
        "coordinates": None,
        "quote_count": rng.randint(0, 5),
        "reply_count": rng.randint(0, 5),
        "favorite_count": rng.randint(0, 50),
        "retweet_count": rng.randint(0, 20),
        "entities": {"hashtags": [], "urls": [], "user_mentions": [], "media": []},
    }


def _duplicate(rng: random.Random, recent: Any, field_edit: tuple[str, Any]) -> tuple[str, str]:
    record_id, record, line = rng.choice(list(recent))
    if rng.random() < 0.5:
        return line, record_id  # byte-identical re-export
    changed = dict(record)
    changed[field_edit[0]] = field_edit[1]
    return gt.dumps(changed), record_id


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: choose a new folder or pass overwrite=True (--force)")
        shutil.rmtree(out)
    (out / "media").mkdir(parents=True, exist_ok=True)


def generate_campaign(
    out: str | Path,
    *,
    seed: int,
    accounts: int,
    posts: int,
    media_bytes: int,
    invalid_rate: float = 0.0,
    release_month: str = "2021-02",
    compress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write one raw campaign folder at ``out``; return a small summary (for logs, not for tests).

    ``compress=True`` writes ``accounts.jsonl.gz`` and ``posts.jsonl.gz`` instead of plain
    ``.jsonl`` (the contract accepts both). ``invalid_rate`` (0..1) adds about that fraction of
    bad records per file, at least one of each kind, listed in ``injected_invalid.json``.
    """
    if accounts < MIN_ACCOUNTS or posts < MIN_POSTS:
        raise ValueError(f"need at least {MIN_ACCOUNTS} accounts and {MIN_POSTS} posts to hold every edge case "
                         f"(got {accounts} accounts, {posts} posts)")
    if not 0.0 <= invalid_rate < 1.0:
        raise ValueError(f"invalid_rate must be in [0, 1), got {invalid_rate}")
    out = Path(out)
    _prepare_out(out, overwrite)
    rng = random.Random(seed)
    bad_rng = random.Random(f"{seed}-invalid")
    pools = {
        "user": gt.IdPool(gt.WORKERS_USER),
        "post": gt.IdPool(gt.WORKERS_POST),
        "outside_post": gt.IdPool(gt.WORKERS_OUTSIDE_POST),
        "injected": gt.IdPool(gt.WORKERS_INJECTED),
        "injected_user": gt.IdPool(gt.WORKERS_INJECTED_USER),
        "media": gt.IdPool(gt.WORKERS_POST),
    }
    plan = make_plan(rng, accounts=accounts, posts=posts, media_bytes=media_bytes,
                     release_month=release_month, pools=pools)
    sidecar: list[dict[str, Any]] = []
    extra_account_ids: list[str] = []
    window = plan.window
    posting_ids = [plan.accounts[i].id_str for i in plan.posting]

    # accounts.jsonl
    def bad_account(kind: str, recent: Any) -> tuple[str, str | None]:
        if kind == "invalid_json":
            return inv.truncated_json(bad_rng, _fake_account(bad_rng, "0", window)), None
        if kind == "missing_id":
            rec = _fake_account(bad_rng, None, window)
            if bad_rng.random() < 0.5:
                del rec["id_str"]
            return gt.dumps(rec), None
        if kind == "duplicate_id":
            return _duplicate(bad_rng, recent, ("description", "re-exported copy"))
        new_id = pools["injected_user"].new(bad_rng, window[0])
        extra_account_ids.append(new_id)
        rec = _fake_account(bad_rng, new_id, window)
        if kind == "unparseable_timestamp":
            rec["created_at"] = bad_rng.choice(inv.BAD_TIMESTAMPS)
        else:
            rec[bad_rng.choice(("followers_count", "friends_count"))] = -bad_rng.randint(1, 5000)
        return gt.dumps(rec), new_id

    ordered_accounts = sorted(plan.accounts, key=lambda a: int(a.id_str))
    writer = inv.InjectingWriter(out, "accounts.jsonl", compress=compress,
                                 plan=inv.schedule(bad_rng, inv.ACCOUNT_KINDS, len(ordered_accounts), invalid_rate),
                                 factory=bad_account, sidecar=sidecar)
    profile_keys = {(f.user_id, f.kind): f.media_key for f in plan.profile_media}
    for acc in plan.accounts:  # records drawn in plan order (stable), written in id order
        acc.record = _account_record(rng, acc, profile_keys)
    for acc in ordered_accounts:
        writer.write(acc.id_str, acc.record)
    writer.close()
    accounts_file = writer.file_name

    # posts.jsonl
    def bad_post(kind: str, recent: Any) -> tuple[str, str | None]:
        author = bad_rng.choice(posting_ids)
        if kind == "invalid_json":
            return inv.truncated_json(bad_rng, _fake_post(bad_rng, "0", author, window)), None
        if kind == "missing_id":
            rec = _fake_post(bad_rng, None, author, window)
            if bad_rng.random() < 0.5:
                del rec["id_str"]
            return gt.dumps(rec), None
        if kind == "duplicate_id":
            return _duplicate(bad_rng, recent, ("full_text", "duplicate export of this post"))
        new_id = pools["injected"].new(bad_rng, bad_rng.randint(*window))
        if kind == "not_campaign_account":
            return gt.dumps(_fake_post(bad_rng, new_id, bad_rng.choice(plan.outside).id_str, window)), new_id
        rec = _fake_post(bad_rng, new_id, author, window)
        if kind == "unparseable_timestamp":
            rec["created_at"] = bad_rng.choice(inv.BAD_TIMESTAMPS)
        else:
            rec[bad_rng.choice(("quote_count", "reply_count", "favorite_count", "retweet_count"))] = -bad_rng.randint(1, 99)
        return gt.dumps(rec), new_id

    writer = inv.InjectingWriter(out, "posts.jsonl", compress=compress,
                                 plan=inv.schedule(bad_rng, inv.POST_KINDS, posts, invalid_rate),
                                 factory=bad_post, sidecar=sidecar)
    maker = _PostMaker(rng, plan, pools)
    for i in range(posts):
        writer.write(plan.post_ids[i], maker.make(i))
    writer.close()
    posts_file = writer.file_name

    # media files + media.jsonl
    block = gm.random_block(seed)
    media_root = out / "media"
    clean_media = [f for fs in plan.media_by_post.values() for f in fs] + plan.profile_media
    total_bytes = 0
    for n, f in enumerate(clean_media):
        f.size, f.sha256 = gm.write_media_file(media_root / f.path, f.ext, f.media_key, f.size, block, n * 104_729)
        total_bytes += f.size
    released_posts = [i for i in range(posts) if plan.types[i] != "retweet" and i not in plan.deleted_posts]

    def bad_media(kind: str, recent: Any) -> tuple[str, str | None]:
        i = bad_rng.choice(released_posts)
        user_id = plan.accounts[plan.authors[i]].id_str
        key = f"3_{pools['injected'].new(bad_rng, plan.times[i])}"
        size = bad_rng.randint(2048, 64 * 1024)
        rec = {"media_key": key, "post_id": plan.post_ids[i], "user_id": user_id, "kind": "photo",
               "path": f"{user_id}/{key}.jpg", "bytes": size, "sha256": ""}
        offset = bad_rng.randrange(gm.BLOCK_BYTES)
        if kind == "invalid_json":
            return inv.truncated_json(bad_rng, rec), None
        if kind in ("path_escape", "symlink"):
            (out / OUTSIDE_DIR).mkdir(exist_ok=True)
            rec["bytes"], rec["sha256"] = gm.write_media_file(out / OUTSIDE_DIR / f"{key}.jpg", "jpg", key, size, block, offset)
            if kind == "symlink":
                link = media_root / rec["path"]
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(f"../../{OUTSIDE_DIR}/{key}.jpg", link)
            else:
                rec["path"] = bad_rng.choice((f"../{OUTSIDE_DIR}/{key}.jpg", f"{user_id}/../../{OUTSIDE_DIR}/{key}.jpg",
                                              "/etc/passwd"))
            return gt.dumps(rec), key
        if kind == "missing_file":
            rec["sha256"] = gm.hashlib.sha256(key.encode()).hexdigest()
            return gt.dumps(rec), key
        rec["bytes"], rec["sha256"] = gm.write_media_file(media_root / rec["path"], "jpg", key, size, block, offset)
        if kind == "size_mismatch":
            rec["bytes"] += bad_rng.choice((-1, 1)) * bad_rng.randint(1, 1000)
        elif kind == "sha256_mismatch":
            rec["sha256"] = gm.hashlib.sha256(b"tampered " + key.encode()).hexdigest()
        elif kind == "missing_id":
            if bad_rng.random() < 0.5:
                del rec["media_key"]
            else:
                rec["media_key"] = None
            return gt.dumps(rec), None
        return gt.dumps(rec), key

    writer = inv.InjectingWriter(out, "media.jsonl", compress=False,
                                 plan=inv.schedule(bad_rng, inv.MEDIA_KINDS, len(clean_media), invalid_rate),
                                 factory=bad_media, sidecar=sidecar)
    for f in clean_media:
        writer.write(f.media_key, f.record())
    writer.close()

    # deletions.jsonl (clean; deleted_at after creation and before disclosure)
    deletions = []
    for i in sorted(plan.deleted_posts):
        at = rng.randint(plan.times[i] + 3_600_000, window[1] + 20 * 86_400_000)
        deletions.append({"kind": "post", "id": plan.post_ids[i], "deleted_at": gt.created_at_ms(at)})
    for f in plan.deleted_media:
        at = window[1] + rng.randint(1, 20) * 86_400_000
        deletions.append({"kind": "media", "id": f.media_key, "deleted_at": gt.created_at_ms(at)})
    (out / "deletions.jsonl").write_text("".join(gt.dumps(d) + "\n" for d in deletions), encoding="utf-8")

    # campaign.json last: injected accounts with a single defect are campaign accounts too.
    disclosure = _month_start(release_month)
    campaign = {
        "campaign_id": "synthetic",
        "title": f"Synthetic ({disclosure.strftime('%B')} {disclosure.year})",
        "country": "Synthetic",
        "attribution": f'A synthetic test campaign (seed {seed}), attributed to "Example Agency", for tests.',
        "disclosure_month": release_month,
        "investigation_ids": [f"INV-{seed}-1", f"INV-{seed}-2"],
        "account_ids": [a.id_str for a in plan.accounts] + extra_account_ids,
    }
    (out / "campaign.json").write_text(json.dumps(campaign, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if invalid_rate > 0:
        (out / SIDECAR).write_text(
            json.dumps(inv.sidecar_document(seed, invalid_rate, sidecar), indent=1) + "\n", encoding="utf-8")
    summary = {
        "out": str(out),
        "accounts": accounts,
        "posts": posts,
        "accounts_file": accounts_file,
        "posts_file": posts_file,
        "media_files": len(clean_media),
        "media_bytes": total_bytes,
        "deleted_posts": len(plan.deleted_posts),
        "deleted_media": len(plan.deleted_media),
        "injected": len(sidecar),
    }
    log.info("generated campaign %s: %s", out, summary)
    return summary
