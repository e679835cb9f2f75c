"""The job arguments of a Spark step are built and parsed in one place, and round-trip exactly."""

from __future__ import annotations

import pytest
from ioarchive.errors import ConfigurationError
from ioarchive.spark.job_settings import STEPS, StepSettings, job_args, parser

FULL = StepSettings(staging_dir="/s/x_202102/v1", release_id="x_202102", campaign_dir="/c/x", threshold=4000,
                    csv_part_max_bytes=1234, key_id="k1", key_file="/run/key")


@pytest.mark.parametrize("step", STEPS)
def test_what_the_dag_sends_is_what_the_job_parses(step):
    parsed = StepSettings.from_argv(step, FULL.to_argv(step))
    assert parsed.staging_dir == FULL.staging_dir and parsed.release_id == FULL.release_id
    expect = {
        "extract": {"campaign_dir": "/c/x", "csv_part_max_bytes": 1234, "key_file": None, "threshold": 5000},
        "pseudonymize": {"campaign_dir": None, "csv_part_max_bytes": 1234, "key_file": "/run/key", "key_id": "k1",
                         "threshold": 4000},
        "quality": {"campaign_dir": "/c/x", "key_file": None, "threshold": 4000},
    }[step]
    assert {k: getattr(parsed, k) for k in expect} == expect


def test_the_key_itself_is_never_an_argument():
    assert "--key" not in job_args("pseudonymize", {**FULL.to_dict(), "key_file": None})
    argv = FULL.with_key(key_file=None, key_secret="ssm:/ioarchive/key").to_argv("pseudonymize")
    assert argv[argv.index("--key-secret") + 1] == "ssm:/ioarchive/key" and "--key-file" not in argv


def test_mappings_are_checked():
    assert StepSettings.of(FULL.to_dict()) == FULL
    with pytest.raises(ConfigurationError, match="unknown Spark step settings"):
        StepSettings.of({**FULL.to_dict(), "stagingdir": "/typo"})
    with pytest.raises(ConfigurationError, match="the extract step needs campaign_dir"):
        StepSettings(staging_dir="/s", release_id="x_202102").to_argv("extract")
    with pytest.raises(ConfigurationError, match="unknown Spark step"):
        parser("publish")
