"""ioarchive.pseudonymize.variant."""
