"""Every IOARCHIVE_* setting is read in one module: Airflow Variable, then environment, then default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ioarchive import settings
from ioarchive.errors import ConfigurationError

PLUGINS = Path(__file__).resolve().parents[1] / "plugins" / "ioarchive"


def test_variable_then_environment_then_default(monkeypatch):
    variables: dict[str, str] = {}
    monkeypatch.setattr(settings, "airflow_variable", variables.get)
    monkeypatch.delenv("IOARCHIVE_REGISTRY_POKE_SECONDS", raising=False)
    assert settings.get_int("IOARCHIVE_REGISTRY_POKE_SECONDS") == 300
    monkeypatch.setenv("IOARCHIVE_REGISTRY_POKE_SECONDS", "60")
    assert settings.get_int("IOARCHIVE_REGISTRY_POKE_SECONDS") == 60
    variables["ioarchive_registry_poke_seconds"] = "5"
    assert settings.get_int("IOARCHIVE_REGISTRY_POKE_SECONDS") == 5
    # environment-only settings never ask Airflow (a Spark child has no Airflow context)
    variables["ioarchive_driver_memory"] = "64g"
    monkeypatch.setenv("IOARCHIVE_DRIVER_MEMORY", "2g")
    assert settings.get("IOARCHIVE_DRIVER_MEMORY") == "2g"


def test_errors_name_the_setting(monkeypatch):
    monkeypatch.setattr(settings, "airflow_variable", lambda name: None)
    monkeypatch.delenv("IOARCHIVE_PUBLIC_BUCKET", raising=False)
    with pytest.raises(ConfigurationError, match="IOARCHIVE_PUBLIC_BUCKET .*ioarchive_public_bucket"):
        settings.bucket_for("hashed")
    monkeypatch.setenv("IOARCHIVE_S3_RETRY_ATTEMPTS", "many")
    with pytest.raises(ConfigurationError, match="IOARCHIVE_S3_RETRY_ATTEMPTS='many'"):
        settings.get_int("IOARCHIVE_S3_RETRY_ATTEMPTS")
    with pytest.raises(ConfigurationError, match="not an ioarchive setting"):
        settings.get("IOARCHIVE_NO_SUCH_THING")


def test_no_module_reads_an_ioarchive_setting_from_the_environment_itself():
    """Only settings.py looks IOARCHIVE_* names up; the dev stack may still *set* them for children."""
    reads = re.compile(r"""(os\.environ(\.get)?[\[(]|getenv\()\s*["']IOARCHIVE_""")
    offenders = [f"{p.relative_to(PLUGINS)}:{n}" for p in sorted(PLUGINS.rglob("*.py")) if p.name != "settings.py"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if reads.search(line)]
    assert offenders == []


def test_every_setting_named_in_the_code_is_registered():
    names = set()
    for path in [*PLUGINS.rglob("*.py"), *(PLUGINS.parents[1] / "dags").glob("*.py")]:
        names |= set(re.findall(r'"(IOARCHIVE_[A-Z0-9_]+)"', path.read_text(encoding="utf-8")))
    names -= {n for n in names if n.endswith("_")}
    assert sorted(names - set(settings.SETTINGS)) == []
