"""Every published CSV ends each record with one LF and loads in line-oriented tooling (issue #19).

One small generated campaign, with hostile text planted in posts and profiles (lone CR, CR at
the very end of a field, CRLF and LF inside text, quotes, commas), goes through the real jobs
(extract, pseudonymize, pack-media) in-process. Then:

- the raw bytes of every CSV (users, tweets parts, media index; both variants) are split at
  every LF outside quotes, and those cuts are exactly the records the csv module parses, each
  ending ``"`` + LF (never CRLF); re-serializing the parsed rows with one LF per record gives
  the same bytes, so CR and LF inside text are exactly as they were;
- a shell pipeline of the kind researchers run (``unzip -p | sed`` appending a column to every
  record, ``sqlite3 .import --csv``) loads exactly the released rows and strings; the same
  pipeline on the old CRLF bytes loads a fraction of them (the bug this fixes);
- pandas and the csv module read the planted strings back exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from ioarchive.pseudonymize.pseudonym import write_key_file
from ioarchive.schema import ACCOUNT_COLUMNS, MEDIA_INDEX_COLUMNS, POST_COLUMNS
from ioarchive.staging import StagingLayout
from support.release import extract_both_variants

RELEASE = "linends_202102"
KEY = b"test-only key: line ends 0123456789abcdef0123456789"
PART_BYTES = 60_000
VARIANTS = ("hashed", "unhashed")

PLANTED_POST_TEXT = (
    "lone\rcarriage return inside",
    "ends with a carriage return\r",
    "\r\nstarts with CRLF, then text",
    'she said "yes"\r\nthen, "no"',
    '"',
    "\n",
    "a,b\n\nc\r\r\n",
    'ends with a quote"',
    '",\r\n",\n',
)
PLANTED_DESCRIPTION = 'bio line\rwith CR\r\nand CRLF, "quoted", and a trailing LF\n'


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


@pytest.fixture(scope="module")
def release(spark, tmp_path_factory):
    """Generate, plant, extract, pseudonymize and pack one small release (both variants)."""
    from ioarchive.devtools.generate.campaign import generate_campaign
    from ioarchive.media.stage import pack_media

    campaign_dir = tmp_path_factory.mktemp("campaign") / "campaign"
    generate_campaign(campaign_dir, seed=19, accounts=20, posts=400, media_bytes=2 * 1024**2)
    campaign = json.loads((campaign_dir / "campaign.json").read_text())
    members = set(campaign["account_ids"])
    deleted = {json.loads(x)["id"] for x in _lines(campaign_dir / "deletions.jsonl") if x}

    # Plant the hostile texts in released posts (campaign author, not deleted, no mention rewrite).
    planted: dict[str, str] = {}
    out = []
    texts = iter(PLANTED_POST_TEXT)
    for line in _lines(campaign_dir / "posts.jsonl"):
        obj = json.loads(line) if line else None
        if (isinstance(obj, dict) and len(planted) < len(PLANTED_POST_TEXT) and obj.get("id_str")
                and obj["id_str"] not in deleted and obj.get("user", {}).get("id_str") in members
                and not obj["entities"].get("user_mentions")):
            obj["full_text"] = next(texts)
            planted[obj["id_str"]] = obj["full_text"]
            line = json.dumps(obj, ensure_ascii=False)
        out.append(line)
    assert len(planted) == len(PLANTED_POST_TEXT)
    (campaign_dir / "posts.jsonl").write_text("\n".join(out), encoding="utf-8")
    out = []
    planted_account = None
    for line in _lines(campaign_dir / "accounts.jsonl"):
        obj = json.loads(line) if line else None
        if planted_account is None and isinstance(obj, dict) and obj.get("id_str") in members:
            obj["description"] = PLANTED_DESCRIPTION
            planted_account = obj["id_str"]
            line = json.dumps(obj, ensure_ascii=False)
        out.append(line)
    (campaign_dir / "accounts.jsonl").write_text("\n".join(out), encoding="utf-8")

    staging = tmp_path_factory.mktemp("staging")
    key_file = write_key_file(KEY, tmp_path_factory.mktemp("key") / "key")
    extract_both_variants(spark, campaign_dir, staging, RELEASE, key_file, csv_part_max_bytes=PART_BYTES)
    for variant in VARIANTS:
        pack_media(campaign_dir, staging, RELEASE, variant, target_bytes=1024**2, workers=1)
    return {"layout": StagingLayout(staging, RELEASE), "planted": planted, "planted_account": planted_account}


def _zips(layout: StagingLayout, variant: str, table: str) -> list[Path]:
    return sorted(layout.release_dir(variant).glob(f"{RELEASE}_{table}_csv_{variant}*.zip"))


def _unzipped(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        (name,) = zf.namelist()
        return zf.read(name)


def every_csv(layout: StagingLayout) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """Every published CSV of both variants: name -> (bytes, columns)."""
    out = {}
    for variant in VARIANTS:
        for table, columns in (("users", ACCOUNT_COLUMNS), ("tweets", POST_COLUMNS)):
            for z in _zips(layout, variant, table):
                out[z.name] = (_unzipped(z), columns)
        out[f"{variant}/media_index.csv"] = (layout.media_index_csv(variant).read_bytes(), MEDIA_INDEX_COLUMNS)
    return out


def record_ends(data: bytes) -> list[int]:
    """Offsets of the LFs outside quotes (a doubled quote toggles twice, so stays inside)."""
    ends, inside = [], False
    for m in re.finditer(rb'["\n]', data):
        if m.group() == b'"':
            inside = not inside
        elif not inside:
            ends.append(m.start())
    return ends


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), strict=True))


def as_lf_csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def test_every_record_of_every_csv_ends_with_exactly_one_lf(release):
    files = every_csv(release["layout"])
    assert sum(1 for n in files if "_tweets_csv_" in n) >= 4  # parts in both variants
    cr_inside = 0
    for name, (data, columns) in files.items():
        rows = parse(data)
        assert rows[0] == list(columns), name
        assert all(len(r) == len(columns) for r in rows), name
        ends = record_ends(data)
        # One record boundary per parsed record (header included); the file ends with one.
        assert len(ends) == len(rows) and ends[-1] == len(data) - 1, name
        start = 0
        for row, end in zip(rows, ends, strict=True):
            # The last field's closing quote, then LF: no CR outside quotes before a record end.
            assert data[end - 1:end + 1] == b'"\n', (name, row[0])
            assert parse(data[start:end + 1]) == [row], (name, row[0])
            start = end + 1
        # Outside quoted text there is no CR at all: the only CRs are the ones inside fields.
        outside = re.sub(rb'"(?:[^"]|"")*"', b"", data)
        assert outside == (b"," * (len(columns) - 1) + b"\n") * len(rows), name
        # Canonical: RFC 4180 quoting of the parsed values with one LF per record.
        assert as_lf_csv(rows) == data, name
        cr_inside += data.count(b"\r")
    assert cr_inside > 0


def test_planted_text_reads_back_exactly_with_pandas_and_csv(release):
    layout, planted = release["layout"], release["planted"]
    for variant in VARIANTS:
        rows, frames = [], []
        for z in _zips(layout, variant, "tweets"):
            rows += list(csv.DictReader(io.StringIO(_unzipped(z).decode("utf-8"), newline="")))
            with zipfile.ZipFile(z) as zf:
                frames.append(pd.read_csv(zf.open(zf.namelist()[0]), dtype=str, keep_default_na=False))
        frame = pd.concat(frames, ignore_index=True)
        assert frame.to_dict("records") == rows
        texts = {r["tweetid"]: r["tweet_text"] for r in rows}
        assert {i: texts[i] for i in planted} == planted
        users = list(csv.DictReader(io.StringIO(_unzipped(layout.users_csv_zip(variant)).decode("utf-8"), newline="")))
        with zipfile.ZipFile(layout.users_csv_zip(variant)) as zf:
            users_frame = pd.read_csv(zf.open(zf.namelist()[0]), dtype=str, keep_default_na=False)
        assert users_frame.to_dict("records") == users
        assert [u["user_profile_description"] for u in users].count(PLANTED_DESCRIPTION) == 1


# ---- a researcher's line-oriented loader ------------------------------------------------------
# sed appends a column to each record: lines are joined while the quotes seen are odd (a record
# whose text holds a newline spans several lines), then ',"<release>"' goes before the record's
# line end. sqlite3's CSV import reads the result; later parts skip their header.
SED_APPEND = (
    r""":a
