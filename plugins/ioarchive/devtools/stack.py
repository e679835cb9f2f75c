"""The local stack: Airflow (four components) and an S3 server on loopback, for demos and e2e tests.

``python -m ioarchive.devtools.stack up|down|status`` (``make up`` / ``make down``). ``up`` starts, each
in its own process group so ``down`` can stop it and all its children:

- an S3 server on 127.0.0.1 (the public and member buckets are created in it): by default
  ``ioarchive.devtools.s3server``, moto with every change written through to ``s3/`` in the
  state folder, so what was published survives ``down``/``up`` and even a ``kill -9``
  (``make clean-s3`` wipes it); ``s3_store="memory"`` runs plain in-memory ``moto_server``
  (the tests: a fresh, empty S3 per stack);
- a Spark Connect server on 127.0.0.1 (``ioarchive.spark.connect``): every Spark step of every
  run is its client (``IOARCHIVE_SPARK_BACKEND=connect``), so no step starts a JVM of its own;
- ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with the
  LocalExecutor, a small parallelism (2 cores), the repo's ``dags/``, SQLite metadata by default
  or PostgreSQL with ``--metadata-db`` / ``IOARCHIVE_METADATA_DB``;
- the FAB auth manager with one named user per job, each with only its role's permissions
  (``ioarchive.airflow.access``): ``trigger_user`` (integrity team: triggers and reads),
  ``reviewer_a`` and ``reviewer_b`` (read and answer the gates assigned to them),
  ``oncall_user`` (reads, clears and reruns tasks) and ``admin`` (connections, Variables);
- connections (``ioarchive_s3``, ``ioarchive_registry``) and Variables (pseudonym key, staging
  root) handed to Airflow as ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` environment variables.

All state lives under one folder (default ``var/stack/`` in the repo): ``stack.json`` (ports,
pids, URLs), the Airflow home, logs per component, the registry database, the staging root, the
S3 data folder ``s3/``.
``down`` stops exactly the process groups whose pids ``up`` recorded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioarchive import settings
from ioarchive.airflow import access

REPO = Path(__file__).resolve().parents[3]
DEFAULT_STATE_DIR = REPO / "var" / "stack"
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
TRIGGER_USER = "trigger_user"
REVIEWERS: tuple[str, ...] = ("reviewer_a", "reviewer_b")
ONCALL_USER = "oncall_user"
ADMIN_USER = "admin"
USER_ROLES: dict[str, str] = {
    TRIGGER_USER: access.ROLE_INTEGRITY,
    **{reviewer: access.ROLE_REVIEWER for reviewer in REVIEWERS},
    ONCALL_USER: access.ROLE_ONCALL,
    ADMIN_USER: access.ROLE_ADMIN,
}
"""Each user of the stack and their one role (docker-compose.yaml gives the same)."""
USERS: tuple[str, ...] = tuple(USER_ROLES)
PUBLIC_BUCKET = "ioarchive-public"
MEMBER_BUCKET = "ioarchive-members"
S3_KEY = "testing"  # moto accepts any credentials; these never leave loopback


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says which component and where its log is."""


def free_port() -> int:
    """A TCP port free on loopback right now, below the kernel's ephemeral range.

    A port handed out by the kernel (bind to 0) is from the ephemeral range, where any other
    process (a Spark py4j gateway, an HTTP client) may grab it before our server binds it; a
    random port below that range is only taken by someone who asks for it explicitly.
    """
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin() -> Path:
    """The folder holding ``airflow`` and ``moto_server`` of this interpreter's venv."""
    return Path(sys.executable).parent


