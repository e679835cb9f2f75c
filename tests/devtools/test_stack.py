"""The local stack's configuration and process handling, without starting Airflow.

The end-to-end module starts the real stack; these tests pin what makes it safe on a shared
machine: named users (four eyes), loopback only, the execution API on the chosen port, a
small parallelism, and ``down`` stopping whole process groups (children included).
"""

from __future__ import annotations

import json
import os
import stat
import time

from ioarchive.devtools.stack import PUBLIC_BUCKET, USER_ROLES, USERS, Stack, free_port


def test_env_names_users_binds_loopback_and_matches_ports(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")  # an outer setting must not leak
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING_ELSE", "sqlite:///x")
    stack = Stack(state_dir=tmp_path, api_port=23456, s3_port=23457, jwt_secret="s", log_server_ports=(23458, 23459))
    env = stack.env()
    # Log servers on the stack's own ports (two stacks on one machine must not share 8793).
    assert (env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"], env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]) \
        == ("23458", "23459")
    stack.save()
    assert Stack.load(tmp_path).log_server_ports == (23458, 23459)
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in env
    assert "AIRFLOW_CONN_SOMETHING_ELSE" not in env
    # FAB auth manager, one role per user; only the administrator is an Airflow admin.
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "ioarchive.airflow.auth_manager.IoarchiveFabAuthManager"
    assert USER_ROLES == {"trigger_user": "ioarchive_integrity", "reviewer_a": "ioarchive_reviewer",
                          "reviewer_b": "ioarchive_reviewer", "oncall_user": "ioarchive_oncall", "admin": "Admin"}
    assert env["PYTHONPATH"].split(os.pathsep)[0].endswith("/plugins")  # this repo's ioarchive
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:23456/execution/"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow.db'}"
    s3 = json.loads(env["AIRFLOW_CONN_IOARCHIVE_S3"])
    assert s3["extra"]["endpoint_url"] == "http://127.0.0.1:23457"
    assert json.loads(env["AIRFLOW_CONN_IOARCHIVE_REGISTRY"]) == {"conn_type": "sqlite", "host": str(tmp_path / "registry.db")}
    assert env["IOARCHIVE_PUBLIC_BUCKET"] == PUBLIC_BUCKET
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    # The key is random, at least 32 bytes, owner-only, and stable across calls.
    key = env["AIRFLOW_VAR_IOARCHIVE_PSEUDONYM_KEY"]
    assert len(key) >= 32 and stack.env()["AIRFLOW_VAR_IOARCHIVE_PSEUDONYM_KEY"] == key
    assert stat.S_IMODE(os.stat(stack.key_file).st_mode) == 0o600


def test_postgres_url_gets_the_psycopg2_driver(tmp_path):
    stack = Stack(state_dir=tmp_path, metadata_db="postgresql://root@127.0.0.1:5432/ioarchive_x")
    assert stack.sql_alchemy_conn == "postgresql+psycopg2://root@127.0.0.1:5432/ioarchive_x"


def test_passwords_are_fixed_before_start_and_kept(tmp_path):
    stack = Stack(state_dir=tmp_path)
    stack._write_passwords()
    first = stack.passwords()
    assert set(first) == set(USERS) and all(len(p) >= 12 for p in first.values())
    stack._write_passwords()
    assert stack.passwords() == first
    assert stat.S_IMODE(os.stat(stack.passwords_file).st_mode) == 0o600


def test_free_port_is_below_the_ephemeral_range():
    port = free_port()
    assert 20000 <= port <= 32000


def test_down_stops_exactly_the_recorded_process_groups_with_their_children(tmp_path):
    stack = Stack(state_dir=tmp_path, api_port=1, s3_port=2)
    # A parent with a child in its group, and a child in a session of its own (as Airflow runs
    # each task): both must go.
    script = "sleep 300 & echo $! > child.pid; setsid sleep 301 & echo $! > task.pid; wait"
    pid = stack._spawn("fake", ["sh", "-c", script], env=dict(os.environ))
    deadline = time.monotonic() + 10
    while not all((tmp_path / f).exists() and (tmp_path / f).read_text().strip() for f in ("child.pid", "task.pid")):
        assert time.monotonic() < deadline, "the fake component did not start its children"
        time.sleep(0.05)
    child = int((tmp_path / "child.pid").read_text())
    task = int((tmp_path / "task.pid").read_text())
    while os.getpgid(task) != task and time.monotonic() < deadline:  # setsid runs after $! is known
        time.sleep(0.05)
    assert os.getpgid(task) == task != pid
    assert Stack.load(tmp_path).pids == {"fake": pid}

    loaded = Stack.load(tmp_path)
    assert loaded.down(grace=5) == ["fake"]
    for p in (pid, child, task):
        deadline = time.monotonic() + 5
        while _exists(p) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _exists(p), f"process {p} survived down()"
    assert Stack.load(tmp_path).pids == {}


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_s3_is_kept_in_the_state_folder_unless_memory_is_asked(tmp_path):
    stack = Stack(state_dir=tmp_path, api_port=1, s3_port=23458)
    assert stack.s3_store == "folder"
    argv = stack.s3_argv()
    assert argv[1:3] == ["-m", "ioarchive.devtools.s3server"]
    assert argv[argv.index("--data") + 1] == str(tmp_path / "s3") and argv[-1] == "23458"
    stack.save()
    assert Stack.load(tmp_path).s3_store == "folder"  # `down` then `up` finds the same folder
    memory = Stack(state_dir=tmp_path, s3_port=23459, s3_store="memory")
    assert memory.s3_argv()[0].endswith("moto_server") and memory.s3_argv()[-1] == "23459"
