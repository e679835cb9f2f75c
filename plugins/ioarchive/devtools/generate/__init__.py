"""ioarchive.devtools.generate."""
