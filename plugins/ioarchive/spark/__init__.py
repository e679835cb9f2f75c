"""ioarchive.spark.session."""