@dataclass
class Stack:
    """One local stack, described by its state folder (``stack.json`` inside once started)."""

    state_dir: Path = DEFAULT_STATE_DIR
    api_port: int = 0
    s3_port: int = 0
    spark_connect_port: int = 0
    # The scheduler's and triggerer's log servers (Airflow's fixed 8793/8794 would make two
    # stacks on one machine, e.g. `make up` beside `make test`, fight over one port).
    log_server_ports: tuple[int, int] = (0, 0)
    metadata_db: str = ""
    registry_poke_seconds: int = 15
    s3_store: str = "folder"
    """``folder``: S3 kept in :attr:`s3_data_dir` across restarts; ``memory``: plain moto_server."""
    pids: dict[str, int] = field(default_factory=dict)
    jwt_secret: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    # --- paths and URLs --------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def staging_root(self) -> Path:
        return self.state_dir / "staging"

    @property
    def s3_data_dir(self) -> Path:
        """Where the persistent S3 server keeps buckets and objects (``s3_store="folder"``)."""
        return self.state_dir / "s3"

    @property
    def registry_db(self) -> Path:
        return self.state_dir / "registry.db"

    @property
    def key_file(self) -> Path:
        return self.state_dir / "pseudonym.key"

    @property
    def passwords_file(self) -> Path:
        """User name -> password of the stack's users (0600; Airflow keeps only hashes)."""
        return self.state_dir / "airflow_passwords.json"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def spark_remote(self) -> str:
        """The stack's Spark Connect server (``IOARCHIVE_SPARK_REMOTE`` of its tasks)."""
        return f"sc://127.0.0.1:{self.spark_connect_port}"

    @property
    def sql_alchemy_conn(self) -> str:
        if self.metadata_db:
            url = self.metadata_db
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg2://" + url[len("postgresql://"):]
            return url
        return f"sqlite:///{self.state_dir / 'airflow.db'}"

    # --- persistence -----------------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: str | Path = DEFAULT_STATE_DIR) -> Stack:
        """The stack described by ``state_dir/stack.json`` (raises StackError if never started)."""
        path = Path(state_dir) / "stack.json"
        if not path.exists():
            raise StackError(f"no stack state at {path}: run `python -m ioarchive.devtools.stack up` first")
        data = json.loads(path.read_text())
        return cls(
            state_dir=Path(state_dir),
            api_port=data["api_port"],
            s3_port=data["s3_port"],
            spark_connect_port=data.get("spark_connect_port", 0),
            log_server_ports=tuple(data.get("log_server_ports") or (0, 0)),  # type: ignore[arg-type]
            metadata_db=data.get("metadata_db", ""),
            registry_poke_seconds=data.get("registry_poke_seconds", 15),
            s3_store=data.get("s3_store", "memory"),  # stacks started before the folder store had moto_server
            pids={k: int(v) for k, v in data.get("pids", {}).items()},
            jwt_secret=data.get("jwt_secret", ""),
            extra_env=data.get("extra_env", {}),
        )

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "api_port": self.api_port,
            "s3_port": self.s3_port,
            "spark_connect_port": self.spark_connect_port,
            "log_server_ports": list(self.log_server_ports),
            "metadata_db": self.metadata_db,
            "registry_poke_seconds": self.registry_poke_seconds,
            "s3_store": self.s3_store,
            "pids": self.pids,
            "jwt_secret": self.jwt_secret,
            "extra_env": self.extra_env,
            "base_url": self.base_url,
            "s3_endpoint": self.s3_endpoint,
            "spark_remote": self.spark_remote,
            "staging_root": str(self.staging_root),
            "public_bucket": PUBLIC_BUCKET,
            "member_bucket": MEMBER_BUCKET,
        }
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)

    # --- configuration ---------------------------------------------------------------------
    def pseudonym_key(self) -> str:
        """The stack's pseudonymization key (random, created once, 0600)."""
        if not self.key_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return self.key_file.read_text().strip()

    def s3_connection(self) -> dict[str, Any]:
        return {
            "conn_type": "aws",
            "login": S3_KEY,
            "password": S3_KEY,
            "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
        }

    def registry_connection(self) -> dict[str, Any]:
        return {"conn_type": "sqlite", "host": str(self.registry_db)}

    def env(self) -> dict[str, str]:
        """Environment of every component (and of clients that want the same view)."""
        env = dict(os.environ)
        # Keep settings of an outer Airflow (e.g. the test session's) from leaking in.
        for key in list(env):
            if key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")):
                del env[key]
        env.update(
            {
                "PATH": f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                # plugins/ioarchive_browser_plugin.py (the release browser); .airflowignore skips the package
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # Every component imports ioarchive (DAG file, auth manager) from this repo's plugins/.
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "plugins"), env.get("PYTHONPATH", "")) if p),
                "AIRFLOW__CORE__AUTH_MANAGER": access.AUTH_MANAGER,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__API__SECRET_KEY": self.jwt_secret + "-flask",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
                "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_server_ports[1]),
                "AIRFLOW_CONN_IOARCHIVE_S3": json.dumps(self.s3_connection()),
                "AIRFLOW_CONN_IOARCHIVE_REGISTRY": json.dumps(self.registry_connection()),
                "AIRFLOW_VAR_IOARCHIVE_PSEUDONYM_KEY": self.pseudonym_key(),
                "AIRFLOW_VAR_IOARCHIVE_PSEUDONYM_KEY_ID": "local-stack",
                "AIRFLOW_VAR_IOARCHIVE_STAGING_ROOT": str(self.staging_root),
                "IOARCHIVE_STAGING_ROOT": str(self.staging_root),
                "IOARCHIVE_PUBLIC_BUCKET": PUBLIC_BUCKET,
                "IOARCHIVE_MEMBER_BUCKET": MEMBER_BUCKET,
                "IOARCHIVE_REGISTRY_POKE_SECONDS": str(self.registry_poke_seconds),
                "IOARCHIVE_LOCAL_MASTER": env.get("IOARCHIVE_LOCAL_MASTER", "local[2]"),
                "IOARCHIVE_DRIVER_MEMORY": env.get("IOARCHIVE_DRIVER_MEMORY", "1g"),
                "IOARCHIVE_SHUFFLE_PARTITIONS": env.get("IOARCHIVE_SHUFFLE_PARTITIONS", "4"),
                "IOARCHIVE_SPARK_BACKEND": "connect",
                "IOARCHIVE_SPARK_REMOTE": self.spark_remote,
                "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_KEY,
                "AWS_DEFAULT_REGION": "us-east-1",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        env.pop("IOARCHIVE_SNS_TOPIC_ARN", None)
        env.update(self.extra_env)
        return env

    def passwords(self) -> dict[str, str]:
        """User name -> password of the stack's named users."""
        return json.loads(self.passwords_file.read_text())

    def _write_passwords(self) -> None:
        """Fix the users' passwords (random once, kept across restarts of the same state folder)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        existing = json.loads(self.passwords_file.read_text()) if self.passwords_file.exists() else {}
        for user in USERS:
            existing.setdefault(user, secrets.token_urlsafe(12))
        fd = os.open(self.passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(existing) + "\n")

    def _apply_access(self, env: dict[str, str]) -> None:
        """Roles and users in the metadata DB (FAB), as docker-compose's airflow-init does."""
        passwords = self.passwords()
        users = {user: {"role": role, "password": passwords[user]} for user, role in USER_ROLES.items()}
        users_file = self.state_dir / "airflow_users.json"
        fd = os.open(users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(users, fh)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "ioarchive.airflow.access", "apply", "--users-json", str(users_file)],
                env=env,
                cwd=self.state_dir,
                capture_output=True,
                text=True,
            )
        finally:
            users_file.unlink(missing_ok=True)
        (self.log_dir / "access.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise StackError(f"creating Airflow roles and users failed; see {self.log_dir / 'access.log'}")

    # --- processes -------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.state_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: `down` kills it with its children
            )
        self.pids[name] = proc.pid
        self.save()
        return proc.pid

    def alive(self) -> dict[str, bool]:
        """Which recorded process groups still have a live leader."""
        result = {}
        for name, pid in self.pids.items():
            try:
                os.killpg(pid, 0)
                result[name] = True
            except (ProcessLookupError, PermissionError):
                result[name] = False
        return result

    def up(self, timeout: float = 180.0) -> Stack:
        """Start everything and wait until the API reports every component healthy."""
        if self.state_file.exists():
            previous = Stack.load(self.state_dir)
            if any(previous.alive().values()):
                raise StackError(
                    f"a stack is already running from {self.state_dir} (pids {previous.pids}); "
                    "run `python -m ioarchive.devtools.stack down` first"
                )
        if self.metadata_db.startswith("postgresql"):
            try:
                import asyncpg  # noqa: F401 - Airflow 3 derives a postgresql+asyncpg URL for its async engine
            except ImportError:
                raise StackError(
                    "a PostgreSQL metadata DB needs the asyncpg driver (Airflow 3's async engine): "
                    "install it from requirements.lock (pip install asyncpg)"
                ) from None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self.api_port = self.api_port or free_port()
        self.s3_port = self.s3_port or free_port()
        self.spark_connect_port = self.spark_connect_port or free_port()
        if not all(self.log_server_ports):
            self.log_server_ports = (free_port(), free_port())
        self.jwt_secret = self.jwt_secret or secrets.token_urlsafe(32)
        self.pids = {}
        self.save()
        self._write_passwords()
        env = self.env()
        try:
            self._spawn("s3", self.s3_argv(), env)
            if env.get("IOARCHIVE_SPARK_BACKEND") == "connect":  # extra_env may choose another backend
                self._start_spark_connect(env)  # its JVM starts while Airflow migrates
            migrate = subprocess.run(
                [str(venv_bin() / "airflow"), "db", "migrate"],
                env=env,
                cwd=self.state_dir,
                capture_output=True,
                text=True,
            )
            (self.log_dir / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
            if migrate.returncode != 0:
                raise StackError(
                    f"airflow db migrate failed for {self.sql_alchemy_conn.split('@')[-1]}; "
                    f"see {self.log_dir / 'db-migrate.log'}"
                )
            self._apply_access(env)
            for component in COMPONENTS:
                argv = [str(venv_bin() / "airflow"), component]
                if component == "api-server":
                    argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
                self._spawn(component, argv, env)
            self.wait_s3(timeout=60)
            self._ensure_buckets()
            self._ensure_registry()
            self.wait_healthy(timeout=timeout)
            if "spark-connect" in self.pids:
                self._wait_spark_connect(timeout=timeout)
        except BaseException:
            self.down()
            raise
        return self

    def s3_argv(self) -> list[str]:
        """The S3 server's command line: the folder-backed server, or in-memory moto_server."""
        if self.s3_store == "memory":
            return [str(venv_bin() / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)]
        if self.s3_store != "folder":
            raise StackError(f"unknown s3_store {self.s3_store!r}: use 'folder' or 'memory'")
        return [sys.executable, "-m", "ioarchive.devtools.s3server", "--data", str(self.s3_data_dir),
                "-H", "127.0.0.1", "-p", str(self.s3_port)]

    # --- the Spark Connect server --------------------------------------------------------
    SPARK_CONNECT_MEMORY = "2g"
    """Driver memory of the stack's Spark Connect server: it hosts the steps of concurrent runs."""

    def _start_spark_connect(self, env: dict[str, str]) -> int:
        """Spawn the stack's Spark Connect server (master ``IOARCHIVE_LOCAL_MASTER``; log ``spark-connect.log``)."""
        from ioarchive.spark.session import connect_server_command

        server_env = {**env, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
        cmd = connect_server_command(self.spark_connect_port, env["IOARCHIVE_LOCAL_MASTER"], {
            "spark.driver.memory": self.SPARK_CONNECT_MEMORY,
            "spark.log.level": env.get("IOARCHIVE_SPARK_LOG_LEVEL") or "WARN",
        })
        return self._spawn("spark-connect", cmd, server_env)

    def _wait_spark_connect(self, timeout: float) -> None:
        """Wait until the Spark Connect server accepts connections (its JVM start: 10-40 s on 2 cores)."""
        from ioarchive.spark.connect import reachable

        deadline = time.monotonic() + timeout
        while not reachable(self.spark_remote, timeout=1.0):
            if not self.alive().get("spark-connect", False):
                raise StackError(f"the Spark Connect server exited during start-up; see {self.log_dir / 'spark-connect.log'}")
            if time.monotonic() > deadline:
                raise StackError(f"the Spark Connect server does not answer at {self.spark_remote} after "
                                 f"{timeout:.0f} s; see {self.log_dir / 'spark-connect.log'}")
            time.sleep(0.5)

    def _wait_s3(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.s3_endpoint}/", timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.3)
        raise StackError(f"S3 server did not answer on {self.s3_endpoint}; see {self.log_dir / 's3.log'}")

    def wait_s3(self, timeout: float = 30.0) -> None:
        """Wait until the S3 server answers; fail early, naming its log, if it exited (bad data folder)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "s3" in self.pids and _exited(self.pids["s3"]):
                raise StackError(f"the S3 server exited at start-up; see {self.log_dir / 's3.log'}")
            try:
                self._wait_s3(timeout=1.0)
                return
            except StackError:
                continue
        self._wait_s3(timeout=0.1)

    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
            region_name="us-east-1",
        )

    def _ensure_buckets(self) -> None:
        """Public and member buckets; the member one encrypted and blocked from public access."""
        from ioarchive.publish.store import ensure_buckets

        ensure_buckets(self.s3_client(), PUBLIC_BUCKET, MEMBER_BUCKET)

    def _ensure_registry(self) -> None:
        """Migrate the investigations registry (SQLite in the state folder) so the DAG can read it."""
        from ioarchive.gates.registry import Registry

        with Registry(self.registry_url) as registry:
            registry.migrate()

    @property
    def registry_url(self) -> str:
        return f"sqlite:///{self.registry_db}"

    def set_investigation(self, campaign_id: str, investigation_id: str, status: str, by: str) -> None:
        """Record an investigation's status in the stack's registry (demo and tests)."""
        from ioarchive.gates.registry import Registry

        with Registry(self.registry_url) as registry:
            registry.set_status(campaign_id, investigation_id, status, by)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as resp:
            return json.loads(resp.read())

    def wait_healthy(self, timeout: float = 180.0) -> dict[str, Any]:
        """Poll ``/api/v2/monitor/health`` until every component is healthy."""
        deadline = time.monotonic() + timeout
        last: Any = "no answer"
        while time.monotonic() < deadline:
            dead = [name for name, ok in self.alive().items() if not ok]
            if dead:
                raise StackError(
                    f"stack component(s) {', '.join(dead)} exited during start-up; "
                    f"see {', '.join(str(self.log_dir / (n + '.log')) for n in dead)}"
                )
            try:
                last = self.health()
                wanted = ("metadatabase", "scheduler", "dag_processor", "triggerer")
                if all((last.get(k) or {}).get("status") == "healthy" for k in wanted):
                    return last
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(1.0)
        raise StackError(f"Airflow at {self.base_url} not healthy after {timeout:.0f} s: {last}; logs in {self.log_dir}")

    def wait_scheduler_saw(self, run_id: str, task_id: str, state: str, timeout: float = 300.0) -> None:
        """Wait until the scheduler has processed the executor event that left ``task_id`` in ``state``.

        Airflow 3.3 races on a loaded machine: a gate answered, or a rescheduled sensor poked
        again, before the scheduler has processed the executor event of the task's previous exit
        ("parked for input", "rescheduled") is taken for a task killed externally and marked
        UP_FOR_RETRY (on PostgreSQL the sensor case once crashed the scheduler loop). Reviewers
        answer minutes later in real life; the demo and tests, which answer at once, wait for
        the scheduler's log line first.
        """
        pattern = re.compile(
            rf"TaskInstance Finished: dag_id=[^,]+, task_id={re.escape(task_id)}, run_id={re.escape(run_id)}, "
            rf"[^\n]*?state={re.escape(state)}\b"
        )
        log_file = self.log_dir / "scheduler.log"
        deadline = time.monotonic() + timeout
        while not (log_file.exists() and pattern.search(log_file.read_text(errors="replace"))):
            if time.monotonic() > deadline:
                raise StackError(f"the scheduler never logged {task_id} of {run_id} as {state} in {log_file}")
            time.sleep(0.5)

    def down(self, grace: float = 20.0) -> list[str]:
        """Stop exactly the process groups recorded by ``up``; returns their names."""
        stopped = []
        # Airflow runs each task in a session of its own ("airflow worker -- <ti>", and its Spark
        # child): collect the process groups of every descendant before anything is killed.
        extra_groups = _descendant_groups(set(self.pids.values())) - set(self.pids.values())
        for name, pid in list(self.pids.items()):
            try:
                os.killpg(pid, signal.SIGTERM)
                stopped.append(name)
            except ProcessLookupError:
                continue
        for pgid in extra_groups:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (any(self.alive().values()) or _groups_alive(extra_groups)):
            time.sleep(0.2)
        for pgid in [*self.pids.values(), *extra_groups]:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in self.pids.values():
            try:
                os.waitpid(pid, os.WNOHANG)  # reap our own children (tests run `up` in-process)
            except ChildProcessError:
                pass
        self.pids = {}
        if self.state_file.exists():
            self.save()
        return stopped


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (reaped here; a zombie still answers ``kill 0``)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: ask the kernel whether it still exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return done == pid


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _descendant_groups(roots: set[int]) -> set[int]:
    """Process groups of ``roots`` and of all their descendants (Linux /proc)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _pgid) in table.items():
        children.setdefault(ppid, []).append(pid)
    groups: set[int] = set()
    todo = [pid for pid in table if table[pid][1] in roots]  # every member of the recorded groups
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        groups.add(table[pid][1])
        todo.extend(children.get(pid, []))
    return groups


def _groups_alive(groups: set[int]) -> bool:
    for pgid in groups:
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


class ApiError(RuntimeError):
    """A REST call to Airflow failed; carries the HTTP status and Airflow's explanation."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class AirflowClient:
    """Just enough of Airflow's REST API v2 to drive a release as named users.

    Each call names the user it acts as; tokens come from ``/auth/token`` with that user's
    password (FAB auth manager), so ``triggering_user_name`` and ``responded_by_user`` in
    Airflow are real names: the four-eyes rule can be exercised and audited.
    """

    def __init__(self, base_url: str, passwords: dict[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        self._passwords = passwords
        self._tokens: dict[str, str] = {}

    @classmethod
    def for_stack(cls, stack: Stack) -> AirflowClient:
        return cls(stack.base_url, stack.passwords())

    def token(self, user: str) -> str:
        if user not in self._tokens:
            body = {"username": user, "password": self._passwords[user]}
            self._tokens[user] = self._call("POST", "/auth/token", body, token=None)["access_token"]
        return self._tokens[user]

    def _call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        attempts = 3 if method == "GET" else 1  # reads are safe to repeat on a busy machine
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    raw = resp.read()
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")
                raise ApiError(method, path, exc.code, detail) from None
            except (TimeoutError, ConnectionError):
                if attempt == attempts - 1:
                    raise
                time.sleep(2.0)
        return json.loads(raw) if raw else None

    def call(self, method: str, path: str, user: str, body: Any = None) -> Any:
        return self._call(method, path, body, token=self.token(user))

    # --- DAGs and runs ---------------------------------------------------------------------
    def wait_for_dag(self, dag_id: str, user: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; fail with its import error if any."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.call("GET", f"/api/v2/dags/{dag_id}", user)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                errors = self.call("GET", "/api/v2/importErrors", user)
                raise StackError(f"DAG {dag_id} not loaded after {timeout:.0f} s; import errors: {errors}")
            time.sleep(1.0)

    def unpause(self, dag_id: str, user: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", user, {"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any], user: str) -> dict[str, Any]:
        body = {"logical_date": None, "dag_run_id": run_id, "conf": conf}
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", user, body)

    def run(self, dag_id: str, run_id: str, user: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", user)

    def task_states(self, dag_id: str, run_id: str, user: str) -> dict[str, str | None]:
        """``task_id`` (``task_id[i]`` for mapped instances) -> state."""
        data = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000", user)
        states: dict[str, str | None] = {}
        for ti in data["task_instances"]:
            key = ti["task_id"] if ti.get("map_index", -1) == -1 else f"{ti['task_id']}[{ti['map_index']}]"
            states[key] = ti["state"]
        return states

    def task_instance(self, dag_id: str, run_id: str, task_id: str, user: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", user)

    def hitl_details(self, dag_id: str, run_id: str, user: str) -> list[dict[str, Any]]:
        data = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails", user)
        return list(data.get("hitl_details", []))

    def answer(
        self, dag_id: str, run_id: str, task_id: str, user: str, option: str, comment: str = ""
    ) -> dict[str, Any]:
        """Answer a gate as ``user`` (``option``: Approve or Reject)."""
        body = {"chosen_options": [option], "params_input": {"comment": comment} if comment else {}}
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        return self.call("PATCH", path, user, body)

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], user: str, timeout: float = 300.0
    ) -> str:
        """Wait until ``task_id`` is in one of ``states``; raise if the run ends first."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.task_states(dag_id, run_id, user).get(task_id)
            if state in states:
                return str(state)
            run_state = self.run(dag_id, run_id, user)["state"]
            if run_state in ("success", "failed"):
                raise StackError(
                    f"run {run_id} ended {run_state} while waiting for {task_id} to be in {sorted(states)} "
                    f"(it is {state}): {self.task_states(dag_id, run_id, user)}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"{task_id} of {run_id} still {state} after {timeout:.0f} s")
            time.sleep(1.0)

    def wait_run(self, dag_id: str, run_id: str, user: str, timeout: float = 600.0) -> str:
        """Wait until the run is finished; returns ``success`` or ``failed``."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id, user)["state"]
            if state in ("success", "failed"):
                return str(state)
            if time.monotonic() > deadline:
                raise StackError(
                    f"run {run_id} still {state} after {timeout:.0f} s: {self.task_states(dag_id, run_id, user)}"
                )
            time.sleep(2.0)

    def task_log(self, dag_id: str, run_id: str, task_id: str, user: str, try_number: int = 1) -> str:
        """Plain text of a task try's log (for failure messages in tests and the demo)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        data = self.call("GET", path, user)
        content = data.get("content", "") if isinstance(data, dict) else data
        if isinstance(content, list):
            return "\n".join(str(c.get("event", c)) if isinstance(c, dict) else str(c) for c in content)
        return str(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ioarchive.devtools.stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where the stack keeps its state")
    parser.add_argument("--port", type=int, default=settings.get_int("IOARCHIVE_API_PORT"))
    parser.add_argument("--s3-port", type=int, default=settings.get_int("IOARCHIVE_S3_PORT"))
    parser.add_argument(
        "--metadata-db",
        default=settings.get("IOARCHIVE_METADATA_DB") or "",
        help="PostgreSQL URL for the Airflow metadata DB (default: SQLite in the state folder)",
    )
    parser.add_argument("--registry-poke-seconds", type=int, default=15)
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    if args.action == "up":
        stack = Stack(
            state_dir=state_dir,
            api_port=args.port,
            s3_port=args.s3_port,
            metadata_db=args.metadata_db,
            registry_poke_seconds=args.registry_poke_seconds,
        )
        try:
            stack.up()
        except StackError as exc:
            print(f"stack up failed: {exc}", file=sys.stderr)
            return 1
        users = stack.passwords()
        print(f"Airflow UI   {stack.base_url}  users (name / password / role):")
        for user, role in USER_ROLES.items():
            print(f"  {user:14s} {users[user]:18s} {role}")
        print(f"S3 endpoint  {stack.s3_endpoint}  buckets {PUBLIC_BUCKET}, {MEMBER_BUCKET}")
        print(f"Spark        {stack.spark_remote}  (Spark Connect server running every Spark step)")
        print(f"State        {stack.state_dir}  (logs in {stack.log_dir})")
        return 0
    try:
        stack = Stack.load(state_dir)
    except StackError as exc:
        print(str(exc), file=sys.stderr)
        return 0 if args.action == "down" else 1
    if args.action == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    alive = stack.alive()
    for name, ok in alive.items():
        print(f"{name:14s} pid {stack.pids[name]:>7d}  {'running' if ok else 'exited'}")
    try:
        print(json.dumps(stack.health(), indent=2))
    except OSError as exc:
        print(f"api-server at {stack.base_url} does not answer: {exc}")
    return 0 if alive and all(alive.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
