"""CSV formatting and part splitting on tiny hand-made tables (exact bytes)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

SCHEMA = ("tweetid string, tweet_text string, tweet_time timestamp, is_retweet boolean, latitude double, "
          "like_count long, hashtags array<string>, account_creation_date date")
COLUMNS = ("tweetid", "tweet_text", "tweet_time", "is_retweet", "latitude", "like_count", "hashtags",
           "account_creation_date")


def _frame(spark):
    rows = [
        ("10", 'he said "hi"\r\nnext, line', dt.datetime(2021, 2, 3, 4, 5, 59), True, 0.0001, 3, ["a", 'b"'],
         dt.date(2018, 10, 10)),
        ("9", "ایران 🔥 \u202eabc", dt.datetime(2020, 1, 1, 0, 0), False, None, None, [], None),
        ("100", "", None, None, -12.5, 0, None, None),
    ]
    return spark.createDataFrame(rows, SCHEMA)


def test_csv_layout_exact_bytes(spark, tmp_path):
    from ioarchive.tables.writers import id_order, write_csv_zips

    files = write_csv_zips(_frame(spark), COLUMNS, id_order("tweetid"),
                           lambda part: tmp_path / (f"t_part{part:03d}.zip" if part else "t.zip"))
    assert files == {"t.zip": 3}
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        assert zf.namelist() == ["t.csv"]
        data = zf.read("t.csv")
    assert data == (
        '"tweetid","tweet_text","tweet_time","is_retweet","latitude","like_count","hashtags","account_creation_date"\n'
        '"9","ایران 🔥 \u202eabc","2020-01-01 00:00","false","","","[]",""\n'
        '"10","he said ""hi""\r\nnext, line","2021-02-03 04:05","true","0.0001","3","[""a"",""b\\""""]","2018-10-10"\n'
        '"100","","","","-12.5","0","",""\n'
    ).encode("utf-8")
    back = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert back[2][1] == 'he said "hi"\r\nnext, line'


def test_parts_split_on_row_boundaries_and_are_deterministic(spark, tmp_path):
    from ioarchive.tables.writers import id_order, write_csv_zips

    df = spark.createDataFrame([(str(i), "x" * 40) for i in range(30)], "tweetid string, tweet_text string")

    def write(folder):
        folder.mkdir()
        return write_csv_zips(df, ("tweetid", "tweet_text"), id_order("tweetid"),
                              lambda part: folder / (f"t_part{part:03d}.zip" if part else "t.zip"), csv_part_max_bytes=300)

    files = write(tmp_path / "a")
    assert list(files) == [f"t_part{i:03d}.zip" for i in range(1, len(files) + 1)] and len(files) > 2
    ids = []
    for name, rows in files.items():
        with zipfile.ZipFile(tmp_path / "a" / name) as zf:
            (info,) = zf.infolist()
            assert info.filename == name[:-4] + ".csv" and info.date_time == (1980, 1, 1, 0, 0, 0)
            data = zf.read(info)
        assert len(data) <= 300
        got = list(csv.reader(io.StringIO(data.decode(), newline="")))
        assert got[0] == ["tweetid", "tweet_text"] and len(got) - 1 == rows
        ids += [r[0] for r in got[1:]]
    assert ids == [str(i) for i in range(30)]
    write(tmp_path / "b")
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
