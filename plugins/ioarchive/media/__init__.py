"""ioarchive.media.stage."""
