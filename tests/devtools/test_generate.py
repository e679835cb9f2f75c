"""The synthetic campaign generator: determinism, every edge case, the invalid sidecar, the CLI.

Everything is asserted by reading the written files with plain ``json`` (never the generator's
own summary), so a generator bug cannot hide behind its own counters.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from ioarchive.cli.main import main
from ioarchive.devtools.generate.campaign import generate_campaign

CREATED_AT = "%a %b %d %H:%M:%S %z %Y"
SOURCE_RE = re.compile(r'^<a href="[^"]+" rel="nofollow">[^<]+</a>$')
MAGIC = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF89a"}
COUNT_FIELDS_POST = ("quote_count", "reply_count", "favorite_count", "retweet_count")
COUNT_FIELDS_ACCOUNT = ("followers_count", "friends_count")


# ---------------------------------------------------------------- reading helpers (plain json)


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


def jsonl(folder: Path, stem: str) -> list[dict]:
    """Valid records of ``<stem>.jsonl[.gz]`` (a clean campaign has no invalid lines)."""
    path = folder / f"{stem}.jsonl"
    if not path.exists():
        path = folder / f"{stem}.jsonl.gz"
    return [json.loads(line) for line in read_lines(path)]


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file (symlinks: of their target text), keyed by relative path."""
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


def parses(ts: str) -> bool:
    try:
        datetime.strptime(ts, CREATED_AT)
        return True
    except (TypeError, ValueError):
        return False


@pytest.fixture(scope="module")
def small_campaign(tmp_path_factory) -> Path:
    """The smallest supported size: every edge case must still be present."""
    out = tmp_path_factory.mktemp("gen_small") / "campaign"
    generate_campaign(out, seed=3, accounts=20, posts=200, media_bytes=1024**2)
    return out


@pytest.fixture(params=["campaign_dir", "small_campaign"])
def any_campaign(request) -> Path:
    return request.getfixturevalue(request.param)


class Campaign:
    """A clean campaign read back with plain json."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta = json.loads((folder / "campaign.json").read_text(encoding="utf-8"))
        self.accounts = jsonl(folder, "accounts")
        self.posts = jsonl(folder, "posts")
        self.media = jsonl(folder, "media")
        self.deletions = jsonl(folder, "deletions")
        self.campaign_ids = set(self.meta["account_ids"])
        self.by_id = {a["id_str"]: a for a in self.accounts}
        self.post_ids = {p["id_str"] for p in self.posts}
        self.post_author = {p["id_str"]: p["user"]["id_str"] for p in self.posts}


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    args = dict(accounts=20, posts=200, media_bytes=512 * 1024, invalid_rate=0.05, compress=True)
    a = file_digests(_gen(tmp_path / "a", seed=5, **args))
    b = file_digests(_gen(tmp_path / "b", seed=5, **args))
    c = file_digests(_gen(tmp_path / "c", seed=6, **args))
    assert a == b
    assert "posts.jsonl.gz" in a and "injected_invalid.json" in a and len(a) > 20
    for name in ("posts.jsonl.gz", "accounts.jsonl.gz", "media.jsonl", "deletions.jsonl", "campaign.json"):
        assert a[name] != c[name], name
    assert set(a) != set(c)  # media paths carry ids, which depend on the seed


def test_output_does_not_depend_on_the_process_hash_seed(tmp_path):
    """Set/dict iteration order must not leak into files: compare with another hash seed."""
    import subprocess
    import sys

    code = ("from ioarchive.devtools.generate.campaign import generate_campaign; import sys; "
            "generate_campaign(sys.argv[1], seed=9, accounts=20, posts=150, media_bytes=200_000, invalid_rate=0.03)")
    for name, hash_seed in (("h1", "1"), ("h2", "977")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    assert file_digests(tmp_path / "h1") == file_digests(tmp_path / "h2")


def _gen(out: Path, **kwargs) -> Path:
    generate_campaign(out, **kwargs)
    return out


def test_clean_records_do_not_depend_on_the_invalid_rate(tmp_path, invalid_campaign_dir):
    """Bad records are extra lines: removing the sidecar's lines gives the clean campaign."""
    clean = _gen(tmp_path / "clean", seed=11, accounts=80, posts=2000, media_bytes=6 * 1024**2)
    sidecar = json.loads((invalid_campaign_dir / "injected_invalid.json").read_text())
    for name in ("accounts.jsonl", "posts.jsonl", "media.jsonl"):
        bad_lines = {r["line"] for r in sidecar["records"] if r["file"] == name}
        dirty = read_lines(invalid_campaign_dir / name)
        kept = [line for n, line in enumerate(dirty, start=1) if n not in bad_lines]
        assert kept == read_lines(clean / name), name
        assert len(dirty) == len(kept) + len(bad_lines)
    assert (clean / "deletions.jsonl").read_bytes() == (invalid_campaign_dir / "deletions.jsonl").read_bytes()
    clean_ids = json.loads((clean / "campaign.json").read_text())["account_ids"]
    dirty_ids = json.loads((invalid_campaign_dir / "campaign.json").read_text())["account_ids"]
    assert dirty_ids[: len(clean_ids)] == clean_ids
    assert not (clean / "injected_invalid.json").exists()


