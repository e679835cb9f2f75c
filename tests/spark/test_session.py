"""Release sessions: the settings every session gets (ioarchive.spark.session)."""

from __future__ import annotations


def test_release_sessions_split_input_finer_than_spark(spark, tmp_path):
    """A release session reads a raw file in 32 MiB splits (Spark's default is 128 MiB): a
    100 MB posts file gives 4 tasks on these 2 cores, not 1 idle core in the last wave."""
    from pyspark.sql import functions as F

    raw = tmp_path / "posts.jsonl"
    line = b'{"id_str": "1", "full_text": "' + b"x" * 1000 + b'"}\n'
    with open(raw, "wb") as fh:
        for _ in range(100):
            fh.write(line * 1000)  # about 100 MB
    assert spark.conf.get("spark.sql.files.maxPartitionBytes") == "32m"
    df = spark.read.text(str(raw))
    assert df.rdd.getNumPartitions() == 4
    assert df.select(F.count("*")).first()[0] == 100_000
