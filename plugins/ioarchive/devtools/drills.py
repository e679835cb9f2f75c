"""Fault-drill hold points: where the rerun drills kill a writing task mid-write.

The drills (tests/e2e) prove that every writing task of ``io_release`` can be SIGKILLed in the
middle of its writes and cleared by on-call without changing a published byte. A kill "somewhere
during the task" would mostly land before or after the writes on small data; a hold point makes
it land where it hurts: after some outputs are written and before the rest.

Inert unless ``IOARCHIVE_DRILL_DIR`` is set (it never is in production). When it is set and the
file ``<dir>/<point>.hold`` exists, the first process to reach the point renames it to
``<point>.reached`` (one shot: the rerun passes straight through), writes its pid there and
waits until it is killed, until ``<point>.release`` appears, or for
``IOARCHIVE_DRILL_HOLD_SECONDS`` (default 600).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ioarchive import settings

log = logging.getLogger(__name__)

DRILL_DIR_ENV = "IOARCHIVE_DRILL_DIR"
HOLD_SECONDS_ENV = "IOARCHIVE_DRILL_HOLD_SECONDS"

# The hold points, in the order a release reaches them (tests/e2e drives them in this order; see tests/e2e/test_release_e2e.py).
EXTRACT = "extract.after_work_tables"
PSEUDONYMIZE = "pseudonymize.after_work_tables"
PACK_MEDIA = "pack_media.mid_archive"
RENDER = "render.between_variants"
PUBLISH = "publish.mid_upload"
CATALOG = "catalog.mid_upload"
POINTS = (EXTRACT, PSEUDONYMIZE, PACK_MEDIA, RENDER, PUBLISH, CATALOG)
WITHDRAW = "withdraw.record_written"
"""io_retract only: a withdrawal record replaced the manifest, the data objects are not deleted yet."""
RETRACTION_POINTS = (*POINTS, WITHDRAW)


def hold(point: str) -> None:
    """Park here if a drill asked for it (see the module docstring); otherwise return at once."""
    root = settings.get(DRILL_DIR_ENV)
    if not root:
        return
    folder = Path(root)
    reached = folder / f"{point}.reached"
    try:
        os.rename(folder / f"{point}.hold", reached)  # atomic: one holder, one shot
    except FileNotFoundError:
        return
    reached.write_text(json.dumps({"point": point, "pid": os.getpid(), "ppid": os.getppid()}))
    log.warning("fault drill: holding at %s in pid %d until killed", point, os.getpid())
    deadline = time.monotonic() + settings.get_float(HOLD_SECONDS_ENV)
    while time.monotonic() < deadline and not (folder / f"{point}.release").exists():
        time.sleep(0.1)
    log.warning("fault drill: released at %s without a kill", point)