# ---------------------------------------------------------------- edge cases in clean data


def test_campaign_json_and_accounts(any_campaign):
    c = Campaign(any_campaign)
    for key in ("campaign_id", "title", "country", "attribution", "disclosure_month", "investigation_ids"):
        assert c.meta[key], key
    assert re.fullmatch(r"\d{4}-\d{2}", c.meta["disclosure_month"])
    assert set(c.by_id) == c.campaign_ids and len(c.by_id) == len(c.accounts)
    posted = {p["user"]["id_str"] for p in c.posts}
    assert posted <= c.campaign_ids
    assert len(c.campaign_ids - posted) >= 2, "some campaign accounts never posted"
    followers = [a["followers_count"] for a in c.accounts]
    assert 4999 in followers and 5000 in followers
    assert any(f < 4999 for f in followers) and any(5000 < f < 100_000 for f in followers)
    assert sum(f >= 100_000 for f in followers) >= 2
    for a in c.accounts:
        assert parses(a["created_at"]), a["created_at"]
        assert re.fullmatch(r"[A-Za-z0-9_]{1,15}", a["screen_name"])
    lowered = [a["screen_name"].lower() for a in c.accounts]
    assert len(set(lowered)) == len(lowered), "screen names are unique case-insensitively"


def test_ids_are_unique_15_to_19_digit_strings(any_campaign):
    c = Campaign(any_campaign)
    ids = [a["id_str"] for a in c.accounts] + [p["id_str"] for p in c.posts]
    assert len(ids) == len(set(ids))
    referenced = [p["in_reply_to_status_id_str"] for p in c.posts] + [p["in_reply_to_user_id_str"] for p in c.posts]
    referenced += [p["retweeted_status"]["id_str"] for p in c.posts if "retweeted_status" in p]
    referenced += [m["id_str"] for p in c.posts for m in p["entities"]["user_mentions"]]
    for value in ids + [r for r in referenced if r is not None]:
        assert isinstance(value, str) and re.fullmatch(r"[1-9]\d{14,18}", value), value
    keys = [m["media_key"] for m in c.media]
    assert len(keys) == len(set(keys))


def test_posts_have_the_v11_shapes(any_campaign):
    c = Campaign(any_campaign)
    for p in c.posts:
        assert parses(p["created_at"]), p["created_at"]
        assert SOURCE_RE.match(p["source"]), p["source"]
        assert all(isinstance(p[f], int) and p[f] >= 0 for f in COUNT_FIELDS_POST)
        ent = p["entities"]
        assert all(isinstance(h["text"], str) and h["text"] for h in ent["hashtags"])
        assert all(u["expanded_url"].startswith("http") for u in ent["urls"])
        assert all({"id_str", "screen_name"} <= set(m) for m in ent["user_mentions"])
        if p["coordinates"] is not None:
            assert p["coordinates"]["type"] == "Point"
            lon, lat = p["coordinates"]["coordinates"]
            assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert sum(p["coordinates"] is not None for p in c.posts) >= 2
    polls = [p["card"]["poll_choices"] for p in c.posts if "card" in p]
    assert len(polls) >= 2 and all(len(ch) >= 2 and all(isinstance(x, str) for x in ch) for ch in polls)
    assert any(p["entities"]["hashtags"] for p in c.posts)
    assert any(p["entities"]["urls"] for p in c.posts)


