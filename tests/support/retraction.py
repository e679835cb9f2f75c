"""Pick accounts to retract from a generated campaign and the needles of their leak scan."""

from __future__ import annotations

import json
from pathlib import Path

from ioarchive.pseudonymize.pseudonym import pseudonym
from ioarchive.schema import DEFAULT_THRESHOLD

from support.leak import Needles


def _lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def raw(campaign_dir: Path) -> dict:
    return {t: _lines(campaign_dir / f"{t}.jsonl") for t in ("accounts", "posts", "media")}


def pick_accounts(campaign_dir: Path, fewest_media: bool = False) -> tuple[str, str]:
    """(small, large): campaign accounts below and above the threshold that posted and that other
    accounts retweet or reply to (so references to them must be blanked): the most referenced
    and active ones, or (``fewest_media``) those with the fewest media files, so that most media
    archives hold none of theirs and must keep their bytes."""
    data = raw(campaign_dir)
    campaign = set(json.loads((campaign_dir / "campaign.json").read_text())["account_ids"])
    followers = {a["id_str"]: a.get("followers_count") or 0 for a in data["accounts"] if a.get("id_str") in campaign}
    posts: dict[str, int] = {}
    referenced: dict[str, int] = {}
    for p in data["posts"]:
        uid = (p.get("user") or {}).get("id_str")
        posts[uid] = posts.get(uid, 0) + 1
        for target in ((p.get("retweeted_status") or {}).get("user", {}).get("id_str"), p.get("in_reply_to_user_id_str")):
            if target and target != uid:
                referenced[target] = referenced.get(target, 0) + 1
    media: dict[str, int] = {}
    for m in data["media"]:
        media[m.get("user_id")] = media.get(m.get("user_id"), 0) + 1

    def best(ok) -> str:
        if not fewest_media:
            return max((u for u in followers if ok(followers[u]) and posts.get(u)),
                       key=lambda u: (referenced.get(u, 0), posts.get(u, 0), u))
        fit = [u for u in followers if ok(followers[u]) and posts.get(u) and media.get(u)]
        referred = [u for u in fit if referenced.get(u)] or fit
        return min(referred, key=lambda u: (media[u], posts[u], u))
    return best(lambda f: f < DEFAULT_THRESHOLD), best(lambda f: f >= DEFAULT_THRESHOLD)


def needles(campaign_dir: Path, account_ids: list[str], key: bytes) -> Needles:
    """What must not appear in any published byte once ``account_ids`` are retracted."""
    data = raw(campaign_dir)
    gone = set(account_ids)
    n = Needles(ids=set(gone), pseudonyms={pseudonym(key, a) for a in gone})
    n.names = {a["screen_name"] for a in data["accounts"] if a.get("id_str") in gone and a.get("screen_name")}
    for p in data["posts"]:
        for m in (p.get("entities") or {}).get("user_mentions") or []:
            if m.get("id_str") in gone and m.get("screen_name"):
                n.names.add(m["screen_name"])
    # Texts of theirs that no kept record holds anywhere (generated phrases recur in others'
    # profiles and posts): finding one of these can only mean a leak.
    kept = json.dumps([a for a in data["accounts"] if a.get("id_str") not in gone]
                      + [p for p in data["posts"] if (p.get("user") or {}).get("id_str") not in gone],
                      ensure_ascii=False)
    for p in data["posts"]:
        text = p.get("full_text") or ""
        if (p.get("user") or {}).get("id_str") in gone and len(text) >= 20 and json.dumps(text, ensure_ascii=False)[1:-1] not in kept:
            n.texts.add(text)
    # Whole files: the generator's bodies share one random block, only the header (holding the
    # media key) makes a file unique, so a slice could match another account's media.
    media_root = campaign_dir / "media"
    for m in data["media"]:
        if m.get("user_id") in gone and (media_root / str(m.get("path"))).is_file():
            n.media[m["media_key"]] = (media_root / m["path"]).read_bytes()
    return n
