"""Where each step of a release reads and writes inside the staging folder.

Every step takes the staging folder of one release and finds its inputs and outputs here, so
the DAG, the CLI, the Spark jobs and the tests never build these paths by hand.

Layout::

    <staging>/
      reconciliation.json            exact counts per table (extract)
      quarantine/records.jsonl       rejected raw records: source file, line, reason, record
      quarantine/media.jsonl         media rejected while packing (tampered, escaping paths)
      work/<variant>/accounts/       Spark Parquet, internal (extract / pseudonymize)
      work/<variant>/posts/
      work/<variant>/media/          released media: media_key, tweetid, userid (pseudonym in
                                     hashed), kind, source_path, bytes, sha256; never published
      work/<variant>/files.json      rows and counts of the table files written to release/
      work/unhashed/stats.json       release statistics as counted by extraction (internal)
      work/media_plan.json           archive plan (pack-media)
      validation/<variant>/          GX results and Data Docs
      signoffs.json                  who approved which gate, when (DAG)
      request.json                   the validated trigger form (validate_request)
      retractions.json               accounts retracted from the release (registry, before extract)
      release/<variant>/             exactly what is published as releases/<id>/v<N>/
        README.md, manifest.json, SHA256SUMS
        <id>_users_csv_<variant>.zip, <id>_tweets_csv_<variant>[_partNNN].zip
        parquet/users.parquet, parquet/tweets/, parquet/media_index.parquet
        media/<archives>.zip, media_index.csv
        stats.json, charts/<chart>.svg   release statistics and their charts
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ioarchive.schema import VARIANTS


@dataclass(frozen=True)
class StagingLayout:
    """Paths of one release's staging folder."""

    root: Path
    release_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def for_version(cls, staging_root: str | Path, release_id: str, version: int) -> StagingLayout:
        """The staging folder of one release version: ``<staging root>/<release_id>/v<N>``."""
        return cls(Path(staging_root) / release_id / f"v{int(version)}", release_id)

    # --- whole-release files -------------------------------------------------------------
    @property
    def reconciliation(self) -> Path:
        return self.root / "reconciliation.json"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def quarantine_records(self) -> Path:
        return self.quarantine_dir / "records.jsonl"

    @property
    def quarantine_media(self) -> Path:
        return self.quarantine_dir / "media.jsonl"

    @property
    def signoffs(self) -> Path:
        return self.root / "signoffs.json"

    @property
    def request(self) -> Path:
        """The run's validated form (validate_request): how a later version is rebuilt (io_retract)."""
        return self.root / "request.json"

    @property
    def retractions(self) -> Path:
        """Accounts the registry retracted from this release (written before extraction reads it)."""
        return self.root / "retractions.json"

    # --- internal work tables ------------------------------------------------------------
    def work_table(self, variant: str, table: str) -> Path:
        """Internal Spark Parquet of ``table`` (accounts, posts) for ``variant``."""
        _check_variant(variant)
        return self.root / "work" / variant / table

    def work_dir(self, variant: str) -> Path:
        """Everything internal to one variant (work tables, scratch, media bookkeeping)."""
        _check_variant(variant)
        return self.root / "work" / variant

    def work_scratch(self, variant: str, name: str) -> Path:
        """A scratch folder of a writer (``tables.building``, ``parsed.building``), removed when done."""
        return self.work_dir(variant) / name

    def work_files(self, variant: str) -> Path:
        """JSON written by the table writers: each release file's rows, and table counts."""
        return self.work_dir(variant) / "files.json"

    def media_plan_members(self, variant: str) -> Path:
        """The planner's member lists, one JSON Lines file per archive."""
        return self.work_dir(variant) / "media_plan"

    def media_results(self, variant: str) -> Path:
        """The packers' per-archive results."""
        return self.work_dir(variant) / "media_archives"

    def media_files_json(self, variant: str) -> Path:
        """The packer's summary of released media files, for the renderer."""
        return self.work_dir(variant) / "media_files.json"

    def media_archives_json(self, variant: str) -> Path:
        """The packer's summary of archives, for the renderer."""
        return self.work_dir(variant) / "media_archives.json"

    @property
    def media_plan_lock(self) -> Path:
        return self.root / "work" / ".media_plan.lock"

    def spark_session_record(self, step: str) -> Path:
        """The Spark Connect session of a running step, so that its retry can stop what a killed try left."""
        return self.root / "work" / f".spark_connect_{step}.session"

    @property
    def validation_scratch(self) -> Path:
        """Where the quality gate unpacks CSV zips while it validates them."""
        return self.root / "validation" / "_csv_scratch"

    def work_stats(self, variant: str) -> Path:
        """Release statistics as counted by extraction (``unhashed``; internal, never published)."""
        _check_variant(variant)
        return self.root / "work" / variant / "stats.json"

    @property
    def media_plan(self) -> Path:
        return self.root / "work" / "media_plan.json"

    def validation_dir(self, variant: str) -> Path:
        _check_variant(variant)
        return self.root / "validation" / variant

    def validation_summary(self, variant: str) -> Path:
        """The quality gate's verdict for a variant (``summary.json``)."""
        return self.validation_dir(variant) / "summary.json"

    @property
    def catalog_dir(self) -> Path:
        """Where the public catalog is rendered before upload."""
        return self.root / "catalog"

    # --- the publishable release folder --------------------------------------------------
    def release_dir(self, variant: str) -> Path:
        _check_variant(variant)
        return self.root / "release" / variant

    def users_csv_zip(self, variant: str) -> Path:
        return self.release_dir(variant) / f"{self.release_id}_users_csv_{variant}.zip"

    def tweets_csv_zip(self, variant: str, part: int | None = None) -> Path:
        suffix = "" if part is None else f"_part{part:03d}"
        return self.release_dir(variant) / f"{self.release_id}_tweets_csv_{variant}{suffix}.zip"

    def parquet_dir(self, variant: str) -> Path:
        return self.release_dir(variant) / "parquet"

    def media_dir(self, variant: str) -> Path:
        return self.release_dir(variant) / "media"

    def media_index_csv(self, variant: str) -> Path:
        return self.media_dir(variant) / "media_index.csv"

    def media_archive_name(self, series: str, variant: str, number: int) -> str:
        """``<id>_tweet_media_<variant>_001.zip`` or ``<id>_profile_media_<variant>_001.zip``."""
        if series not in ("tweet", "profile"):
            raise ValueError(f"unknown media series {series!r}; expected 'tweet' or 'profile'")
        _check_variant(variant)
        return f"{self.release_id}_{series}_media_{variant}_{number:03d}.zip"

    def release_stats(self, variant: str) -> Path:
        """``stats.json``: the published release statistics of ``variant``."""
        return self.release_dir(variant) / "stats.json"

    def charts_dir(self, variant: str) -> Path:
        return self.release_dir(variant) / "charts"

    def chart(self, variant: str, name: str) -> Path:
        """``charts/<name>.svg`` of ``variant``."""
        return self.charts_dir(variant) / f"{name}.svg"

    def manifest(self, variant: str) -> Path:
        return self.release_dir(variant) / "manifest.json"

    def sha256sums(self, variant: str) -> Path:
        return self.release_dir(variant) / "SHA256SUMS"

    def readme(self, variant: str) -> Path:
        return self.release_dir(variant) / "README.md"


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
