"""Subcommands of ``ioarchive``; one module each (see ``ioarchive.cli``)."""
