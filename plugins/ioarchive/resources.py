"""Where the package's data folders are: the Spark job scripts, the templates, the GX suites.

The repository keeps them at the top level (``jobs/``, ``templates/``, ``expectations/``); the
package reaches them as ``ioarchive/_data/<name>``, committed relative symlinks to those folders.
So one lookup, ``importlib.resources.files("ioarchive") / "_data" / <name>``, works in every
way the code runs (see docs/decisions.md, "Package data"):

- the editable install (``pip install -e .``: plugins/ is on ``sys.path``), or Airflow loading
  plugins/ from its plugins folder: the symlink leads to the repository's folder;
- an installed wheel: the wheel holds real copies of the files under ``ioarchive/_data/``.

Each folder can be overridden by an environment variable (``IOARCHIVE_JOBS_DIR``,
``IOARCHIVE_TEMPLATES``, ``IOARCHIVE_EXPECTATIONS_DIR``). The functions always return a real
folder on disk, because ``spark-submit`` and Jinja's file loader need paths: a package imported
from a zip archive has its folder copied once per process into a temporary folder.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ioarchive import settings

JOBS_ENV = "IOARCHIVE_JOBS_DIR"
TEMPLATES_ENV = "IOARCHIVE_TEMPLATES"
EXPECTATIONS_ENV = "IOARCHIVE_EXPECTATIONS_DIR"

DATA_PACKAGE = "ioarchive"
DATA_FOLDER = "_data"

_extracted: dict[str, Path] = {}


def data_dir(name: str) -> Path:
    """The package's ``_data/<name>`` folder as a real path (see the module doc)."""
    entry = resources.files(DATA_PACKAGE) / DATA_FOLDER / name
    if isinstance(entry, Path):
        return entry
    return _extract(name, entry)


def _extract(name: str, entry: Traversable) -> Path:
    """Copy a folder of a zipped package to a temporary folder (once per process)."""
    if name not in _extracted:
        root = Path(tempfile.mkdtemp(prefix=f"ioarchive-{name}-"))
        atexit.register(shutil.rmtree, root, True)
        _copy_tree(entry, root)
        _extracted[name] = root
    return _extracted[name]


def _copy_tree(entry: Traversable, target: Path) -> None:
    for child in entry.iterdir():
        if child.is_dir():
            (target / child.name).mkdir()
            _copy_tree(child, target / child.name)
        else:
            (target / child.name).write_bytes(child.read_bytes())


def _resolve(env: str, name: str) -> Path:
    override = settings.get(env)
    return Path(override) if override else data_dir(name)


def jobs_dir() -> Path:
    """Folder of the Spark job scripts: ``$IOARCHIVE_JOBS_DIR`` or the packaged ``jobs/``."""
    return _resolve(JOBS_ENV, "jobs")


def templates_dir() -> Path:
    """Folder of the Jinja2 templates: ``$IOARCHIVE_TEMPLATES`` or the packaged ``templates/``."""
    return _resolve(TEMPLATES_ENV, "templates")


def expectations_dir() -> Path:
    """Folder of the GX suites: ``$IOARCHIVE_EXPECTATIONS_DIR`` or the packaged ``expectations/``."""
    return _resolve(EXPECTATIONS_ENV, "expectations")