def test_replies_retweets_quotes_inside_and_outside_the_campaign(any_campaign):
    c = Campaign(any_campaign)
    replies = [p for p in c.posts if p["in_reply_to_status_id_str"]]
    retweets = [p for p in c.posts if "retweeted_status" in p]
    quotes = [p for p in c.posts if p["quoted_status_id_str"]]
    for group in (replies, quotes):
        inside = [p for p in group if (p.get("in_reply_to_status_id_str") or p["quoted_status_id_str"]) in c.post_ids]
        assert inside and len(inside) < len(group), "targets both inside and outside the campaign"
    inside_replies = [p for p in replies if p["in_reply_to_status_id_str"] in c.post_ids]
    assert all(c.post_author[p["in_reply_to_status_id_str"]] == p["in_reply_to_user_id_str"] for p in inside_replies)
    assert any(p["in_reply_to_user_id_str"] not in c.campaign_ids for p in replies)
    rt_users = {p["retweeted_status"]["user"]["id_str"] for p in retweets}
    assert rt_users & c.campaign_ids and rt_users - c.campaign_ids
    assert any(p["retweeted_status"]["id_str"] in c.post_ids for p in retweets)
    assert all(p["full_text"].startswith("RT @") for p in retweets)
    mentioned = {m["id_str"] for p in c.posts for m in p["entities"]["user_mentions"]}
    assert mentioned & c.campaign_ids and mentioned - c.campaign_ids


def test_mentions_vary_in_case_and_prefix_traps_exist(any_campaign):
    c = Campaign(any_campaign)
    names = [a["screen_name"] for a in c.accounts]
    # Whole-word @mentions per post, and whole words not preceded by @ (a bare screen name).
    at_tokens = [set(re.findall(r"(?<![\w@])@(\w+)", p["full_text"])) for p in c.posts]
    bare_tokens = set().union(*(re.findall(r"(?<![@\w])(\w+)", p["full_text"]) for p in c.posts))
    all_at = set().union(*at_tokens)

    varied = [n for n in names if n.lower() != n and n.upper() != n and {n, n.lower(), n.upper()} <= all_at]
    assert varied, "a screen name is mentioned as @Name, @name and @NAME"
    pairs = [(a, b) for a in names for b in names if a != b and b.lower().startswith(a.lower())]
    both = [(a, b) for a, b in pairs if any(a in toks and b in toks for toks in at_tokens)]
    assert both, "one post mentions @abc and @abcd"
    low = {a["screen_name"]: a["followers_count"] < 5000 for a in c.accounts}
    assert {(low[a], low[b]) for a, b in both} >= {(True, False), (False, True)}
    assert any(n in bare_tokens for n in names), "a screen name appears in text without @"


def test_hostile_text_in_posts_and_profiles(any_campaign):
    c = Campaign(any_campaign)
    checks = {
        "newline": lambda t: "\n" in t,
        "double_quote": lambda t: '"' in t,
        "comma": lambda t: "," in t,
        "emoji": lambda t: any(ord(ch) >= 0x1F300 for ch in t),
        "arabic": lambda t: "مرحبا" in t or "الحقيقة" in t,
        "persian": lambda t: any(ch in t for ch in "پچژگ") or "ی" in t,
        "hebrew": lambda t: any("\u0590" <= ch <= "\u05ff" for ch in t),
        "script": lambda t: "<script>alert(1)</script>" in t,
        "bold": lambda t: "<b>" in t,
    }
    texts = [p["full_text"] for p in c.posts]
    profiles = [a["name"] for a in c.accounts] + [a["description"] for a in c.accounts]
    for name, check in checks.items():
        assert any(check(t) for t in texts), f"post text lacks {name}"
        assert any(check(t) for t in profiles), f"profiles lack {name}"
    assert any(re.search(r"\[[^\]]+\]\(https?://[^)]+\)", t) for t in profiles), "markdown link"
    assert any("\r\n" in t for t in texts) and any("\u2028" in t for t in texts)
    assert any("\n" in a["name"] for a in c.accounts) or any("\n" in a["description"] for a in c.accounts)


