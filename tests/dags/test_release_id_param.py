"""The DAG's ``release_id`` Param accepts exactly the ids ``RELEASE_ID_RE`` accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ioarchive.request.campaign import RELEASE_ID_RE, InvalidRelease, check_release_id

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "io_release.py"

IDS = [
    "iran_202102", "x_200001", "a_b_c_199912", "slug9_202110", "_202101",
    "iran_202100", "iran_202113", "_202100", "_202113", "iran_202199", "iran_2021", "iran_2021021",
    "Iran_202102", "iran-202102", "iran 202102", "iran_20210a", "iran_202102 ", "", "202102",
]


@pytest.fixture(scope="module")
def release_id_param():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["io_release"].params.get_param("release_id")


def _library_accepts(release_id: str) -> bool:
    try:
        check_release_id(release_id)
    except InvalidRelease:
        return False
    return True


def _param_accepts(param, release_id: str) -> bool:
    from airflow.sdk.definitions.param import ParamValidationError

    try:
        param.resolve(release_id)
    except ParamValidationError:
        return False
    return True


@pytest.mark.parametrize("release_id", IDS)
def test_param_and_library_agree(release_id_param, release_id):
    library = _library_accepts(release_id)
    assert library == bool(RELEASE_ID_RE.match(release_id))
    assert _param_accepts(release_id_param, release_id) == library
    # JSON Schema's ``pattern`` is a search, like jsonschema's own check
    assert bool(re.search(release_id_param.schema["pattern"], release_id)) == library


def test_months_00_and_13_are_refused(release_id_param):
    # "_2021MM" has no slug before the separator: refused by both rules whatever the month
    for release_id in ("_202100", "_202113", "iran_202100", "iran_202113"):
        assert not _library_accepts(release_id)
        assert not _param_accepts(release_id_param, release_id)
    for release_id in ("iran_202112", "a_202101", "a__202101"):
        assert _library_accepts(release_id) and _param_accepts(release_id_param, release_id)
