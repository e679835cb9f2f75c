"""Record builders of a synthetic campaign: account and post objects in the v1.1 shapes, and
the single-defect fakes that bad-record injection starts from."""

from __future__ import annotations

import random
from typing import Any

from ioarchive.devtools.generate import text as gt
from ioarchive.devtools.generate.plan import Account, Plan
from ioarchive.schema import DEFAULT_THRESHOLD


def account_record(rng: random.Random, acc: Account, profile_keys: dict[tuple[str, str], str]) -> dict[str, Any]:
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


class PostMaker:
    """Builds post objects in time order; keeps what later replies/retweets may point at."""

    def __init__(self, rng: random.Random, plan: Plan, pools: dict[str, gt.IdPool]) -> None:
        self.rng = rng
        self.plan = plan
        self.pools = pools
        self.targets: list[tuple[str, int]] = []  # (post id, author idx) of non-retweets so far
        posting = set(plan.posting)
        self.hashed = [a for a in plan.accounts if a.followers < DEFAULT_THRESHOLD and a.idx in posting]
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


def fake_account(rng: random.Random, user_id: str | None, window: tuple[int, int]) -> dict[str, Any]:
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


def fake_post(rng: random.Random, post_id: str | None, user_id: str, window: tuple[int, int]) -> dict[str, Any]:
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
