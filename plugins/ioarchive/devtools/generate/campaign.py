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
import os
import random
import shutil
from pathlib import Path
from typing import Any

from ioarchive.devtools.generate import invalid as inv
from ioarchive.devtools.generate import media as gm
from ioarchive.devtools.generate import text as gt
from ioarchive.devtools.generate.plan import make_plan, month_start
from ioarchive.devtools.generate.records import PostMaker, account_record, fake_account, fake_post

log = logging.getLogger(__name__)

MIN_ACCOUNTS = 15
MIN_POSTS = 100
SIDECAR = "injected_invalid.json"
OUTSIDE_DIR = "outside_media"
"""Folder beside ``media/`` holding the targets of injected escaping paths and symlinks."""

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
            return inv.truncated_json(bad_rng, fake_account(bad_rng, "0", window)), None
        if kind == "missing_id":
            rec = fake_account(bad_rng, None, window)
            if bad_rng.random() < 0.5:
                del rec["id_str"]
            return gt.dumps(rec), None
        if kind == "duplicate_id":
            return _duplicate(bad_rng, recent, ("description", "re-exported copy"))
        new_id = pools["injected_user"].new(bad_rng, window[0])
        extra_account_ids.append(new_id)
        rec = fake_account(bad_rng, new_id, window)
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
        acc.record = account_record(rng, acc, profile_keys)
    for acc in ordered_accounts:
        writer.write(acc.id_str, acc.record)
    writer.close()
    accounts_file = writer.file_name

    # posts.jsonl
    def bad_post(kind: str, recent: Any) -> tuple[str, str | None]:
        author = bad_rng.choice(posting_ids)
        if kind == "invalid_json":
            return inv.truncated_json(bad_rng, fake_post(bad_rng, "0", author, window)), None
        if kind == "missing_id":
            rec = fake_post(bad_rng, None, author, window)
            if bad_rng.random() < 0.5:
                del rec["id_str"]
            return gt.dumps(rec), None
        if kind == "duplicate_id":
            return _duplicate(bad_rng, recent, ("full_text", "duplicate export of this post"))
        new_id = pools["injected"].new(bad_rng, bad_rng.randint(*window))
        if kind == "not_campaign_account":
            return gt.dumps(fake_post(bad_rng, new_id, bad_rng.choice(plan.outside).id_str, window)), new_id
        rec = fake_post(bad_rng, new_id, author, window)
        if kind == "unparseable_timestamp":
            rec["created_at"] = bad_rng.choice(inv.BAD_TIMESTAMPS)
        else:
            rec[bad_rng.choice(("quote_count", "reply_count", "favorite_count", "retweet_count"))] = -bad_rng.randint(1, 99)
        return gt.dumps(rec), new_id

    writer = inv.InjectingWriter(out, "posts.jsonl", compress=compress,
                                 plan=inv.schedule(bad_rng, inv.POST_KINDS, posts, invalid_rate),
                                 factory=bad_post, sidecar=sidecar)
    maker = PostMaker(rng, plan, pools)
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
    disclosure = month_start(release_month)
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
