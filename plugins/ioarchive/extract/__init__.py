"""ioarchive.extract.extraction."""
