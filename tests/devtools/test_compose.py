"""Static checks of the production-like stack (docker-compose.yaml, Dockerfile, .env.example).

No Docker engine runs where the suite runs, so the compose file is checked as data: every check
is a function ``check_*(compose, ...) -> list[str]`` returning the problems it found (empty when
fine). The real file must produce no problems, and a deliberately broken copy must produce the
expected ones, so a check that cannot fail is caught too. ``docker compose config`` is used as
well when a compose client is installed (skipped otherwise).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ioarchive.airflow import access
from ioarchive.devtools.stack import USER_ROLES

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"

EXPECTED_SERVICES = (
    "postgres", "minio", "minio-init", "spark-master", "spark-worker", "spark-connect", "airflow-init",
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
)
AIRFLOW_RUNTIME = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
# Where LocalExecutor runs the tasks, i.e. the process that needs connections, Variables and Spark.
TASK_RUNNER = "airflow-scheduler"
SPARK_MASTER_URL = "spark://spark-master:7077"
SPARK_REMOTE_URL = "sc://spark-connect:15002"
STAGING_VOLUME = "staging"
# Environment the release tasks cannot run without in production (no usable default in code).
REQUIRED_TASK_ENV = ("IOARCHIVE_SPARK_MASTER", "IOARCHIVE_PUBLIC_BUCKET", "IOARCHIVE_MEMBER_BUCKET",
                     "IOARCHIVE_STAGING_ROOT")
# ioarchive.devtools.stack writes these names for the embedded stack; it sets them, it does not read them.
NOT_READERS = ("stack.py",)

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|CREDENTIAL|(^|_)KEY($|_)")
URL_USERINFO = re.compile(r"://[^/\s:@]+:([^@\s]+)@")
JSON_SECRET = re.compile(r'"(password|secret|token|aws_secret_access_key|secret_key)"\s*:\s*"([^"]*)"', re.I)
REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?")
ANY_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


# --- helpers -------------------------------------------------------------------------------------

def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def one_shot_services(compose: dict[str, Any]) -> set[str]:
    """Services others wait for with ``service_completed_successfully`` (init jobs)."""
    names = set()
    for svc in services(compose).values():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            names |= {n for n, d in deps.items() if (d or {}).get("condition") == "service_completed_successfully"}
    return names


def code_texts(roots: tuple[str, ...] = ("plugins", "dags")) -> dict[str, str]:
    """Source of the library and DAGs (the code that reads configuration), by relative path."""
    texts = {}
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            if path.name not in NOT_READERS:
                texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    return texts


def _quoted(name: str, code: str) -> bool:
    return re.search(rf"""["']{re.escape(name)}["']""", code) is not None


# --- checks (each returns a list of problems) ----------------------------------------------------

def check_services(compose: dict[str, Any]) -> list[str]:
    return [f"service {name} is missing" for name in EXPECTED_SERVICES if name not in services(compose)]


def check_images_pinned(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        image = svc.get("image")
        if not image:
            if "build" not in svc:
                problems.append(f"{name}: neither image nor build")
            continue
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if not tag or tag == "latest" or "${" in tag:
            problems.append(f"{name}: image {image!r} is not pinned to an exact tag")
    return problems


def check_ports_loopback(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                ok = port.get("host_ip") in ("127.0.0.1", "::1")
            else:
                ok = str(port).startswith(("127.0.0.1:", "[::1]:"))
            if not ok:
                problems.append(f"{name}: port {port!r} is not bound to 127.0.0.1")
    return problems


def check_volumes_declared(compose: dict[str, Any]) -> list[str]:
    declared = set((compose.get("volumes") or {}).keys())
    problems = []
    for name, svc in services(compose).items():
        for vol in svc.get("volumes") or []:
            source = vol.get("source", "") if isinstance(vol, dict) else str(vol).split(":", 1)[0]
            if isinstance(vol, dict) and vol.get("type") not in (None, "volume"):
                continue
            if not source or source.startswith((".", "/", "~", "${")):
                continue  # bind mount (or anonymous volume)
            if source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared under top-level volumes")
    for required in ("postgres-data", "minio-data", STAGING_VOLUME):
        if required not in declared:
            problems.append(f"named volume {required!r} is not declared")
    return problems


def check_healthchecks(compose: dict[str, Any]) -> list[str]:
    one_shot = one_shot_services(compose)
    problems = []
    for name, svc in services(compose).items():
        if name in one_shot:
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        if not test or (svc.get("healthcheck") or {}).get("disable"):
            problems.append(f"{name}: long-running service without a healthcheck")
    return problems


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    all_services = services(compose)
    one_shot = one_shot_services(compose)
    problems = []
    for name, svc in all_services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on without conditions (use service_healthy / completed)")
            deps = {d: {} for d in deps}
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition")
            if dep not in all_services:
                problems.append(f"{name}: depends on unknown service {dep!r}")
                continue
            if condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends on {dep} with condition {condition!r}")
            if condition == "service_healthy" and not (all_services[dep].get("healthcheck") or {}).get("test"):
                problems.append(f"{name}: waits for {dep} healthy, but {dep} has no healthcheck")
    for init in one_shot:
        if all_services.get(init, {}).get("restart") not in (None, "no"):
            problems.append(f"{init}: one-shot service must not restart")
    return problems


def check_no_plaintext_secrets(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in services(compose).items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE") and not value.startswith("${"):
                problems.append(f"{name}: {key} holds a literal secret (use ${{VAR:?...}})")
            for match in URL_USERINFO.finditer(value):
                if not match.group(1).startswith("${"):
                    problems.append(f"{name}: {key} embeds a literal password in a URL")
            for match in JSON_SECRET.finditer(value):
                if not match.group(2).startswith("${"):
                    problems.append(f"{name}: {key} embeds a literal {match.group(1)} in JSON")
    return problems


def _variable_setting(name: str) -> bool:
    """A setting of ioarchive.settings that may be an Airflow Variable (its lower-case name)."""
    from ioarchive.settings import SETTINGS

    return name in SETTINGS and SETTINGS[name].variable


def check_env_read_by_code(compose: dict[str, Any], code: dict[str, str]) -> list[str]:
    """Every IOARCHIVE_* / AIRFLOW_CONN_* / AIRFLOW_VAR_* name set here is read by the code."""
    joined = "\n".join(code.values())
    problems = []
    for name, svc in services(compose).items():
        for key in environment(svc):
            if key.startswith("IOARCHIVE_") and not _quoted(key, joined):
                problems.append(f"{name}: env {key} is read nowhere in plugins/ or dags/")
            elif key.startswith("AIRFLOW_CONN_") and not _quoted(key[len("AIRFLOW_CONN_"):].lower(), joined):
                problems.append(f"{name}: {key} defines a connection id the code never uses")
            elif key.startswith("AIRFLOW_VAR_") and not _quoted(key[len("AIRFLOW_VAR_"):].lower(), joined) \
                    and not _variable_setting(key[len("AIRFLOW_VAR_"):]):
                problems.append(f"{name}: {key} defines a Variable the code never reads")
    return problems


def needed_by_code(code: dict[str, str]) -> tuple[set[str], set[str]]:
    """Connection ids and Variable names the library declares as constants."""
    joined = "\n".join(code.values())
    conns = set(re.findall(r"""^[A-Z0-9_]*CONN_ID\s*=\s*["']([a-z0-9_]+)["']""", joined, re.M))
    variables = set(re.findall(r"""^[A-Z0-9_]*VARIABLE\s*=\s*["']([a-z0-9_]+)["']""", joined, re.M))
    return conns, variables


def check_needs_provided(compose: dict[str, Any], code: dict[str, str]) -> list[str]:
    """The task runner gets every connection, Variable and environment value the DAG needs."""
    conns, variables = needed_by_code(code)
    env = environment(services(compose).get(TASK_RUNNER, {}))
    problems = [f"{TASK_RUNNER}: connection {c!r} not provided (AIRFLOW_CONN_{c.upper()})"
                for c in sorted(conns) if f"AIRFLOW_CONN_{c.upper()}" not in env]
    problems += [f"{TASK_RUNNER}: Variable {v!r} not provided (AIRFLOW_VAR_{v.upper()})"
                 for v in sorted(variables) if f"AIRFLOW_VAR_{v.upper()}" not in env]
    problems += [f"{TASK_RUNNER}: {k} not set" for k in REQUIRED_TASK_ENV if not env.get(k)]
    return problems


def check_spark_wiring(compose: dict[str, Any]) -> list[str]:
    """Airflow submits to the master; driver and executors see staging at the same path."""
    svcs = services(compose)
    problems = []
    for name in AIRFLOW_RUNTIME:
        master = environment(svcs.get(name, {})).get("IOARCHIVE_SPARK_MASTER")
        if master != SPARK_MASTER_URL:
            problems.append(f"{name}: IOARCHIVE_SPARK_MASTER is {master!r}, expected {SPARK_MASTER_URL}")
    if "7077" not in " ".join(map(str, svcs.get("spark-master", {}).get("command") or [])):
        problems.append("spark-master does not listen on 7077")
    if SPARK_MASTER_URL not in " ".join(map(str, svcs.get("spark-worker", {}).get("command") or [])):
        problems.append(f"spark-worker does not register with {SPARK_MASTER_URL}")
    # The Spark that outlives the tasks: the tasks are clients of spark-connect, which runs on the master.
    env = environment(svcs.get(TASK_RUNNER, {}))
    if (env.get("IOARCHIVE_SPARK_BACKEND"), env.get("IOARCHIVE_SPARK_REMOTE")) != ("connect", SPARK_REMOTE_URL):
        problems.append(f"{TASK_RUNNER}: Spark steps are not clients of {SPARK_REMOTE_URL} "
                        f"(IOARCHIVE_SPARK_BACKEND={env.get('IOARCHIVE_SPARK_BACKEND')!r}, "
                        f"IOARCHIVE_SPARK_REMOTE={env.get('IOARCHIVE_SPARK_REMOTE')!r})")
    connect_cmd = [str(a) for a in svcs.get("spark-connect", {}).get("command") or []]
    if ("org.apache.spark.sql.connect.service.SparkConnectServer" not in connect_cmd
            or SPARK_MASTER_URL not in connect_cmd or "spark.connect.grpc.binding.port=15002" not in connect_cmd):
        problems.append(f"spark-connect is not a Spark Connect server on {SPARK_MASTER_URL} listening on 15002")
    if "spark-connect" not in (svcs.get(TASK_RUNNER, {}).get("depends_on") or {}):
        problems.append(f"{TASK_RUNNER} does not wait for spark-connect")

    def staging_target(svc: dict[str, Any]) -> str | None:
        for vol in svc.get("volumes") or []:
            parts = str(vol).split(":")
            if parts[0] == STAGING_VOLUME:
                return parts[1]
        return None

    targets = {name: staging_target(svcs.get(name, {})) for name in (TASK_RUNNER, "spark-worker", "spark-connect")}
    if None in targets.values() or len(set(targets.values())) != 1:
        problems.append(f"staging volume not mounted at one path in driver and executors: {targets}")
    root = environment(svcs.get(TASK_RUNNER, {})).get("IOARCHIVE_STAGING_ROOT")
    if root != targets.get(TASK_RUNNER):
        problems.append(f"IOARCHIVE_STAGING_ROOT {root!r} is not the staging mount {targets.get(TASK_RUNNER)!r}")
    return problems


def check_env_example(compose_text: str, env_example_text: str) -> list[str]:
    """Every required ${VAR:?} has a placeholder in .env.example, with no real value in it."""
    compose_text = "\n".join(line for line in compose_text.splitlines() if not line.lstrip().startswith("#"))
    entries = dict(
        line.split("=", 1) for line in env_example_text.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and "=" in line
    )
    problems = [f".env.example lacks {var}" for var in sorted(set(REQUIRED_VAR.findall(compose_text)))
                if var not in entries]
    problems += [f".env.example: {k} has a value, not the CHANGE_ME placeholder"
                 for k, v in entries.items() if v.strip() != "CHANGE_ME"]
    used = set(ANY_VAR.findall(compose_text))
    problems += [f".env.example: {k} is not used by docker-compose.yaml" for k in entries if k not in used]
    return problems


def check_dockerfile_matches_lock(dockerfile_text: str, lock_text: str) -> list[str]:
    base = re.search(r"^FROM\s+apache/airflow:(\S+)", dockerfile_text, re.M)
    pinned = re.search(r"^apache-airflow==(\S+)$", lock_text, re.M)
    if not base or not pinned:
        return ["Dockerfile base apache/airflow:<tag> or apache-airflow==<version> in the lock not found"]
    tag, version = base.group(1), pinned.group(1)
    if tag != version and not tag.startswith(version + "-"):
        return [f"Dockerfile base apache/airflow:{tag} does not match apache-airflow=={version} in requirements.lock"]
    if "requirements.lock" not in dockerfile_text:
        return ["Dockerfile does not install requirements.lock"]
    return []


def check_access(compose: dict[str, Any]) -> list[str]:
    """The FAB auth manager everywhere, and airflow-init creating the local stack's users and roles."""
    svcs = services(compose)
    problems = []
    for name in (*AIRFLOW_RUNTIME, "airflow-init"):
        env = environment(svcs.get(name, {}))
        if env.get("AIRFLOW__CORE__AUTH_MANAGER") != access.AUTH_MANAGER:
            problems.append(f"{name}: auth manager is {env.get('AIRFLOW__CORE__AUTH_MANAGER')!r}, "
                            f"expected {access.AUTH_MANAGER}")
        problems += [f"{name}: {k} configures the simple auth manager" for k in env if "SIMPLE_AUTH_MANAGER" in k]
    init = svcs.get("airflow-init", {})
    env = environment(init)
    try:
        users = access.parse_users(str(env.get(access.USERS_ENV, "")))
    except ValueError as exc:
        return [*problems, f"airflow-init: {exc}"]
    if users != USER_ROLES:
        problems.append(f"airflow-init: {access.USERS_ENV} gives {users}, the local stack gives {USER_ROLES}")
    for user in users:
        value = str(env.get(access.password_env(user), ""))
        if not REQUIRED_VAR.search(value):
            problems.append(f"airflow-init: {access.password_env(user)} is not a required ${{VAR:?}} from .env")
    admins = [u for u, role in users.items() if role == access.ROLE_ADMIN]
    if len(admins) != 1:
        problems.append(f"airflow-init: {len(admins)} administrators ({admins}), expected exactly one")
    reviewers = [r.strip() for r in str(environment(svcs.get(TASK_RUNNER, {})).get("IOARCHIVE_REVIEWERS", "")).split(",")]
    problems += [f"default reviewer {r!r} does not have the role {access.ROLE_REVIEWER}"
                 for r in reviewers if users.get(r) != access.ROLE_REVIEWER]
    script = str((init.get("command") or [""])[-1])
    migrate, apply = script.find("airflow db migrate"), script.find("python -m ioarchive.airflow.access apply")
    if migrate < 0 or apply < migrate:
        problems.append("airflow-init: does not run `python -m ioarchive.airflow.access apply` after `airflow db migrate`")
    return problems


ALL_COMPOSE_CHECKS = (
    check_services, check_images_pinned, check_ports_loopback, check_volumes_declared,
    check_healthchecks, check_depends_on, check_no_plaintext_secrets, check_spark_wiring, check_access,
)


def all_problems(compose: dict[str, Any], code: dict[str, str]) -> list[str]:
    problems = [p for check in ALL_COMPOSE_CHECKS for p in check(compose)]
    return problems + check_env_read_by_code(compose, code) + check_needs_provided(compose, code)


# --- tests ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def code() -> dict[str, str]:
    return code_texts()


@pytest.mark.parametrize("check", ALL_COMPOSE_CHECKS, ids=lambda c: c.__name__)
def test_compose_check(compose, check):
    assert check(compose) == []


def test_env_names_are_read_by_code(compose, code):
    assert check_env_read_by_code(compose, code) == []


def test_code_needs_are_provided(compose, code):
    conns, variables = needed_by_code(code)
    # The scan must find what the DAG uses, or the check below proves nothing.
    assert {"ioarchive_s3", "ioarchive_registry"} <= conns
    assert {"ioarchive_pseudonym_key"} <= variables  # settings (staging root...) are checked as env below
    assert check_needs_provided(compose, code) == []


def test_connections_are_valid_json(compose):
    env = environment(services(compose)[TASK_RUNNER])
    s3 = json.loads(env["AIRFLOW_CONN_IOARCHIVE_S3"])
    assert s3["conn_type"] == "aws" and s3["extra"]["endpoint_url"] == "http://minio:9000"
    registry = json.loads(env["AIRFLOW_CONN_IOARCHIVE_REGISTRY"])
    assert registry["conn_type"] == "postgres" and registry["host"] == "postgres"


def embedded_scripts(compose: dict[str, Any]) -> dict[str, str]:
    """Shell scripts inside the compose file, as the container sees them (``$$`` -> ``$``)."""
    svcs = services(compose)
    return {
        "minio-init": svcs["minio-init"]["command"][0].replace("$$", "$"),
        "airflow-init": svcs["airflow-init"]["command"][-1].replace("$$", "$"),
        "postgres-init": compose["configs"]["postgres-init"]["content"].replace("$$", "$"),
    }


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("name", ["minio-init", "airflow-init", "postgres-init"])
def test_embedded_scripts_parse(compose, name):
    result = subprocess.run(["bash", "-n"], input=embedded_scripts(compose)[name], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _heredoc(script: str, start: str, end: str) -> str:
    body = script.split(start, 1)[1]
    return body.split("\n" + end + "\n", 1)[0].split("\n", 1)[1]


def test_minio_policies_render_to_the_intended_json(compose):
    """The heredocs, expanded by the shell, are valid policies granting exactly what they should."""
    script = embedded_scripts(compose)["minio-init"]
    rendered = {}
    for name in ("public.json", "app.json"):
        body = _heredoc(script, f"cat > /tmp/{name} <<EOF", "EOF")
        out = subprocess.run(["sh", "-c", f"cat <<EOF\n{body}\nEOF\n"], capture_output=True, text=True,
                             env={"PUB": "pub-bucket", "MEM": "mem-bucket", "PATH": "/usr/bin:/bin"}, check=True)
        rendered[name] = json.loads(out.stdout)
    public = rendered["public.json"]["Statement"]
    anonymous = [r for st in public if st["Principal"] == {"AWS": ["*"]} for r in st["Resource"]]
    assert sorted(anonymous) == ["arn:aws:s3:::pub-bucket", "arn:aws:s3:::pub-bucket/catalog/*",
                                 "arn:aws:s3:::pub-bucket/releases/*"]
    assert public[1]["Condition"] == {"StringLike": {"s3:prefix": ["releases/*", "catalog/*"]}}
    assert not any("mem-bucket" in r for r in anonymous)
    app_actions = {a for st in rendered["app.json"]["Statement"] for a in st["Action"]}
    assert "s3:PutObject" in app_actions and not any(a.startswith(("s3:Delete", "s3:Put" + "Bucket")) for a in app_actions)
    assert 'mc encrypt set sse-s3 "local/$MEM"' in script and 'mc anonymous set none "local/$MEM"' in script


def test_compose_users_have_the_local_stacks_roles(compose):
    """airflow-init creates the same users with the same single role as the local stack."""
    env = environment(services(compose)["airflow-init"])
    users = access.parse_users(env[access.USERS_ENV])
    assert users == USER_ROLES
    assert users["trigger_user"] == access.ROLE_INTEGRITY and users["oncall_user"] == access.ROLE_ONCALL
    assert [u for u, role in users.items() if role == access.ROLE_ADMIN] == ["admin"]
    assert set(env["IOARCHIVE_REVIEWERS"].split(",")) <= {u for u, r in users.items() if r == access.ROLE_REVIEWER}
    assert check_access(compose) == []


def test_env_example_covers_required_secrets():
    assert check_env_example(COMPOSE_FILE.read_text(), ENV_EXAMPLE.read_text()) == []


def test_dockerfile_base_matches_lock():
    assert check_dockerfile_matches_lock(DOCKERFILE.read_text(), LOCK.read_text()) == []


def test_dotenv_is_gitignored():
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert result.returncode == 0, ".env must be gitignored (it holds the stack's secrets)"


def test_checks_catch_a_broken_compose(compose, code):
    """Each kind of mistake in a broken copy is reported by the checks."""
    broken = copy.deepcopy(compose)
    svcs = broken["services"]
    svcs["minio"]["image"] = "minio/minio:latest"
    svcs["postgres"]["image"] = "postgres"
    svcs["minio"]["ports"] = ["0.0.0.0:9000:9000", "9001:9001"]
    svcs["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    svcs[TASK_RUNNER]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "postgresql://airflow:hunter2@postgres/airflow"
    svcs[TASK_RUNNER]["environment"]["AIRFLOW_CONN_IOARCHIVE_S3"] = '{"conn_type": "aws", "password": "hunter2"}'
    svcs[TASK_RUNNER]["environment"]["IOARCHIVE_NOT_READ_ANYWHERE"] = "x"
    svcs[TASK_RUNNER]["environment"]["AIRFLOW_VAR_NOBODY_READS_ME"] = "x"
    del svcs[TASK_RUNNER]["environment"]["AIRFLOW_CONN_IOARCHIVE_REGISTRY"]
    svcs["airflow-triggerer"]["environment"]["IOARCHIVE_SPARK_MASTER"] = "local[*]"
    svcs[TASK_RUNNER]["environment"]["IOARCHIVE_SPARK_REMOTE"] = "sc://localhost:15002"
    svcs["airflow-triggerer"]["depends_on"] = {"postgress": {"condition": "service_healthy"}}
    del svcs["spark-worker"]["healthcheck"]
    svcs["spark-worker"]["volumes"] = ["staging-typo:/data/staging"]
    del svcs["airflow-dag-processor"]
    svcs["airflow-scheduler"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    svcs["airflow-init"]["environment"][access.USERS_ENV] = "admin:Admin,trigger_user:Admin,reviewer_a:ioarchive_reviewer"
    svcs["airflow-init"]["environment"]["ONCALL_USER_PASSWORD"] = "hunter2hunter2"

    problems = all_problems(broken, code)
    expected = [
        "service airflow-dag-processor is missing",
        "minio: image 'minio/minio:latest' is not pinned",
        "postgres: image 'postgres' is not pinned",
        "minio: port '0.0.0.0:9000:9000' is not bound to 127.0.0.1",
        "minio: port '9001:9001' is not bound to 127.0.0.1",
        "postgres: POSTGRES_PASSWORD holds a literal secret",
        f"{TASK_RUNNER}: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN embeds a literal password in a URL",
        f"{TASK_RUNNER}: AIRFLOW_CONN_IOARCHIVE_S3 embeds a literal password in JSON",
        f"{TASK_RUNNER}: env IOARCHIVE_NOT_READ_ANYWHERE is read nowhere",
        f"{TASK_RUNNER}: AIRFLOW_VAR_NOBODY_READS_ME defines a Variable the code never reads",
        f"{TASK_RUNNER}: connection 'ioarchive_registry' not provided",
        "airflow-triggerer: IOARCHIVE_SPARK_MASTER is 'local[*]'",
        f"{TASK_RUNNER}: Spark steps are not clients of sc://spark-connect:15002",
        "airflow-triggerer: depends on unknown service 'postgress'",
        "spark-worker: long-running service without a healthcheck",
        "spark-worker: volume 'staging-typo' is not declared",
        "staging volume not mounted at one path in driver and executors",
        "airflow-scheduler: AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS configures the simple auth manager",
        f"airflow-init: {access.USERS_ENV} gives",
        "airflow-init: 2 administrators",
        "default reviewer 'reviewer_b' does not have the role",
    ]
    missing = [e for e in expected if not any(p.startswith(e) for p in problems)]
    assert missing == [], f"not reported: {missing}\nreported: {problems}"
    assert all_problems(compose, code) == []


def test_checks_catch_broken_side_files():
    assert check_dockerfile_matches_lock("FROM apache/airflow:3.2.0-python3.11\n", "apache-airflow==3.3.2\n")
    assert check_dockerfile_matches_lock("FROM apache/airflow:3.3.2\n", "apache-airflow==3.3.2\n") == [
        "Dockerfile does not install requirements.lock"
    ]
    problems = check_env_example("x: ${A_SECRET:?set it}\ny: ${B:-1}\n", "A_SECRET=real-value\nUNUSED=CHANGE_ME\n")
    assert problems == [
        ".env.example: A_SECRET has a value, not the CHANGE_ME placeholder",
        ".env.example: UNUSED is not used by docker-compose.yaml",
    ]
    assert check_env_example("x: ${A_SECRET:?set it}\n", "") == [".env.example lacks A_SECRET"]


def _compose_client() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]):
            try:
                ok = subprocess.run([*argv, "version"], capture_output=True, timeout=20).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                return argv
    return None


def test_docker_compose_config(tmp_path):
    """The compose client itself accepts the file with .env.example, and refuses it without secrets."""
    client = _compose_client()
    if client is None:
        pytest.skip("no docker compose client installed (`docker compose version` fails)")
    base = [*client, "-f", str(COMPOSE_FILE), "--project-directory", str(REPO)]
    ok = subprocess.run([*base, "--env-file", str(ENV_EXAMPLE), "config", "--quiet"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = subprocess.run([*base, "--env-file", str(empty), "config", "--quiet"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "in .env" in refused.stderr
