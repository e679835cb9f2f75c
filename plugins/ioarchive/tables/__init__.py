"""ioarchive.tables."""
