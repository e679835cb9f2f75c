"""ioarchive.render.documents."""
