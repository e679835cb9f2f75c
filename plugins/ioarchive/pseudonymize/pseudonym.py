"""Pseudonyms for the hashed variant (RELEASE_SPEC section 4) and the key that makes them.

``pseudonym(key, userid) = base64url(HMAC-SHA256(key, userid))`` without padding: 43
characters of ``[A-Za-z0-9_-]``. This module is the Python reference; Spark computes the same
value natively with ``hmac`` (see ``ioarchive.spark_pseudonym`` / the extraction job), and tests
compare the two.

The key is a secret: it is read from a file (0600) or the Airflow secrets backend (Variable
``ioarchive_pseudonym_key``), never from argv, and never logged. Artifacts record only
``key_id``, a name chosen by whoever rotates the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any

from ioarchive.errors import KeyUnavailable

PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
AIRFLOW_KEY_VARIABLE = "ioarchive_pseudonym_key"
AIRFLOW_KEY_ID_VARIABLE = "ioarchive_pseudonym_key_id"
MIN_KEY_BYTES = 32


def pseudonym(key: bytes, userid: str) -> str:
    """Return the 43-character pseudonym of ``userid`` under ``key``."""
    digest = hmac.new(key, userid.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def load_key_file(path: str | Path) -> bytes:
    """Read a key file: raw bytes, surrounding whitespace stripped. Refuses short keys."""
    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read pseudonymization key file {path}: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyUnavailable(f"pseudonymization key in {path} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def load_key_from_airflow() -> tuple[bytes, str]:
    """Key and key id from the Airflow secrets backend (Variables)."""
    from airflow.sdk import Variable  # lazy: only inside Airflow tasks

    try:
        key = Variable.get(AIRFLOW_KEY_VARIABLE)
    except Exception as exc:  # noqa: BLE001 - Airflow raises several types for a missing var
        raise KeyUnavailable(
            f"Airflow Variable {AIRFLOW_KEY_VARIABLE!r} is not set in the secrets backend; "
            "ask the integrity team for the release key"
        ) from exc
    key_id = Variable.get(AIRFLOW_KEY_ID_VARIABLE, default="default")
    key_bytes = key.encode("utf-8").strip()
    if len(key_bytes) < MIN_KEY_BYTES:
        raise KeyUnavailable(f"Airflow Variable {AIRFLOW_KEY_VARIABLE!r} is shorter than {MIN_KEY_BYTES} bytes")
    return key_bytes, key_id


def write_key_file(key: bytes, path: str | Path) -> Path:
    """Write ``key`` to ``path`` readable by the owner only (for handing to a Spark job)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return path

SSM_PREFIX = "ssm:"

def load_key_secret(reference: str, session: Any = None) -> bytes:
    """The pseudonymization key from a secret reference (for jobs on EMR Serverless).

    ``ssm:<name>``: an SSM SecureString parameter; otherwise a Secrets Manager secret id or ARN
    (``SecretBinary`` or ``SecretString``). Errors name the reference, never the value.
    """
    if session is None:
        import boto3

        session = boto3.session.Session()
    try:
        if reference.startswith(SSM_PREFIX):
            resp = session.client("ssm").get_parameter(Name=reference[len(SSM_PREFIX):], WithDecryption=True)
            raw: bytes = resp["Parameter"]["Value"].encode("utf-8")
        else:
            resp = session.client("secretsmanager").get_secret_value(SecretId=reference)
            raw = resp["SecretBinary"] if resp.get("SecretBinary") is not None else resp["SecretString"].encode("utf-8")
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; the message must stay key-free
        raise KeyUnavailable(f"cannot read the pseudonymization key from {reference}: {type(exc).__name__}") from None
    key = raw.strip()
    if len(key) < MIN_KEY_BYTES:
        raise KeyUnavailable(f"the pseudonymization key in {reference} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def load_key(key_file: str | None, key_id: str | None, key_secret: str | None = None) -> tuple[bytes, str]:
    """The key and its id, from the one source a step was given.

    ``key_secret`` (EMR Serverless: Secrets Manager or ``ssm:``), else ``key_file`` (a 0600 file
    the task wrote for a local or cluster job), else the Airflow secrets backend.
    """
    if key_file and key_secret:
        raise KeyUnavailable("give a key file or a key secret, not both")
    if (key_file or key_secret) and not key_id:
        raise KeyUnavailable("a key id is required with a key file or secret (it is recorded instead of the key)")
    if key_secret:
        return load_key_secret(key_secret), str(key_id)
    if key_file:
        return load_key_file(key_file), str(key_id)
    key, airflow_key_id = load_key_from_airflow()
    return key, key_id or airflow_key_id
