"""ioarchive.publish.upload."""
