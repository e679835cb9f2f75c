"""Every DAG file loads without import errors, has tags, and every task retries.

Guards every DAG added to ``dags/`` (pattern from Astronomer's project template).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def load_dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def dag_problems(folder: Path) -> list[str]:
    """Import errors, DAGs without tags, and tasks without retries, as readable lines."""
    bag = load_dagbag(folder)
    problems = [f"import error in {path}: {err}" for path, err in bag.import_errors.items()]
    for dag_id, dag in bag.dags.items():
        if not dag.tags:
            problems.append(f"DAG {dag_id} has no tags")
        for task in dag.tasks:
            if not task.retries or task.retries < 1:
                problems.append(f"task {dag_id}.{task.task_id} has no retries")
    return problems


def test_dags_folder_loads_cleanly():
    assert dag_problems(DAGS_FOLDER) == []


def test_release_dag_is_present():
    bag = load_dagbag(DAGS_FOLDER)
    assert "io_release" in bag.dags, f"dags found: {sorted(bag.dags)}"


def test_integrity_check_catches_broken_untagged_and_retryless_dags(tmp_path):
    # DagBag's safe mode only parses files mentioning both "airflow" and "dag".
    (tmp_path / "broken.py").write_text("from airflow.sdk import DAG\nimport module_that_does_not_exist\n")
    (tmp_path / "sloppy.py").write_text(
        textwrap.dedent(
            """
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.empty import EmptyOperator

            with DAG(dag_id="sloppy", schedule=None):
                EmptyOperator(task_id="no_retries")
            """
        )
    )
    problems = dag_problems(tmp_path)
    assert any("broken.py" in p and "module_that_does_not_exist" in p for p in problems)
    assert "DAG sloppy has no tags" in problems
    assert "task sloppy.no_retries has no retries" in problems


# What parsing a DAG file imports (no Spark, GX or boto3) is checked in a fresh interpreter by
# tests/test_imports.py.


def test_retract_dag_reuses_the_release_build():
    """io_retract builds its version with io_release's very tasks (same ids, same order), not a copy."""
    bag = load_dagbag(DAGS_FOLDER)
    release, retract = bag.dags["io_release"], bag.dags["io_retract"]
    shared = ["extract", "pseudonymize", "plan_media", "pack_media", "finalize_media", "quality_gate", "render",
              "publication_signoff", "publish_member", "publish_public", "update_catalog"]
    for dag in (release, retract):
        for upstream, downstream in zip(shared, shared[1:], strict=False):
            if downstream != "publish_public":
                assert downstream in dag.get_task(upstream).downstream_task_ids or upstream == "publish_member", (
                    dag.dag_id, upstream, downstream)
    assert set(retract.task_ids) == {*shared, "validate_retraction", "retraction_signoff", "record_retraction",
                                     "withdraw", "notify_members"}
    assert retract.get_task("record_retraction").downstream_task_ids == {"extract", "withdraw"}
    assert {"publish_public", "publish_member", "update_catalog"} <= retract.get_task("withdraw").upstream_task_ids
    assert set(retract.params.keys()) == {"release_id", "account_ids", "reason", "reviewers"}
    assert "changelog" in release.params
