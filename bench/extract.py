"""Benchmark: extraction + pseudonymization + table writing, against three references.

Measured side by side in one run, on the same generated raw campaign:

- ours: ``extract_campaign`` + ``pseudonymize_release`` + ``write_release_tables`` for both
  variants (what ``ioarchive extract`` does);
- floor: a plain Spark read of the same raw JSON Lines files (same explicit schemas) written to
  Parquet and to gzip-deflated CSV once per variant (no rules, no pseudonymization, no sort):
  the I/O floor of this engine for the files we write;
- pandas: the same transformation single-process with ``json`` + pandas + ``hashlib``/``hmac``,
  writing both variants' zipped CSV and Parquet;
- duckdb: the same transformation in DuckDB SQL (pseudonym map computed with Python's hmac:
  DuckDB has no HMAC), writing both variants' CSV (zipped by Python) and Parquet.

The pandas and DuckDB versions apply the same checks (invalid JSON, missing and duplicate ids,
timestamps, negative counts, deletions, campaign membership) and the same token replacement,
but skip media path checks and quarantine line numbers. Prints times, the ratios
``ours/floor`` (target <= 1.3, issue #20), ``duckdb/ours`` (target >= 0.5, issue #20) and
``pandas/ours`` (the withdrawn target of the first extraction issue), and peak resident memory:
the Spark JVM's and this driver's for ours and floor, and each of pandas and DuckDB (run in a
child process of their own, so the numbers are theirs).

    .venv/bin/python bench/extract.py --posts 1000000      # full size
    .venv/bin/python bench/extract.py --posts 50000        # dry run
    .venv/bin/python bench/extract.py --posts 200000 --only ours,floor   # while iterating
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

RELEASE = "bench_202102"
KEY = b"bench key, not a secret: 0123456789abcdef0123456789"
TOKEN_RE = re.compile(r"[A-Za-z0-9_]+")


class CpuClock:
    """CPU seconds of this process (pandas, DuckDB threads) plus the Spark driver JVM."""

    def __init__(self, spark) -> None:
        self.jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())

    def __call__(self) -> float:
        return sum(self.split())

    def split(self) -> tuple[float, float]:
        """(this Python process, the Spark JVM) CPU seconds."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        with open(f"/proc/{self.jvm_pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        jvm = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return own.ru_utime + own.ru_stime, jvm


def peak_rss_mib(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a live process, this one by default."""
    with open(f"/proc/{pid or 'self'}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_engine_child(engine: str, campaign: Path, out: Path) -> dict[str, float]:
    """pandas or DuckDB in a fresh process, so its time, CPU and peak memory are its own."""
    t0 = resource.getrusage(resource.RUSAGE_SELF)
    wall = run_pandas(campaign, out) if engine == "pandas" else run_duckdb(campaign, out)
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (t1.ru_utime + t1.ru_stime) - (t0.ru_utime + t0.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_rss_mib": peak_rss_mib()}


def generate(folder: Path, posts: int) -> Path:
    from ioarchive.devtools.generate.campaign import generate_campaign

    campaign = folder / f"campaign-{posts}"
    if not (campaign / "campaign.json").exists():
        t = time.perf_counter()
        generate_campaign(campaign, seed=3, accounts=max(100, posts // 400), posts=posts,
                          media_bytes=16 * 1024**2, invalid_rate=0.001, overwrite=True)
        print(f"generated {posts} posts in {time.perf_counter() - t:.1f} s -> {campaign}")
    return campaign


# --- ours ----------------------------------------------------------------------------------
def run_ours(spark, campaign: Path, out: Path, cpu=None) -> float:
    """The four phases of ``ioarchive extract``; prints wall and CPU seconds of each."""
    from ioarchive.extract.extraction import extract_campaign
    from ioarchive.pseudonymize.variant import pseudonymize_release
    from ioarchive.tables.writers import write_release_tables

    phases = (
        ("extract", lambda: extract_campaign(spark, campaign, out, RELEASE)),
        ("write unhashed", lambda: write_release_tables(spark, out, RELEASE, "unhashed")),
        ("pseudonymize", lambda: pseudonymize_release(spark, out, RELEASE, KEY, "bench")),
        ("write hashed", lambda: write_release_tables(spark, out, RELEASE, "hashed")),
    )
    t = time.perf_counter()
    for label, phase in phases:
        t0, c0 = time.perf_counter(), cpu.split() if cpu else (0.0, 0.0)
        phase()
        c1 = cpu.split() if cpu else (0.0, 0.0)
        cpu_s = (f"   cpu {sum(c1) - sum(c0):7.1f} s (JVM {c1[1] - c0[1]:6.1f}, Python {c1[0] - c0[0]:6.1f})"
                 if cpu else "")
        print(f"   ours/{label:<15} wall {time.perf_counter() - t0:7.1f} s{cpu_s}", flush=True)
    return time.perf_counter() - t


# --- floor ---------------------------------------------------------------------------------
def run_floor(spark, campaign: Path, out: Path) -> float:
    """The same I/O as ours with no rules: read the raw files (with the same explicit schemas,
    so no inference pass), write each table's Parquet and deflated CSV once per variant."""
    from ioarchive.extract.extraction import _raw_schemas
    from pyspark.sql import functions as F

    schemas = _raw_schemas()
    t = time.perf_counter()
    for variant in ("unhashed", "hashed"):
        for table in ("accounts", "posts"):
            df = spark.read.schema(schemas[table]).json(str(campaign / f"{table}.jsonl")).drop("_corrupt_record")
            df.write.mode("overwrite").parquet(str(out / variant / f"{table}.parquet"))
            flat = df.select([F.to_json(c).alias(c) if typ.startswith(("struct", "array")) else F.col(c)
                              for c, typ in df.dtypes])
            (flat.write.mode("overwrite").option("quoteAll", True).option("escape", '"')
             .option("compression", "gzip").csv(str(out / variant / f"{table}.csv")))
    media = spark.read.schema(schemas["media"]).json(str(campaign / "media.jsonl")).drop("_corrupt_record")
    media.write.mode("overwrite").parquet(str(out / "media.parquet"))
    return time.perf_counter() - t


# --- shared by pandas and duckdb -------------------------------------------------------------
def pseudo(uid: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(KEY, uid.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()


def redact(text, tokens: dict[str, str]):
    if not isinstance(text, str) or not text:
        return text
    return TOKEN_RE.sub(lambda m: tokens.get(m.group(0).lower(), m.group(0)), text)


def zip_file(csv_path: Path) -> None:
    with zipfile.ZipFile(csv_path.with_suffix(".zip"), "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        info = zipfile.ZipInfo(csv_path.name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(csv_path, "rb") as src, zf.open(info, "w") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    csv_path.unlink()


# --- pandas ----------------------------------------------------------------------------------
def run_pandas(campaign: Path, out: Path) -> float:
    import csv
    from datetime import datetime

    import pandas as pd
    from ioarchive.schema import ACCOUNT_COLUMNS, POST_COLUMNS

    t = time.perf_counter()
    camp = json.loads((campaign / "campaign.json").read_text())
    campaign_ids = set(camp["account_ids"])
    deleted = {json.loads(x)["id"] for x in (campaign / "deletions.jsonl").read_text().splitlines() if x.strip()}

    def parse(path: Path) -> list[dict]:
        seen, rows = set(), []
        for line in path.open(encoding="utf-8"):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not isinstance(obj, dict) or not obj.get("id_str") or obj["id_str"] in seen:
                continue
            seen.add(obj["id_str"])
            rows.append(obj)
        return rows

    def ts(s):
        try:
            return datetime.strptime(s, "%a %b %d %H:%M:%S %z %Y")
        except (TypeError, ValueError):
            return None

    accounts = []
    for a in parse(campaign / "accounts.jsonl"):
        created = ts(a.get("created_at"))
        if created is None or min(a.get("followers_count") or 0, a.get("friends_count") or 0) < 0:
            continue
        if a["id_str"] not in campaign_ids:
            continue
        accounts.append({"userid": a["id_str"], "user_display_name": a.get("name"), "user_screen_name": a.get("screen_name"),
                         "user_reported_location": a.get("location"), "user_profile_description": a.get("description"),
                         "user_profile_url": a.get("url"), "follower_count": a.get("followers_count"),
                         "following_count": a.get("friends_count"), "account_creation_date": created.date(),
                         "account_language": a.get("lang")})
    acc = pd.DataFrame(accounts, columns=list(ACCOUNT_COLUMNS))
    by_id = acc.set_index("userid")
    posts = []
    for p in parse(campaign / "posts.jsonl"):
        uid = (p.get("user") or {}).get("id_str")
        created = ts(p.get("created_at"))
        counts = [p.get(k) or 0 for k in ("quote_count", "reply_count", "favorite_count", "retweet_count")]
        if not uid or created is None or min(counts) < 0 or p["id_str"] in deleted or uid not in campaign_ids:
            continue
        ent = p.get("entities") or {}
        rt = p.get("retweeted_status") or {}
        coords = (p.get("coordinates") or {}).get("coordinates")
        src = p.get("source") or ""
        m = re.match(r"(?s)^\s*<a\b[^>]*>(.*)</a>\s*$", src)
        posts.append({"tweetid": p["id_str"], "userid": uid, "tweet_language": p.get("lang"), "tweet_text": p.get("full_text"),
                      "tweet_time": created, "tweet_client_name": m.group(1) if m else src,
                      "in_reply_to_tweetid": p.get("in_reply_to_status_id_str"),
                      "in_reply_to_userid": p.get("in_reply_to_user_id_str"),
                      "quoted_tweet_tweetid": p.get("quoted_status_id_str"), "is_retweet": bool(rt),
                      "retweet_userid": (rt.get("user") or {}).get("id_str"), "retweet_tweetid": rt.get("id_str"),
                      "latitude": coords[1] if coords else None, "longitude": coords[0] if coords else None,
                      "quote_count": p.get("quote_count"), "reply_count": p.get("reply_count"),
                      "like_count": p.get("favorite_count"), "retweet_count": p.get("retweet_count"),
                      "hashtags": [h["text"] for h in ent.get("hashtags") or []],
                      "urls": [u["expanded_url"] for u in ent.get("urls") or []],
                      "user_mentions": [u["id_str"] for u in ent.get("user_mentions") or []],
                      "poll_choices": (p.get("card") or {}).get("poll_choices") or []})
    pst = pd.DataFrame(posts)
    pst = pst.join(by_id, on="userid")[list(POST_COLUMNS)]

    small = acc[acc["follower_count"] < 5000]
    id_map = {u: pseudo(u) for u in small["userid"]}
    tokens = {**{u.lower(): p for u, p in id_map.items()},
              **{sn.lower(): id_map[u] for u, sn in zip(small["userid"], small["user_screen_name"], strict=True)}}

    def hashed(df: pd.DataFrame, posts_table: bool) -> pd.DataFrame:
        df = df.copy()
        p = df["userid"].map(id_map)
        for c in ("userid", "user_display_name", "user_screen_name"):
            df[c] = p.where(p.notna(), df[c])
        for c in ("user_reported_location", "user_profile_description", "user_profile_url"):
            df[c] = [redact(v, tokens) for v in df[c]]
        if posts_table:
            df["tweet_text"] = [redact(v, tokens) for v in df["tweet_text"]]
            for c in ("in_reply_to_userid", "retweet_userid"):
                df[c] = [id_map.get(v, v) for v in df[c]]
            df["user_mentions"] = [[id_map.get(x, x) for x in v] for v in df["user_mentions"]]
            for c in ("hashtags", "urls", "poll_choices"):
                df[c] = [[redact(x, tokens) for x in v] for v in df[c]]
            for c in ("latitude", "longitude"):
                df[c] = ["present" if v == v and v is not None else "absent" for v in df[c]]
        return df

    def csv_ready(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        if "tweet_time" in out:
            out["tweet_time"] = out["tweet_time"].map(lambda d: d.strftime("%Y-%m-%d %H:%M"))
            out["is_retweet"] = out["is_retweet"].map({True: "true", False: "false"})
            for c in ("hashtags", "urls", "user_mentions", "poll_choices"):
                out[c] = [json.dumps(v, ensure_ascii=False) for v in out[c]]
        for c in ("follower_count", "following_count", "quote_count", "reply_count", "like_count", "retweet_count"):
            if c in out:
                out[c] = out[c].map(lambda v: "" if v != v or v is None else str(int(v)))
        return out

    for variant, (a, p) in {"unhashed": (acc, pst), "hashed": (hashed(acc, False), hashed(pst, True))}.items():
        folder = out / variant
        folder.mkdir(parents=True, exist_ok=True)
        a = a.sort_values("userid", key=lambda s: s.str.zfill(64))
        p = p.sort_values("tweetid", key=lambda s: s.str.zfill(24))
        for name, df in (("users", a), ("tweets", p)):
            path = folder / f"{RELEASE}_{name}_csv_{variant}.csv"
            csv_ready(df).to_csv(path, index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
            zip_file(path)
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return time.perf_counter() - t


# --- duckdb ----------------------------------------------------------------------------------
def run_duckdb(campaign: Path, out: Path) -> float:
    import duckdb

    t = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 2}")
    camp = json.loads((campaign / "campaign.json").read_text())
    con.execute("CREATE TABLE campaign_ids AS SELECT unnest(?::VARCHAR[]) AS cid", [camp["account_ids"]])
    ts = "try_strptime(created_at, '%a %b %d %H:%M:%S %z %Y')"
    con.execute(f"""
        CREATE TABLE deletions AS SELECT kind, id::VARCHAR AS id FROM read_json('{campaign}/deletions.jsonl',
            format='newline_delimited', ignore_errors=true, columns={{'kind':'VARCHAR','id':'VARCHAR'}})""")
    con.execute(f"""
        CREATE TABLE accounts AS
        WITH raw AS (SELECT *, row_number() OVER (PARTITION BY id_str ORDER BY rowid) AS k, {ts} AS t
                     FROM (SELECT *, row_number() OVER () AS rowid FROM read_json('{campaign}/accounts.jsonl',
                       format='newline_delimited', ignore_errors=true, columns={{'id_str':'VARCHAR','name':'VARCHAR',
                       'screen_name':'VARCHAR','location':'VARCHAR','description':'VARCHAR','url':'VARCHAR',
                       'followers_count':'BIGINT','friends_count':'BIGINT','created_at':'VARCHAR','lang':'VARCHAR'}})))
        SELECT id_str AS userid, name AS user_display_name, screen_name AS user_screen_name,
               location AS user_reported_location, description AS user_profile_description, url AS user_profile_url,
               followers_count AS follower_count, friends_count AS following_count,
               CAST(t AS DATE) AS account_creation_date, lang AS account_language
        FROM raw WHERE id_str IS NOT NULL AND k = 1 AND t IS NOT NULL AND coalesce(followers_count, 0) >= 0
          AND coalesce(friends_count, 0) >= 0 AND id_str IN (SELECT cid FROM campaign_ids)""")
    con.execute(f"""
        CREATE TABLE posts AS
        WITH raw AS (SELECT *, row_number() OVER (PARTITION BY id_str ORDER BY rowid) AS k, {ts} AS t
                     FROM (SELECT *, row_number() OVER () AS rowid FROM read_json('{campaign}/posts.jsonl',
                       format='newline_delimited', ignore_errors=true, columns={{'id_str':'VARCHAR',
                       'user':'STRUCT(id_str VARCHAR)','full_text':'VARCHAR','created_at':'VARCHAR','lang':'VARCHAR',
                       'source':'VARCHAR','in_reply_to_status_id_str':'VARCHAR','in_reply_to_user_id_str':'VARCHAR',
                       'quoted_status_id_str':'VARCHAR','retweeted_status':'STRUCT(id_str VARCHAR, "user" STRUCT(id_str VARCHAR))',
                       'coordinates':'STRUCT(coordinates DOUBLE[])','quote_count':'BIGINT','reply_count':'BIGINT',
                       'favorite_count':'BIGINT','retweet_count':'BIGINT',
                       'entities':'STRUCT(hashtags STRUCT(text VARCHAR)[], urls STRUCT(expanded_url VARCHAR)[], user_mentions STRUCT(id_str VARCHAR)[])',
                       'card':'STRUCT(poll_choices VARCHAR[])'}})))
        SELECT r.id_str AS tweetid, r."user".id_str AS userid, a.* EXCLUDE (userid), r.lang AS tweet_language,
               full_text AS tweet_text, t AS tweet_time,
               coalesce(regexp_extract(source, '<a[^>]*>(.*)</a>', 1), source) AS tweet_client_name,
               in_reply_to_status_id_str AS in_reply_to_tweetid, in_reply_to_user_id_str AS in_reply_to_userid,
               quoted_status_id_str AS quoted_tweet_tweetid, retweeted_status IS NOT NULL AS is_retweet,
               retweeted_status."user".id_str AS retweet_userid, retweeted_status.id_str AS retweet_tweetid,
               coordinates.coordinates[2] AS latitude, coordinates.coordinates[1] AS longitude,
               quote_count, reply_count, favorite_count AS like_count, retweet_count,
               coalesce(list_transform(entities.hashtags, lambda x: x.text), []) AS hashtags,
               coalesce(list_transform(entities.urls, lambda x: x.expanded_url), []) AS urls,
               coalesce(list_transform(entities.user_mentions, lambda x: x.id_str), []) AS user_mentions,
               coalesce(card.poll_choices, []) AS poll_choices
        FROM raw r LEFT JOIN accounts a ON a.userid = r."user".id_str
        WHERE r.id_str IS NOT NULL AND r."user".id_str IS NOT NULL AND k = 1 AND t IS NOT NULL
          AND least(coalesce(quote_count,0), coalesce(reply_count,0), coalesce(favorite_count,0), coalesce(retweet_count,0)) >= 0
          AND r.id_str NOT IN (SELECT id FROM deletions WHERE kind = 'post')
          AND r."user".id_str IN (SELECT cid FROM campaign_ids)""")
    small = con.execute("SELECT userid, user_screen_name FROM accounts WHERE follower_count < 5000").fetchall()
    rows = [(u, pseudo(u)) for u, _ in small]
    tokens = {u.lower(): p for u, p in rows} | {sn.lower(): pseudo(u) for u, sn in small if sn}
    con.execute("CREATE TABLE id_map AS SELECT * FROM (VALUES ('', '')) t(k, v) WHERE false")
    if rows:
        con.executemany("INSERT INTO id_map VALUES (?, ?)", rows)
    con.execute("CREATE TABLE tok AS SELECT * FROM (VALUES ('', '')) t(k, v) WHERE false")
    if tokens:
        con.executemany("INSERT INTO tok VALUES (?, ?)", list(tokens.items()))
    con.execute("CREATE TABLE maps AS SELECT (SELECT map(list(k), list(v)) FROM id_map) AS idm, (SELECT map(list(k), list(v)) FROM tok) AS tm")

    def red(col: str) -> str:
        return (f"array_to_string(list_transform(regexp_extract_all({col}, '[A-Za-z0-9_]+|[^A-Za-z0-9_]+'), "
                f"lambda p: coalesce(tm[lower(p)], p)), '')")

    def idm(col: str) -> str:
        return f"coalesce(idm[{col}], {col})"

    con.execute(f"""
        CREATE TABLE h_accounts AS SELECT {idm('userid')} AS userid,
          CASE WHEN idm[userid] IS NULL THEN user_display_name ELSE idm[userid] END AS user_display_name,
          CASE WHEN idm[userid] IS NULL THEN user_screen_name ELSE idm[userid] END AS user_screen_name,
          {red('user_reported_location')} AS user_reported_location, {red('user_profile_description')} AS user_profile_description,
          {red('user_profile_url')} AS user_profile_url, follower_count, following_count, account_creation_date, account_language
        FROM accounts, maps""")
    con.execute(f"""
        CREATE TABLE h_posts AS SELECT tweetid, {idm('userid')} AS userid,
          CASE WHEN idm[userid] IS NULL THEN user_display_name ELSE idm[userid] END AS user_display_name,
          CASE WHEN idm[userid] IS NULL THEN user_screen_name ELSE idm[userid] END AS user_screen_name,
          {red('user_reported_location')} AS user_reported_location, {red('user_profile_description')} AS user_profile_description,
          {red('user_profile_url')} AS user_profile_url, follower_count, following_count, account_creation_date, account_language,
          tweet_language, {red('tweet_text')} AS tweet_text, tweet_time, tweet_client_name, in_reply_to_tweetid,
          {idm('in_reply_to_userid')} AS in_reply_to_userid, quoted_tweet_tweetid, is_retweet,
          {idm('retweet_userid')} AS retweet_userid, retweet_tweetid,
          CASE WHEN latitude IS NULL THEN 'absent' ELSE 'present' END AS latitude,
          CASE WHEN longitude IS NULL THEN 'absent' ELSE 'present' END AS longitude,
          quote_count, reply_count, like_count, retweet_count,
          list_transform(hashtags, lambda x: {red('x')}) AS hashtags, list_transform(urls, lambda x: {red('x')}) AS urls,
          list_transform(user_mentions, lambda x: {idm('x')}) AS user_mentions,
          list_transform(poll_choices, lambda x: {red('x')}) AS poll_choices
        FROM posts, maps""")

    def csv_select(table: str, posts_table: bool) -> str:
        cols = [d[0] for d in con.execute(f"DESCRIBE {table}").fetchall()]
        exprs = []
        for c in cols:
            if c == "tweet_time":
                exprs.append("strftime(tweet_time AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M') AS tweet_time")
            elif c in ("hashtags", "urls", "user_mentions", "poll_choices"):
                exprs.append(f"to_json({c})::VARCHAR AS {c}")
            else:
                exprs.append(f"coalesce({c}::VARCHAR, '') AS {c}")
        key = "tweetid" if posts_table else "userid"
        return f"SELECT {', '.join(exprs)} FROM {table} ORDER BY length({key}), {key}"

    for variant, (a, p) in {"unhashed": ("accounts", "posts"), "hashed": ("h_accounts", "h_posts")}.items():
        folder = out / variant
        folder.mkdir(parents=True, exist_ok=True)
        for name, table, is_posts in (("users", a, False), ("tweets", p, True)):
            path = folder / f"{RELEASE}_{name}_csv_{variant}.csv"
            con.execute(f"COPY ({csv_select(table, is_posts)}) TO '{path}' (HEADER, FORCE_QUOTE *, QUOTE '\"', ESCAPE '\"')")
            zip_file(path)
            con.execute(f"COPY (SELECT * FROM {table}) TO '{folder / (name + '.parquet')}' (FORMAT parquet)")
    con.close()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--work", default=os.environ.get("IOARCHIVE_BENCH_DIR", str(Path(tempfile.gettempdir()) / "ioarchive-bench")))
    parser.add_argument("--skip", default="", help="comma-separated: ours,floor,pandas,duckdb")
    parser.add_argument("--only", default="", help="comma-separated engines to run (default: all four)")
    parser.add_argument("--event-log", default="", help="folder for Spark's JSON event log (per-operator metrics)")
    parser.add_argument("--engine", choices=("pandas", "duckdb"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    engines = ("ours", "floor", "pandas", "duckdb")
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    if (skip | only) - set(engines):
        parser.error(f"unknown engine(s) {sorted((skip | only) - set(engines))}; expected {engines}")
    if only:
        skip |= set(engines) - only
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    campaign = generate(work, args.posts)
    if args.engine:  # child run (see run_engine_child)
        out = work / f"out-{args.engine}-{args.posts}"
        print(json.dumps(run_engine_child(args.engine, campaign, out)))
        return 0
    raw_mb = sum(p.stat().st_size for p in campaign.glob("*.jsonl")) / 1024**2
    print(f"input: {args.posts} posts, {raw_mb:.0f} MiB of JSON Lines; cores: {os.cpu_count()}; load: {os.getloadavg()[0]:.1f}")

    from ioarchive.spark.session import get_spark

    extra = {}
    if args.event_log:
        Path(args.event_log).mkdir(parents=True, exist_ok=True)
        extra = {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false",
                 "spark.eventLog.dir": Path(args.event_log).resolve().as_uri()}
    spark = get_spark("ioarchive-bench", extra)
    spark.range(1).count()  # session start is not part of any measurement
    cpu = CpuClock(spark)
    results: dict[str, float] = {}
    cpu_used: dict[str, float] = {}
    peaks: dict[str, str] = {}
    for name in engines:
        if name in skip:
            continue
        out = work / f"out-{name}-{args.posts}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        if name in ("ours", "floor"):
            c0 = cpu()
            results[name] = run_ours(spark, campaign, out, cpu) if name == "ours" else run_floor(spark, campaign, out)
            cpu_used[name] = cpu() - c0
            # VmHWM is a lifetime peak: "floor" shows the larger of the two Spark runs.
            peaks[name] = f"Spark JVM {peak_rss_mib(cpu.jvm_pid):.0f} MiB, Python driver {peak_rss_mib():.0f} MiB"
        else:
            proc = subprocess.run([sys.executable, __file__, "--posts", str(args.posts), "--work", str(work),
                                   "--engine", name], capture_output=True, text=True, check=True)
            child = json.loads(proc.stdout.strip().splitlines()[-1])
            results[name], cpu_used[name] = child["wall"], child["cpu"]
            peaks[name] = f"process {child['peak_rss_mib']:.0f} MiB"
        print(f"{name:>7}: wall {results[name]:8.1f} s   cpu {cpu_used[name]:8.1f} s   peak {peaks[name]}   "
              f"(load now {os.getloadavg()[0]:.1f})", flush=True)
    # Wall time is what a run costs; CPU time is shown too because other work on a shared
    # machine inflates wall time unevenly.
    for label, a, b, target in (("ours/floor", "ours", "floor", "<= 1.3"), ("pandas/ours", "pandas", "ours", ""),
                                ("duckdb/ours", "duckdb", "ours", ">= 0.5")):
        if a in results and b in results:
            print(f"{label:<12} wall {results[a] / results[b]:6.2f}   cpu {cpu_used[a] / cpu_used[b]:6.2f}   "
                  f"{'(target ' + target + ')' if target else ''}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
