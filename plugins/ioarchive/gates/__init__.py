"""ioarchive.gates.signoffs."""