def test_deletions_reference_existing_records(any_campaign):
    c = Campaign(any_campaign)
    kinds = Counter(d["kind"] for d in c.deletions)
    assert kinds["post"] >= 2 and kinds["media"] >= 2
    keys = {m["media_key"] for m in c.media}
    for d in c.deletions:
        assert d["id"] in (c.post_ids if d["kind"] == "post" else keys), d
        assert parses(d["deleted_at"])
    deleted_posts = {d["id"] for d in c.deletions if d["kind"] == "post"}
    assert any(m["post_id"] in deleted_posts for m in c.media), "a deleted post carries media"


def test_media_files_match_their_records(any_campaign, request):
    c = Campaign(any_campaign)
    assert {m["kind"] for m in c.media} == {"photo", "video", "animated_gif", "profile_image", "profile_banner"}
    media_root = any_campaign / "media"
    total = 0
    for m in c.media:
        assert m["path"] == f"{m['user_id']}/{m['media_key']}.{m['path'].rsplit('.', 1)[1]}"
        path = media_root / m["path"]
        assert not path.is_symlink()
        data = path.read_bytes()
        assert len(data) == m["bytes"] and hashlib.sha256(data).hexdigest() == m["sha256"], m
        ext = m["path"].rsplit(".", 1)[1]
        if ext == "mp4":
            assert data[4:8] == b"ftyp"
        else:
            assert data.startswith(MAGIC[ext])
        assert (ext in ("mp4",)) == (m["kind"] == "video")
        assert (ext == "gif") == (m["kind"] == "animated_gif")
        if m["kind"].startswith("profile_"):
            assert m["post_id"] is None
            field = "profile_image_media_key" if m["kind"] == "profile_image" else "profile_banner_media_key"
            assert c.by_id[m["user_id"]][field] == m["media_key"]
        else:
            assert c.post_author[m["post_id"]] == m["user_id"]
            post = next(p for p in c.posts if p["id_str"] == m["post_id"])
            assert m["media_key"] in [e["media_key"] for e in post["entities"]["media"]]
        total += m["bytes"]
    assert len({m["sha256"] for m in c.media}) == len(c.media)
    target = {"campaign_dir": 12 * 1024**2, "small_campaign": 1024**2}[request.node.callspec.params["any_campaign"]]
    assert 0.9 * target <= total <= 1.1 * target


def test_media_sizes_are_realistic_with_a_large_budget():
    """Planning only (no files): at 2 GiB, sizes span the real ranges per kind."""
    import random

    from ioarchive.devtools.generate import media as gm

    counts, factor = gm.plan_counts(2 * 1024**3, accounts=300, posts=20_000)
    files = [gm.MediaFile(f"k{i}", kind, "1", None, "jpg", 0) for kind, n in counts.items() for i in range(n)]
    gm.sample_sizes(random.Random(1), files, factor, 2 * 1024**3)
    by_kind: dict[str, list[int]] = {}
    for f in files:
        by_kind.setdefault(f.kind, []).append(f.size)
    assert factor == 1.0
    assert max(by_kind["video"]) > 10 * 1024**2 and max(by_kind["photo"]) > 1024**2
    assert min(by_kind["photo"]) < 200 * 1024 and max(by_kind["profile_image"]) <= 150 * 1024
    assert abs(sum(f.size for f in files) - 2 * 1024**3) < 0.01 * 2 * 1024**3


# ---------------------------------------------------------------- injected bad records


