"""``ioarchive.resources``: the data folders, their overrides, and a zipped package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from ioarchive import resources

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"jobs": (resources.jobs_dir, resources.JOBS_ENV),
           "templates": (resources.templates_dir, resources.TEMPLATES_ENV),
           "expectations": (resources.expectations_dir, resources.EXPECTATIONS_ENV)}


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_default_is_the_repository_folder_through_the_package(name, monkeypatch):
    resolve, env = FOLDERS[name]
    monkeypatch.delenv(env, raising=False)
    found = resolve()
    assert found == Path(resources.__file__).parent / "_data" / name
    assert found.resolve() == (REPO / name).resolve()
    assert _listing(found) == _listing(REPO / name) and _listing(found)


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_environment_override_wins(name, monkeypatch, tmp_path):
    resolve, env = FOLDERS[name]
    monkeypatch.setenv(env, str(tmp_path))
    assert resolve() == tmp_path


def test_a_zipped_package_is_copied_to_a_real_folder(tmp_path):
    """Imported from a zip (zipimport), the folders are real copies that spark-submit can run."""
    archive = tmp_path / "ioarchive.zip"
    package = REPO / "plugins" / "ioarchive"
    with zipfile.ZipFile(archive, "w") as zf:
        for root, _dirs, files in os.walk(package, followlinks=True):
            for file in files:
                path = Path(root) / file
                if "__pycache__" not in path.parts:
                    zf.write(path, str(Path("ioarchive") / path.relative_to(package)))
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(archive)!r})\n"
        "import ioarchive\n"
        "from ioarchive import resources\n"
        "out = {'module': ioarchive.__file__}\n"
        "for name in ('jobs', 'templates', 'expectations'):\n"
        "    folder = getattr(resources, name + '_dir')()\n"
        "    assert folder == getattr(resources, name + '_dir')()  # copied once per process\n"
        "    out[name] = {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob('*')) if p.is_file()}\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", resources.JOBS_ENV, resources.TEMPLATES_ENV, resources.EXPECTATIONS_ENV}}
    proc = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["module"].startswith(str(archive))
    for name in FOLDERS:
        assert out[name] == {k: v.decode() for k, v in _listing(REPO / name).items()}, name