/^[^"]*("[^"]*"[^"]*)*"[^"]*$/{
N
ba
}
1s/$/,"release"/
1!s/$/,"{release}"/
"""
)
PIPELINE = r"""
set -eu
first=1
for z in "$@"; do
  unzip -p "$z" | LC_ALL=C sed -E -f "$SED_SCRIPT" > "$WORK/table.csv"
  if [ "$first" = 1 ]; then
    printf '.import --csv %s %s\n' "$WORK/table.csv" "$TABLE" | sqlite3 "$DB"
    first=0
  else
    printf '.import --csv --skip 1 %s %s\n' "$WORK/table.csv" "$TABLE" | sqlite3 "$DB"
  fi
done
"""


def _tools_missing() -> str | None:
    missing = [t for t in ("sqlite3", "unzip", "sed") if shutil.which(t) is None]
    if missing:
        return (f"{', '.join(missing)} not installed: the line-oriented loader test needs the sqlite3 CLI "
                "(Debian package `sqlite3`), unzip and sed")
    return None


def _load_with_shell(zips: list[Path], table: str, db: Path, work: Path) -> subprocess.CompletedProcess[str]:
    script = work / "append.sed"
    script.write_text(SED_APPEND.replace("{release}", RELEASE))
    env = {"PATH": "/usr/bin:/bin", "SED_SCRIPT": str(script), "WORK": str(work), "TABLE": table, "DB": str(db)}
    return subprocess.run(["bash", "-c", PIPELINE, "loader", *map(str, zips)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _sqlite_rows(db: Path, table: str) -> list[dict[str, str]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')]


@pytest.mark.parametrize("variant", VARIANTS)
def test_unzip_sed_sqlite_pipeline_loads_exactly_the_released_rows(release, variant, tmp_path):
    if reason := _tools_missing():
        pytest.skip(reason)
    layout, planted = release["layout"], release["planted"]
    for table, columns in (("users", ACCOUNT_COLUMNS), ("tweets", POST_COLUMNS)):
        zips = _zips(layout, variant, table)
        released = [row for z in zips for row in csv.DictReader(io.StringIO(_unzipped(z).decode("utf-8"), newline=""))]
        db = tmp_path / f"{table}.db"
        done = _load_with_shell(zips, table, db, tmp_path)
        assert done.returncode == 0 and not done.stderr, done.stderr
        loaded = _sqlite_rows(db, table)
        key = columns[0]
        assert len(loaded) == len(released)
        assert [r[key] for r in loaded] == [r[key] for r in released]
        assert loaded == [{**r, "release": RELEASE} for r in released]
        if table == "tweets":
            texts = {r["tweetid"]: r["tweet_text"] for r in loaded}
            assert {i: texts[i] for i in planted} == planted
            assert len(zips) >= 2
        else:
            assert [r["user_profile_description"] for r in loaded].count(PLANTED_DESCRIPTION) == 1


def test_same_pipeline_on_crlf_records_garbles_the_table(release, tmp_path):
    """The failure the change fixes: with CRLF record ends, sed's column lands after the CR.

    (sqlite3 3.40 then merges the appended column into the last one; older loaders lost rows.)
    """
    if reason := _tools_missing():
        pytest.skip(reason)
    (z,) = _zips(release["layout"], "unhashed", "users")
    data = _unzipped(z)
    ends = record_ends(data)
    crlf = b"".join(data[s:e] + b"\r\n" for s, e in zip([0, *[e + 1 for e in ends[:-1]]], ends, strict=True))
    assert parse(crlf) == parse(data)  # the same table to the csv module
    released = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    old = tmp_path / z.name
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr(z.name[:-4] + ".csv", crlf)
    _load_with_shell([old], "users", tmp_path / "old.db", tmp_path)
    loaded = _sqlite_rows(tmp_path / "old.db", "users")
    assert loaded != [{**r, "release": RELEASE} for r in released]
    assert loaded and "release" not in loaded[0] and "account_language" not in loaded[0]
