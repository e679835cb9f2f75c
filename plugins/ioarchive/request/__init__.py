"""ioarchive.request."""
