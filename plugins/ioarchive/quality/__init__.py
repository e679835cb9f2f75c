"""ioarchive.quality.runner."""
