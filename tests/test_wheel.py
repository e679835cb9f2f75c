"""The built wheel works on its own: package data inside, commands, DAG parsing, one Spark job.

The wheel is built from a copy of the source tree (so a stale ``build/`` cannot leak into it)
and installed into a fresh venv. The venv borrows the third-party packages of the running
interpreter's environment through a ``.pth`` to a folder of links that leaves out everything
of ioarchive (its dist-info, the editable ``.pth``), and runs with no PYTHONPATH, from a folder
outside the repository: so the only ``ioarchive`` it can import is the installed one, which
every check below asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCE_ENTRIES = ("pyproject.toml", "README.md", "plugins", "jobs", "templates", "expectations")
DATA_FOLDERS = ("jobs", "templates", "expectations")
RELEASE_ID = "synthetic_202403"


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd[:3]} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def _clean_env(home: Path) -> dict[str, str]:
    """This process's environment without anything that points at the repository's code or data."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_HOME",
                        "IOARCHIVE_JOBS_DIR", "IOARCHIVE_TEMPLATES", "IOARCHIVE_EXPECTATIONS_DIR"}
           and not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def _shadow_site_packages(target: Path) -> Path:
    """Links to every entry of this environment's site-packages except ioarchive's."""
    source = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in source.iterdir():
        name = entry.name
        if name.startswith(("ioarchive", "__editable__")) or name.endswith(".pth") or name == "__pycache__":
            continue
        (target / name).symlink_to(entry)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv folder, work folder, env) with the freshly built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCE_ENTRIES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, src / name)
    env = _clean_env(work)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-w", str(dist), str(src)], env, work)
    (wheel,) = dist.glob("ioarchive-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, work)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env, work).stdout.strip())
    shadow = _shadow_site_packages(work / "borrowed-site-packages")
    (site / "borrowed.pth").write_text(f"{shadow}\n", encoding="utf-8")
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check",
          str(wheel)], env, work)
    return python, venv, work, env, wheel


def test_wheel_carries_the_data_folders_as_files(installed):
    *_, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    for folder in DATA_FOLDERS:
        expected = sorted(str(p.relative_to(REPO)) for p in (REPO / folder).rglob("*")
                          if p.is_file() and "__pycache__" not in p.parts)
        packed = sorted(name.removeprefix("ioarchive/_data/") for name in infos
                        if name.startswith(f"ioarchive/_data/{folder}/"))
        assert packed == expected, folder
        for name in packed:
            info = infos[f"ioarchive/_data/{name}"]
            assert (info.external_attr >> 16) & 0o170000 == 0o100000, f"{name} is not a regular file"
            with zipfile.ZipFile(wheel) as archive:
                assert archive.read(info) == (REPO / name).read_bytes(), name


def test_installed_copy_is_the_one_imported(installed):
    python, venv, work, env, _ = installed
    probe = (
        "import json, ioarchive\n"
        "from ioarchive import resources\n"
        "print(json.dumps({'file': ioarchive.__file__, 'jobs': str(resources.jobs_dir()),"
        " 'templates': str(resources.templates_dir()), 'expectations': str(resources.expectations_dir())}))\n"
    )
    found = json.loads(_run([str(python), "-c", probe], env, work).stdout)
    for key, value in found.items():
        path = Path(value)
        assert path.is_relative_to(venv), f"{key}: {value} is not inside the fresh venv {venv}"
        assert not path.is_symlink(), f"{key}: {value} is a symlink"
    assert sorted(p.name for p in Path(found["jobs"]).glob("*.py")) == ["extract.py", "pseudonymize.py", "quality.py"]
    assert (Path(found["templates"]) / "catalog" / "index.html.j2").is_file()
    assert (Path(found["expectations"]) / "posts_hashed.json").read_bytes() == \
        (REPO / "expectations" / "posts_hashed.json").read_bytes()


def test_console_script_help(installed):
    python, venv, work, env, _ = installed
    script = venv / "bin" / "ioarchive"
    top = _run([str(script), "--help"], env, work).stdout
    assert "usage: ioarchive" in top and "validate" in top and "pack-media" in top
    validate = _run([str(script), "validate", "--help"], env, work).stdout
    assert "usage: ioarchive validate" in validate


def test_dagbag_imports_the_dags_with_the_installed_package(installed):
    python, venv, work, env, _ = installed
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},"
        " 'dags': sorted(bag.dags), 'ioarchive': sys.modules['ioarchive'].__file__}))\n"
    )
    out = json.loads(_run([str(python), "-c", probe], env, work).stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert "io_release" in out["dags"]
    assert Path(out["ioarchive"]).is_relative_to(venv)


def test_extract_job_runs_from_the_installed_package(installed):
    """``jobs/extract.py`` from the wheel, under spark-submit, on a small generated campaign."""
    python, venv, work, env, _ = installed
    campaign, staging = work / "campaign", work / "staging"
    summary = json.loads(_run([str(venv / "bin" / "ioarchive"), "generate", "--out", str(campaign), "--seed", "7",
                               "--accounts", "15", "--posts", "100", "--media-bytes", "20KiB",
                               "--release-month", "2024-03"], env, work).stdout)
    assert summary["posts"] == 100 and summary["injected"] == 0

    job_env = {**env, "PYSPARK_PYTHON": str(python),
               "IOARCHIVE_SPARK_SUBMIT": str(Path(sys.executable).parent / "spark-submit")}
    probe = (
        "import json, sys\n"
        "from ioarchive.spark.session import run_job, spark_submit_command\n"
        f"args = ['--campaign', {str(campaign)!r}, '--staging', {str(staging)!r}, '--release-id', {RELEASE_ID!r}]\n"
        "script = spark_submit_command('extract', args)[-len(args) - 1]\n"
        "proc = run_job('extract', args)\n"
        "print(json.dumps({'script': script, 'stdout': proc.stdout}))\n"
    )
    out = json.loads(_run([str(python), "-c", probe], job_env, work, timeout=240).stdout.strip().splitlines()[-1])
    script = Path(out["script"])
    assert script.is_relative_to(venv) and script.name == "extract.py" and not script.is_symlink()

    books = json.loads((staging / "reconciliation.json").read_text(encoding="utf-8"))
    printed = [line for line in out["stdout"].splitlines() if line.startswith('{"reconciliation"')]
    assert len(printed) == 1 and json.loads(printed[0])["reconciliation"] == books
    raw_posts = sum(1 for line in (campaign / "posts.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    assert books["release_id"] == RELEASE_ID and books["balanced"] is True
    tables = books["tables"]
    assert tables["accounts"] == {"read": 15, "released": 15, "excluded": {}, "quarantined": {}}
    assert tables["posts"]["read"] == raw_posts == 100
    assert tables["posts"]["excluded"] == {"deleted": summary["deleted_posts"]}
    assert tables["posts"]["released"] == raw_posts - summary["deleted_posts"]
    assert tables["media"]["read"] == summary["media_files"]
    assert (staging / "work" / "unhashed" / "posts").is_dir()
