"""ioarchive.devtools."""