def test_sidecar_matches_what_a_plain_parse_finds(invalid_campaign_dir):
    folder = invalid_campaign_dir
    sidecar = json.loads((folder / "injected_invalid.json").read_text())
    campaign_ids = set(json.loads((folder / "campaign.json").read_text())["account_ids"])
    declared: dict[tuple[str, str], set[int]] = {}
    for r in sidecar["records"]:
        declared.setdefault((r["file"], r["kind"]), set()).add(r["line"])
        assert r["disposition"] == ("excluded" if r["kind"] == "not_campaign_account" else "quarantined")
    found: dict[tuple[str, str], set[int]] = {}

    def note(name: str, kind: str, line: int) -> None:
        found.setdefault((name, kind), set()).add(line)

    for name, id_field in (("accounts.jsonl", "id_str"), ("posts.jsonl", "id_str"), ("media.jsonl", "media_key")):
        seen: set[str] = set()
        for n, line in enumerate(read_lines(folder / name), start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                note(name, "invalid_json", n)
                continue
            rid = rec.get(id_field)
            if not rid:
                note(name, "missing_id", n)
                continue
            if rid in seen:
                note(name, "duplicate_id", n)
                continue
            seen.add(rid)
            if name == "media.jsonl":
                _classify_media(folder, rec, n, note)
                continue
            if not parses(rec["created_at"]):
                note(name, "unparseable_timestamp", n)
            fields = COUNT_FIELDS_ACCOUNT if name == "accounts.jsonl" else COUNT_FIELDS_POST
            if any(rec[f] < 0 for f in fields):
                note(name, "negative_count", n)
            if name == "posts.jsonl" and rec["user"]["id_str"] not in campaign_ids:
                note(name, "not_campaign_account", n)
    assert found == declared
    expected_kinds = {
        "accounts.jsonl": {"invalid_json", "missing_id", "duplicate_id", "unparseable_timestamp", "negative_count"},
        "posts.jsonl": {"invalid_json", "missing_id", "duplicate_id", "unparseable_timestamp", "negative_count",
                        "not_campaign_account"},
        "media.jsonl": {"invalid_json", "missing_id", "path_escape", "symlink", "size_mismatch", "sha256_mismatch",
                        "missing_file"},
    }
    for name, kinds in expected_kinds.items():
        assert set(sidecar["counts"][name]) == kinds
        assert all(sidecar["counts"][name][k] == len(declared[(name, k)]) for k in kinds)
    assert sum(sidecar["counts"]["posts.jsonl"].values()) >= 0.02 * 2000
    assert sidecar["seed"] == 11 and sidecar["invalid_rate"] == 0.02


def _classify_media(folder: Path, rec: dict, n: int, note) -> None:
    name = "media.jsonl"
    rel = rec["path"]
    media_root = (folder / "media").resolve()
    if rel.startswith("/") or ".." in Path(rel).parts:
        note(name, "path_escape", n)
        return
    path = folder / "media" / rel
    if path.is_symlink():
        assert not path.resolve().is_relative_to(media_root), "symlink points outside media/"
        assert path.resolve().exists()
        note(name, "symlink", n)
        return
    if not path.exists():
        note(name, "missing_file", n)
        return
    data = path.read_bytes()
    if len(data) != rec["bytes"]:
        note(name, "size_mismatch", n)
    elif hashlib.sha256(data).hexdigest() != rec["sha256"]:
        note(name, "sha256_mismatch", n)


def test_escaping_paths_point_at_real_files_outside_media(invalid_campaign_dir):
    """A naive reader that joins paths would find these files: the trap is real."""
    sidecar = json.loads((invalid_campaign_dir / "injected_invalid.json").read_text())
    ids = {r["id"] for r in sidecar["records"] if r["kind"] in ("path_escape", "symlink")}
    lines = read_lines(invalid_campaign_dir / "media.jsonl")
    bad_lines = {r["line"] for r in sidecar["records"] if r["kind"] in ("path_escape", "symlink")}
    recs = [json.loads(lines[n - 1]) for n in sorted(bad_lines)]
    assert {r["media_key"] for r in recs} == ids and any(r["path"] for r in recs if not r["path"].startswith("/"))
    for rec in recs:
        if rec["path"].startswith("/"):
            continue
        target = (invalid_campaign_dir / "media" / rec["path"]).resolve()
        assert target.exists() and not target.is_relative_to((invalid_campaign_dir / "media").resolve())
        assert hashlib.sha256(target.read_bytes()).hexdigest() == rec["sha256"]


# ---------------------------------------------------------------- CLI


def test_cli_generates_a_compressed_campaign_and_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["generate", "--out", str(out), "--seed", "4", "--accounts", "20", "--posts", "150",
            "--media-bytes", "256KiB", "--invalid-rate", "0.01", "--compress"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["posts"] == 150
    posts = read_lines(out / "posts.jsonl.gz")
    sidecar = json.loads((out / "injected_invalid.json").read_text())
    assert len(posts) == 150 + sum(sidecar["counts"]["posts.jsonl.gz"].values())
    assert main(argv) == 2  # not empty: refused, nothing overwritten
    assert read_lines(out / "posts.jsonl.gz") == posts
    assert main([*argv, "--force", "--seed", "5"]) == 0
    assert read_lines(out / "posts.jsonl.gz") != posts
