"""The leak expectation finds ONE raw screen name planted in one post's text among 1 M posts.

Rows are generated in Spark (``spark.range``), not read from files, so the test measures the
check, not I/O. The identifier set is 2,000 pseudonymized accounts, as in a large campaign.
"""

from __future__ import annotations

import pytest

N_POSTS = 1_000_000
N_ACCOUNTS = 2_000
PLANTED = 777_777


@pytest.mark.slow
def test_single_planted_screen_name_is_found_in_a_million_posts(spark):
    import great_expectations as gx
    import ioarchive.quality.expectations as gxe
    from ioarchive.quality.identifiers import identifier_frame
    from ioarchive.quality.runner import quiet_gx
    from pyspark.sql import functions as F

    quiet_gx()
    accounts = spark.range(N_ACCOUNTS).select(
        F.format_string("%d", F.col("id") + F.lit(1_000_000_000_000_000_000)).alias("userid"),
        F.format_string("Velmora Drask%d", "id").alias("user_display_name"),
        F.format_string("vx_plinth%d", "id").alias("user_screen_name"),
        (F.col("id") % 100).cast("long").alias("follower_count"),
    )
    identifiers = identifier_frame(accounts, 5000).cache()
    identifiers.createOrReplaceTempView("leak_test_identifiers")
    target = "VX_Plinth1234"  # case differs from the raw screen name vx_plinth1234
    posts = spark.range(N_POSTS).select(
        F.format_string("%d", F.col("id") + F.lit(1_500_000_000_000_000_000)).alias("tweetid"),
        F.sha2(F.col("id").cast("string"), 256).substr(1, 43).alias("userid"),
        F.when(F.col("id") == PLANTED, F.lit(f"thanks @{target}!\nsee you"))
        .otherwise(F.format_string("post %d about #news with @vx_plinth%dx and friends", "id", "id"))
        .alias("tweet_text"),
        F.array(F.lit("news")).alias("hashtags"),
        F.array(F.sha2(F.col("id").cast("string"), 224).substr(1, 43)).alias("user_mentions"),
    )
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_spark("leak_test")
        .add_dataframe_asset("posts")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": posts})
    )
    expectation = gxe.ExpectNoRawIdentifierLeak(row_key="tweetid", identifier_view="leak_test_identifiers")
    result = batch.validate(expectation, result_format="SUMMARY")
    identifiers.unpersist()
    assert result.success is False
    assert result.result["observed_value"] == 1
    rows = result.result["details"]["unexpected_rows"]
    assert rows == [{"row_key": str(1_500_000_000_000_000_000 + PLANTED), "kind": "screen_name"}]
    # the report carries the row key and kind, never the identifier
    assert "plinth1234" not in str(result.to_json_dict()).lower()
