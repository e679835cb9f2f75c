"""The one error hierarchy of a release, and which errors a retry can heal.

Every error a stage raises on purpose is a :class:`ReleaseError`. Those that a retry cannot fix
also carry the :class:`NotRetryable` marker: bad input, a rejected or bypassed gate, a missing key,
a bad media plan or manifest, a failed quality gate, a refused publication, a wrong setting. The
Airflow task bodies fail such errors at once (try 1, no back-off), with the message the on-call
engineer needs; everything else (a lost worker, an S3 or database hiccup, a Spark child killed)
is retried by Airflow. See docs/runbook.md for what to do with each.

Spark steps run in a child process: a NotRetryable error there is reported to the parent by the
exit code :data:`EXIT_NOT_RETRYABLE`, which the parent turns into :class:`SparkStepRejected`.
"""

from __future__ import annotations

EXIT_NOT_RETRYABLE = 65  # sysexits EX_DATAERR: the input data was incorrect
"""Exit code of a Spark step whose failure a retry cannot fix (see ioarchive.spark.steps)."""


class ReleaseError(Exception):
    """Base of every error ioarchive raises on purpose; the message says what failed and what to do."""


class NotRetryable:
    """Marker: a retry gives the same failure; a person must change the input, a decision or a setting."""


def is_retryable(exc: BaseException) -> bool:
    """False for errors marked NotRetryable (anywhere in the chain of causes)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, NotRetryable):
            return False
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return True


# --- configuration and input ----------------------------------------------------------------

class ConfigurationError(ReleaseError, NotRetryable, ValueError):
    """A setting is missing or malformed; the message names the setting and where to set it."""


class InvalidRelease(ReleaseError, NotRetryable, ValueError):
    """The request or the campaign folder cannot become a release; the message says why."""


class MissingStageOutput(ReleaseError, NotRetryable, FileNotFoundError):
    """An earlier stage's output is missing from the staging folder: clear that stage's task, not this one."""


class KeyUnavailable(ReleaseError, NotRetryable):
    """The pseudonymization key is missing or unusable (message never contains the key)."""


# --- gates ------------------------------------------------------------------------------------

class GateFailed(ReleaseError, NotRetryable):
    """A gate decision that must stop the release (the message names the user and the reason)."""


class GateRejected(GateFailed):
    """A reviewer chose Reject."""


class FourEyesViolation(GateFailed):
    """The user who triggered the run answered its gate."""


class RegistryError(ReleaseError):
    """The investigations registry cannot be reached or is not migrated (retried: databases recover)."""


class QualityGateFailed(ReleaseError, NotRetryable):
    """An expectation suite failed: retrying cannot help, the data must change."""


class SummaryError(ReleaseError, NotRetryable):
    """A quality summary is missing, unreadable or records no checksums: rerun the quality gate."""


class StagedFilesChanged(ReleaseError, NotRetryable):
    """Files the quality gate read changed while it ran: find the writer, then rerun the gate."""


# --- books, media, manifest -------------------------------------------------------------------

class ReconciliationError(ReleaseError, NotRetryable):
    """The reconciliation file is missing, malformed or would stop balancing."""


class MediaPlanError(ReleaseError, NotRetryable):
    """The media plan cannot be made or read; the message says which release/variant and what to do."""


class MediaDiskFullError(ReleaseError, NotRetryable):
    """No room to write an archive; the message names the release, the archive and the space needed.

    Not retried: the space does not come back by waiting; free it (runbook "Disk full") and clear.
    """

    def __init__(self, message: str, *, archive: str = "", needed: int = 0, free: int = 0) -> None:
        # defaults: a process pool re-creates the exception from its message, then restores the fields
        super().__init__(message)
        self.archive = archive
        self.needed = needed
        self.free = free


class ManifestError(ReleaseError, NotRetryable):
    """The staging folder cannot be described by a manifest; the message says what to rerun."""


# --- publication ------------------------------------------------------------------------------

class PublishRefused(ReleaseError, NotRetryable):
    """Publication was refused before anything was uploaded; the message says why and what to do."""


class PublishConflict(PublishRefused):
    """The version already exists with different content: a change is a new version."""


class PublishFailed(ReleaseError):
    """An upload or its verification failed; no manifest was written, a rerun resumes."""


class StoreError(ReleaseError):
    """An object store call failed; the message names the bucket and key."""


# --- Spark ------------------------------------------------------------------------------------

class SparkJobFailed(ReleaseError):
    """A Spark step's process or job run failed (a lost worker heals on retry); names the step and log tail."""


class SparkStepRejected(SparkJobFailed, NotRetryable):
    """A Spark step stopped on an error a retry cannot fix (its own message is in the log tail)."""


# --- comparing versions -----------------------------------------------------------------------

class DiffError(ReleaseError, NotRetryable):
    """Two versions cannot be compared (no manifest, unreadable or incomplete version, wrong variant)."""


# --- after publication (RELEASE_SPEC 8) ----------------------------------------------------------

class RetractionRefused(ReleaseError, NotRetryable):
    """A retraction request that cannot be carried out (release not published, accounts not in it)."""


class WithdrawalError(ReleaseError):
    """A withdrawal left objects behind or could not write its record (retried: S3 trouble)."""
