"""ioarchive.cli.main."""
