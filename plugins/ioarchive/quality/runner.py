"""Data-quality gate (RELEASE_SPEC section 7.3): every GX suite must pass on both variants.

``validate_release`` reads the published tables of both variants (``ioarchive.quality.data``),
runs the suite files of ``expectations/`` (the source of truth, reviewed like code) with a GX
file data context kept in ``validation/<variant>/gx/``, builds Data Docs per variant, and writes
``validation/<variant>/summary.json`` (see ``ioarchive.quality.summary``: the verdict, the
failed expectations with their row keys, and the SHA-256 of every file validated), byte for
byte the same for the same staged bytes; times and run facts go to ``run.json`` beside it.

GX is not thread-safe, so every GX call runs in the calling thread, one suite at a time; only
pure Spark work (each suite's offending-rows queries, the leak scan among them) runs ahead in
worker threads, and the checksums are hashed beside them.

Privacy of the report itself: results of the hashed variant are passed through
``IdentifierSet.redact`` before they are stored, rendered or summarized, column expectations run
with ``exclude_unexpected_values`` (row keys only), query expectations select row keys only, and
the stored hashed results are scanned for raw identifiers at the end: a hit deletes the hashed
Data Docs and fails the gate. The unhashed variant's docs stay in their own member-only folder.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive import resources
from ioarchive.errors import StagedFilesChanged
from ioarchive.files import sha256_file
from ioarchive.quality.summary import (
    SUMMARY_FORMAT,
    file_state,
    run_info_path,
    summary_path,
    variant_of,
    write_run_info,
    write_summary,
)
from ioarchive.schema import DEFAULT_THRESHOLD, VARIANTS
from ioarchive.spark.session import application_id
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ioarchive.quality.data import ReleaseTables
    from ioarchive.quality.identifiers import IdentifierSet

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = resources.data_dir("expectations")
"""The packaged ``expectations/`` folder; ``ioarchive.resources.expectations_dir()`` also honours
``IOARCHIVE_EXPECTATIONS_DIR``."""

MAX_EXAMPLES = 20
_CACHE_COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"


class DataDocsLeak(RuntimeError):
    """The hashed variant's rendered Data Docs contain a raw identifier (they were deleted)."""


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    observed: Any
    examples: list[Any] = field(default_factory=list)


@dataclass
class SuiteOutcome:
    success: bool
    evaluated: int = 0
    failed: list[FailedExpectation] = field(default_factory=list)


@dataclass
class VariantReport:
    variant: str
    success: bool
    suites: dict[str, SuiteOutcome]
    summary_path: Path
    data_docs: Path | None = None

    def summary_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "suites": {
                name: {"success": s.success, "evaluated": s.evaluated, "failed": [asdict(f) for f in s.failed]}
                for name, s in sorted(self.suites.items())
            },
        }


@dataclass
class ValidationReport:
    """Outcome of the data-quality gate for one release (both variants)."""

    release_id: str
    threshold: int
    variants: dict[str, VariantReport]
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(v.success for v in self.variants.values())

    def failures(self) -> list[tuple[str, str, FailedExpectation]]:
        return [
            (variant, suite, failed)
            for variant, report in self.variants.items()
            for suite, outcome in report.suites.items()
            for failed in outcome.failed
        ]

    def summary_lines(self) -> list[str]:
        """Short text for logs and the CLI: one line per failed expectation."""
        state = "PASSED" if self.success else "FAILED"
        lines = [f"data-quality gate {state} for release {self.release_id} (threshold {self.threshold})"]
        for variant, report in self.variants.items():
            total = sum(s.evaluated for s in report.suites.values())
            failed = sum(len(s.failed) for s in report.suites.values())
            lines.append(f"  {variant}: {len(report.suites)} suites, {total} expectations, {failed} failed; "
                         f"summary {report.summary_path}")
        for variant, suite, f in self.failures():
            column = f" column {f.column}" if f.column else ""
            examples = ", ".join(str(e) for e in f.examples[:5])
            lines.append(f"  FAIL {variant}/{suite}: {f.expectation}{column}: observed {f.observed!r}"
                         + (f"; rows {examples}" if examples else ""))
        lines.extend(f"  NOTE {n}" for n in self.notes)
        return lines


def validate_release(
    spark: SparkSession,
    staging_dir: str | Path,
    release_id: str,
    threshold: int = DEFAULT_THRESHOLD,
    *,
    campaign_dir: str | Path | None = None,
    expectations_dir: str | Path | None = None,
    require_media_index: bool = True,
    tables: ReleaseTables | None = None,
    suites: Iterable[str] | None = None,
) -> ValidationReport:
    """Run every suite on both variants; write Data Docs and ``summary.json`` per variant.

    ``campaign_dir`` gives the deletions for "no deleted post present"; without it that check
    has nothing to compare with and the report says so in its notes. ``tables`` lets tests
    validate DataFrames they built (corrupted copies) instead of the published files;
    ``suites`` restricts the run to the named suites (a variant with none of them is skipped).
    """
    from ioarchive.quality.data import IDENTIFIER_VIEW, load_release_tables, register_views
    from ioarchive.quality.identifiers import IdentifierSet

    quiet_gx()
    imported = time.monotonic()
    with _GX_LOCK:
        import ioarchive.quality.expectations  # noqa: F401 - registers the custom expectation types
    log.info("Great Expectations loaded in %.1f s", time.monotonic() - imported)  # a fixed cost per gate
    started, started_at = time.monotonic(), _now()
    layout = StagingLayout(Path(staging_dir).resolve(), release_id)  # as Spark lists the files it reads
    suites_dir = Path(expectations_dir) if expectations_dir else resources.expectations_dir()
    csv_scratch = layout.root / "validation" / "_csv_scratch"
    # States (inode, size, mtime) of what the gate may read, before it reads anything: a file
    # changed from here to the end fails the run instead of being recorded as validated.
    before = _file_states(layout, campaign_dir)
    if tables is None:
        tables = load_release_tables(spark, layout, csv_scratch)
    # Cached frames (the CSV table of the running suite, the small views) are not compressed:
    # the profile of a 200k-post gate showed about a fifth of its CPU in the columnar cache's
    # compression statistics (dictionary and run-length encoders over every string column),
    # while a cache lives for one suite and is read a handful of times.
    compressed = spark.conf.get(_CACHE_COMPRESSED, "true")
    spark.conf.set(_CACHE_COMPRESSED, "false")
    cached: list[Any] = []
    try:
        cached = register_views(spark, layout, tables, threshold, campaign_dir)
        identifiers = IdentifierSet.from_frame(spark.table(IDENTIFIER_VIEW))
        log.info("release %s: tables loaded, %d raw identifiers of pseudonymized accounts, %.1f s",
                 release_id, len(identifiers), time.monotonic() - started)
        notes = []
        if not tables.deletions_known:
            notes.append("no campaign folder given: 'no deleted post present' compared against an empty deletion list")
        params = {"threshold": str(int(threshold)), "release_id": release_id}
        only = set(suites) if suites is not None else None
        todo = {}
        for variant in VARIANTS:
            suite_dicts = load_suite_files(suites_dir, variant, params)
            if only is not None:
                suite_dicts = {k: v for k, v in suite_dicts.items() if k in only}
            if suite_dicts:
                todo[variant] = suite_dicts
        # GX is not thread-safe (STACK_NOTES: process-wide project manager and YAML handlers):
        # every GX call runs in this thread, one suite after the other, slowest first. What runs
        # in parallel is pure Spark: the offending-rows queries of each suite (the leak scan is
        # the biggest of them) run as one Spark job in a worker thread while GX validates an
        # earlier suite, and the gate's checksums are hashed beside them.
        units = sorted(
            ((variant, name, suite) for variant, suite_dicts in todo.items() for name, suite in suite_dicts.items()),
            key=lambda unit: _expected_cost(unit[2]),
            reverse=True,
        )
        for variant in todo:
            _reset_variant_dir(layout, variant)
        files, inputs = _validated_files(layout, tables, campaign_dir, notes)
        states = {path: before.get(path) or file_state(path) for path in [*files, *inputs]}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ioarchive-sha256") as hasher:
            digests = {path: hasher.submit(sha256_file, path) for path in states}
            outcomes, timings = _run_suites(layout, units, tables, identifiers, require_media_index)
            checksums = {path: future.result() for path, future in digests.items()}
        changed = sorted(str(path) for path, state in states.items() if not _same_state(path, state))
        if changed:
            raise StagedFilesChanged(
                f"release {release_id}: {len(changed)} validated file(s) changed while the gate ran "
                f"(first: {changed[0]}); nothing was recorded. Rerun the gate once staging is settled."
            )
        context = {"release_id": release_id, "threshold": int(threshold), "notes": notes}
        variants = {}
        for variant, suite_dicts in todo.items():
            variants[variant] = _finish_variant(
                layout, variant, {name: outcomes[(variant, name)] for name in suite_dicts}, identifiers,
                context, _recorded(layout, variant, files, inputs, checksums),
            )
            write_run_info(layout, variant, {
                "started_at": started_at, "finished_at": _now(), "seconds": round(time.monotonic() - started, 1),
                "suite_seconds": {name: timings[(variant, name)] for name in suite_dicts},
                "spark_application_id": application_id(spark), "staging_dir": str(layout.root),
            })
    finally:
        for frame in cached:
            frame.unpersist()
        spark.conf.set(_CACHE_COMPRESSED, compressed)
        shutil.rmtree(csv_scratch, ignore_errors=True)
    report = ValidationReport(release_id=release_id, threshold=threshold, variants=variants, notes=notes)
    for line in report.summary_lines():
        (log.info if report.success else log.error)("%s", line)
    return report


def load_suite_files(suites_dir: Path, variant: str, params: dict[str, str]) -> dict[str, dict]:
    """Suite dicts of ``variant`` keyed by suite name, ``${param}`` placeholders substituted."""
    suites = {}
    for path in sorted(suites_dir.glob(f"*_{variant}.json")):
        text = path.read_text(encoding="utf-8")
        for name, value in params.items():
            text = text.replace("${" + name + "}", value)
        suite = json.loads(text)
        suites[suite["name"]] = suite
    if not suites:
        raise FileNotFoundError(f"no suite files *_{variant}.json in {suites_dir}: is the expectations folder right?")
    return suites


def quiet_gx() -> None:
    """Keep GX progress bars, analytics and info logs out of task logs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("great_expectations", "py4j", "tqdm"):
        logging.getLogger(name).setLevel(logging.WARNING)


SPARK_THREADS = 2
"""Worker threads running suites' offending-rows queries (pure Spark SQL, no GX) ahead of GX."""
LOOKAHEAD = 2
"""Suites whose queries may run while GX validates an earlier one. Bounded because a CSV table is
cached from its suite's queries until GX is done with it (two posts CSV caches at most)."""
_GX_LOCK = threading.RLock()
"""Held around every GX call of this process: GX keeps process-wide state (its project manager,
module-level ruamel YAML handlers) and is not safe to call from two threads (STACK_NOTES). The
gate calls GX from one thread only; the lock also keeps two gates in one process apart."""
_TABLE_COST = {"posts_csv": 4, "posts": 3, "media_index": 2, "accounts_csv": 1, "accounts": 1}


def _expected_cost(suite_dict: dict) -> tuple[int, int]:
    """Sort key: big tables first, then suites with more expectations (slowest first)."""
    table = suite_dict.get("meta", {}).get("ioarchive", {}).get("table", "")
    return _TABLE_COST.get(table, 0), len(suite_dict.get("expectations", []))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _reset_variant_dir(layout: StagingLayout, variant: str) -> None:
    """Results of a previous run must not show up in this run's docs or summary."""
    out_dir = layout.validation_dir(variant)
    for stale in (out_dir / "gx", out_dir / "_suite_projects"):
        if stale.exists():
            shutil.rmtree(stale)
    for stale in (summary_path(layout, variant), run_info_path(layout, variant)):
        stale.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _gx_context(project_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    with _GX_LOCK:
        context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def suite_queries(suite_dict: dict) -> list[str]:
    """The offending-rows queries of a suite file, as its GX expectations will carry them.

    Read from the suite dict (no GX object is built), so they can be computed in a worker thread
    while GX works in this one; a query missing here is computed by GX itself, only slower
    (``tests/quality/test_runner.py`` checks they equal what the GX expectations carry).
    """
    from ioarchive.quality.expectations import leak_query

    queries = []
    for expectation in suite_dict.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        query = kwargs.get("unexpected_rows_query")
        if expectation.get("type") == "expect_no_raw_identifier_leak" and not query:
            query = leak_query(kwargs["row_key"], kwargs["identifier_view"], kwargs.get("column_groups") or ())
        if expectation.get("type") in ("expect_no_offending_rows", "expect_no_raw_identifier_leak") and isinstance(
            query, str
        ):
            queries.append(query.strip())  # as GX's pydantic model keeps it
    return list(dict.fromkeys(queries))


def _prefetch(frame: Any, queries: list[str], suite_name: str) -> tuple[dict[str, dict[str, Any]], float]:
    """Worker thread, no GX: the suite's offending-rows queries as one Spark job (see
    ``expectations.offending_rows``). On failure nothing is prefetched; GX then runs each query
    itself and reports the error of the one that fails."""
    from ioarchive.quality.expectations import offending_rows

    started = time.monotonic()
    if not queries:
        return {}, 0.0
    try:
        results = offending_rows(frame, queries)
    except Exception as exc:  # noqa: BLE001 - reported by the expectation whose query fails
        log.debug("suite %s: combined offending-rows query failed (%s); GX runs each query", suite_name, exc)
        results = {}
    return results, time.monotonic() - started


@dataclass
class _Unit:
    variant: str
    name: str
    suite: dict
    frame: Any = None
    cached: bool = False
    prefetch: Any = None


def _run_suites(
    layout: StagingLayout,
    units: list[tuple[str, str, dict]],
    tables: ReleaseTables,
    identifiers: IdentifierSet,
    require_media_index: bool,
) -> tuple[dict[tuple[str, str], SuiteOutcome], dict[tuple[str, str], float]]:
    """Validate every suite with GX in this thread, in order; prefetch queries ahead in workers."""
    pending = [_Unit(variant, name, suite) for variant, name, suite in units]
    pending.reverse()
    window: list[_Unit] = []
    outcomes: dict[tuple[str, str], SuiteOutcome] = {}
    timings: dict[tuple[str, str], float] = {}
    contexts: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=SPARK_THREADS, thread_name_prefix="ioarchive-suite-spark") as pool:
        try:
            while pending or window:
                while pending and len(window) <= LOOKAHEAD:
                    unit = pending.pop()
                    table = unit.suite.get("meta", {}).get("ioarchive", {}).get("table")
                    unit.frame = tables.get(unit.variant, table)
                    if unit.frame is not None:
                        # A CSV table is parsed once and cached for the passes of its own suite
                        # only. Parquet tables are not cached: each pass decodes just the
                        # columns it reads, which at 1 M posts cost less than building the
                        # cache (measured: 2.7-5.9 s per table).
                        unit.cached = table.endswith("_csv")
                        if unit.cached:
                            unit.frame = unit.frame.cache()
                        unit.prefetch = pool.submit(_prefetch, unit.frame, suite_queries(unit.suite), unit.name)
                    window.append(unit)
                unit = window.pop(0)
                started = time.monotonic()
                waits = {"waited": 0.0, "spark": 0.0}

                def prefetched(unit: _Unit = unit, waits: dict = waits) -> dict[str, dict[str, Any]]:
                    """The worker's query results, waited for only when GX needs them (after the
                    column-map pass, which runs in GX meanwhile)."""
                    if unit.prefetch is None:
                        return {}
                    t0 = time.monotonic()
                    results, waits["spark"] = unit.prefetch.result()
                    waits["waited"] = time.monotonic() - t0
                    return results

                try:
                    for variant in dict.fromkeys(u[0] for u in units):
                        if variant not in contexts:
                            contexts[variant] = _gx_context(layout.validation_dir(variant))
                    outcomes[(unit.variant, unit.name)] = _run_suite(
                        contexts[unit.variant], layout, unit.variant, unit.name, unit.suite, unit.frame,
                        tables, identifiers, require_media_index, prefetched,
                    )
                finally:
                    if unit.cached:
                        unit.frame.unpersist()
                timings[(unit.variant, unit.name)] = round(time.monotonic() - started, 1)
                log.info("suite %s: queries %.1f s in a worker (GX waited %.1f s for them), suite %.1f s",
                         unit.name, waits["spark"], waits["waited"], time.monotonic() - started)
        finally:
            for unit in window:  # an error stopped the loop: wait for the workers, free caches
                if unit.prefetch is not None:
                    unit.prefetch.cancel()
                    try:
                        unit.prefetch.result()
                    except BaseException:  # noqa: BLE001, S110 - the first error is the one raised
                        pass
                if unit.cached:
                    unit.frame.unpersist()
    return outcomes, timings


def _run_suite(
    context: Any,
    layout: StagingLayout,
    variant: str,
    suite_name: str,
    suite_dict: dict,
    frame: Any,
    tables: ReleaseTables,
    identifiers: IdentifierSet,
    require_media_index: bool,
    prefetched: Callable[[], dict[str, dict[str, Any]]],
) -> SuiteOutcome:
    """Validate one suite with GX in the variant's project; store its (redacted) result there."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    meta = suite_dict.get("meta", {}).get("ioarchive", {})
    table, row_key = meta["table"], meta["row_key"]
    if frame is None:
        reason = tables.missing.get((variant, table), "table not loaded")
        required = table != "media_index" or require_media_index
        return SuiteOutcome(
            success=not required,
            failed=[FailedExpectation("table_present", None, reason)] if required else [],
        )
    redact = variant == "hashed"
    with _GX_LOCK:
        # persist=False: GX would otherwise persist every batch DataFrame and never unpersist
        # it (the four posts tables then outgrew the storage memory and evicted caches were
        # rebuilt); the gate caches what it needs itself.
        datasource = context.data_sources.add_or_update_spark(name=f"{layout.release_id}_{variant}", persist=False)
        suite = context.suites.add_or_update(ExpectationSuite(**copy.deepcopy(suite_dict)))
        asset = datasource.add_dataframe_asset(name=suite_name)
        batch = asset.add_batch_definition_whole_dataframe(f"{suite_name}_whole").get_batch(
            batch_parameters={"dataframe": frame}
        )
        result = _validate_suite(batch, suite, _result_format(row_key, hide_values=redact), prefetched)
        if redact:
            for expectation_result in result.results:
                expectation_result.result = identifiers.redact(expectation_result.result)
                # Spark error messages quote offending values (e.g. a failed cast)
                expectation_result.exception_info = identifiers.redact(expectation_result.exception_info)
        context.validation_results_store.store_validation_results(
            suite_validation_result=result,
            suite_validation_result_identifier=ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
                run_id=RunIdentifier(run_name=f"{layout.release_id}-{variant}"),
                batch_identifier=suite_name,
            ),
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        )
        outcome = _outcome(result.to_json_dict(), row_key)
    log.info("suite %s: %d expectations, %d failed", suite_name, outcome.evaluated, len(outcome.failed))
    return outcome


def _validated_files(
    layout: StagingLayout, tables: ReleaseTables, campaign_dir: str | Path | None, notes: list[str]
) -> tuple[list[Path], list[Path]]:
    """(release files the suites read, other input files) whose checksums the summary records."""
    files = sorted({path for paths in tables.sources.values() for path in paths})
    outside = [path for path in files if variant_of(layout, path) is None]
    if outside:
        notes.append(f"{len(outside)} validated file(s) lie outside release/ of this staging folder: "
                     "no checksum recorded for them")
    inputs = [layout.reconciliation] if layout.reconciliation.is_file() else []
    if campaign_dir is not None:
        inputs += [p for p in (Path(campaign_dir) / n for n in ("deletions.jsonl", "deletions.jsonl.gz")) if p.is_file()]
    return [path for path in files if path not in outside], inputs


def _file_states(layout: StagingLayout, campaign_dir: str | Path | None) -> dict[Path, tuple[int, int, int]]:
    paths = [layout.reconciliation]
    for variant in VARIANTS:
        release_dir = layout.release_dir(variant)
        if release_dir.is_dir():
            paths += [p for p in release_dir.rglob("*") if p.is_file()]
    if campaign_dir is not None:
        paths += [Path(campaign_dir) / n for n in ("deletions.jsonl", "deletions.jsonl.gz")]
    return {p: file_state(p) for p in paths if p.is_file()}


def _same_state(path: Path, state: tuple[int, int, int]) -> bool:
    try:
        return file_state(path) == state
    except OSError:
        return False


def _recorded(
    layout: StagingLayout, variant: str, files: list[Path], inputs: list[Path], checksums: dict[Path, str]
) -> dict[str, dict[str, str]]:
    """The summary's ``files`` (this variant's release files) and ``inputs`` (by file name)."""
    own = {}
    for path in files:
        where = variant_of(layout, path)
        if where is not None and where[0] == variant:
            own[where[1]] = checksums[path]
    return {"files": own, "inputs": {path.name: checksums[path] for path in inputs}}


def _finish_variant(
    layout: StagingLayout,
    variant: str,
    outcomes: dict[str, SuiteOutcome],
    identifiers: IdentifierSet,
    context: dict[str, Any],
    recorded: dict[str, dict[str, str]],
) -> VariantReport:
    """Data Docs of the variant's GX project, then its summary.json."""
    out_dir = layout.validation_dir(variant)
    with _GX_LOCK:
        docs = _gx_context(out_dir).build_data_docs()
    docs_index = _local_path(docs.get("local_site"))
    redact = variant == "hashed"
    if redact:
        _check_docs_clean(out_dir / "gx", identifiers)
    success = all(o.success for o in outcomes.values())
    report = VariantReport(variant, success, outcomes, summary_path(layout, variant), docs_index)
    suites = report.summary_dict()["suites"]
    if redact:
        suites = identifiers.redact(suites)
    write_summary(layout, variant, {
        "format": SUMMARY_FORMAT,
        "release_id": context["release_id"],
        "variant": variant,
        "threshold": context["threshold"],
        "success": success,
        "suites": suites,
        **recorded,
        "notes": list(context["notes"]),
    })
    return report


def _validate_suite(
    batch: Any, suite: Any, detail_format: dict[str, Any], prefetched: Callable[[], dict[str, dict[str, Any]]]
) -> Any:
    """Validate ``suite`` on ``batch``; return one suite result with the results in suite order.

    Column map expectations (not null, regex, between, in set, unique) cost GX two extra Spark
    jobs each at a detailed result format (offending values, offending row keys), even when
    nothing is wrong. So they first run at ``BOOLEAN_ONLY``, where GX computes only their
    unexpected counts and the Spark engine bundles those into one aggregation per table; only
    the ones that failed run again at ``detail_format``, together with every other expectation
    (schema checks need no Spark job, and the query expectations of the suite were computed as
    one Spark job in a worker thread: ``prefetched()``, waited for only after the first pass). A
    clean release never pays for details; a
    failing expectation gets the same result as in a single detailed run. Passing column map
    expectations show no observed value in Data Docs (it would read "0 unexpected").
    """
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.validator.validator import calc_validation_statistics

    from ioarchive.quality.expectations import shared_query_results

    expectations = {_config_key(e.configuration): e for e in suite.expectations}
    if len(expectations) != len(suite.expectations):
        raise ValueError(f"suite {suite.name} holds the same expectation twice; give each its own meta name")

    def subset(keys: set[str]) -> Any:
        return ExpectationSuite(name=suite.name, expectations=[copy.copy(e) for k, e in expectations.items() if k in keys])

    map_keys = {k for k, e in expectations.items() if isinstance(e, ColumnMapExpectation)}
    other_keys = set(expectations) - map_keys
    results = {}
    started = time.monotonic()
    with shared_query_results() as memo:
        if map_keys:
            quick = batch.validate(subset(map_keys), result_format={"result_format": "BOOLEAN_ONLY"})
            log.debug("suite %s: %d column map expectations, %.1f s", suite.name, len(map_keys), time.monotonic() - started)
            results = {_config_key(r.expectation_config): r for r in quick.results}
            other_keys |= {k for k, r in results.items() if not r.success}
            if not other_keys:
                return quick
        memo.update(prefetched())
        started = time.monotonic()
        detailed = batch.validate(subset(other_keys), result_format=detail_format)
        log.debug("suite %s: %d other expectations, %.1f s", suite.name, len(other_keys), time.monotonic() - started)
    results.update({_config_key(r.expectation_config): r for r in detailed.results})
    missing = set(expectations) - set(results)
    if missing:
        raise RuntimeError(f"suite {suite.name}: GX returned no result for {len(missing)} expectation(s)")
    detailed.results = [results[k] for k in expectations]
    stats = calc_validation_statistics(detailed.results)
    detailed.success = stats.success
    detailed.statistics.update(
        evaluated_expectations=stats.evaluated_expectations,
        successful_expectations=stats.successful_expectations,
        unsuccessful_expectations=stats.unsuccessful_expectations,
        success_percent=stats.success_percent,
    )
    return detailed


def _config_key(config: Any) -> str:
    """Identity of an expectation across suite copies (GX gives copies new ids)."""
    kwargs = {k: v for k, v in (config.kwargs or {}).items() if k not in ("result_format", "batch_id")}
    return json.dumps([config.type, kwargs, config.meta or {}], sort_keys=True, default=str)


def _result_format(row_key: str, *, hide_values: bool) -> dict[str, Any]:
    """SUMMARY with row keys; the hashed variant never asks GX for offending values."""
    return {
        "result_format": "SUMMARY",
        "unexpected_index_column_names": [row_key],
        "partial_unexpected_count": MAX_EXAMPLES,
        "exclude_unexpected_values": hide_values,
        "return_unexpected_index_query": False,
    }


def _outcome(result: dict[str, Any], row_key: str) -> SuiteOutcome:
    failed = []
    results = result.get("results", [])
    for r in results:
        if r.get("success"):
            continue
        config = r.get("expectation_config", {})
        kwargs = config.get("kwargs", {})
        meta = config.get("meta") or {}
        details = r.get("result") or {}
        observed = details.get("observed_value", details.get("unexpected_count"))
        message = _exception_message(r.get("exception_info"))
        if message is not None:
            observed = f"error: {stable_message(message)[:300]}"
        failed.append(
            FailedExpectation(
                expectation=meta.get("name") or config.get("type", "?"),
                column=kwargs.get("column"),
                observed=observed,
                examples=_examples(details, row_key),
            )
        )
    return SuiteOutcome(success=not failed and bool(result.get("success")), evaluated=len(results), failed=failed)


_RUN_SPECIFIC = (
    (re.compile(r"ioarchive_batch_[0-9a-f]{32}"), "{batch}"),  # offending_rows' temp view
    (re.compile(r"\b(stage|task) \d+(?:\.\d+)?", re.IGNORECASE), r"\1 N"),
    (re.compile(r"\bTID \d+"), "TID N"),
    (re.compile(r"\([^()\s]+ executor [^()\s]+\)"), "(executor)"),
    (re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x..."),
)


def stable_message(message: str) -> str:
    """An error message without what differs between runs of the same data (Spark stage,
    task and TID numbers, the gate's temp view names, object addresses): it goes into summary.json."""
    for pattern, replacement in _RUN_SPECIFIC:
        message = pattern.sub(replacement, message)
    return message


def _exception_message(info: Any) -> str | None:
    """The message of the exception GX caught while evaluating one expectation, or ``None``.

    GX 1.24 reports it either at the top level (``{"raised_exception": true, ...}``) or nested
    under the id of the metric that raised (``{"MetricConfigurationID(...)": {...}}``); without
    looking into the nested form the summary would show ``observed: null`` and no reason.
    """
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _examples(details: dict[str, Any], row_key: str) -> list[Any]:
    """Row keys (or rows) naming where an expectation failed, in a stable order."""
    rows = (details.get("details") or {}).get("unexpected_rows")
    if rows:
        return [_row_label(row) for row in rows[:MAX_EXAMPLES]]  # ordered by the query itself
    index = details.get("partial_unexpected_index_list")
    if index:
        # Spark gives [{row_key: [k1, k2, ...]}]; pandas-like engines one dict per row
        keys: list[Any] = []
        for row in index:
            value = row.get(row_key) if isinstance(row, dict) else row
            keys.extend(value if isinstance(value, list) else [value])
        return _stable(keys[:MAX_EXAMPLES])
    return _stable(list(details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES])


def _stable(values: list[Any]) -> list[Any]:
    """Sorted by JSON text: Spark's tasks may finish in any order; the summary must not."""
    return sorted(values, key=lambda v: json.dumps(v, sort_keys=True, default=str))


def _row_label(row: Any) -> Any:
    if isinstance(row, dict):
        values = list(row.values())
        return values[0] if len(values) == 1 else row
    return row


def _local_path(url: str | None) -> Path | None:
    if not url:
        return None
    return Path(url.removeprefix("file://"))


def _check_docs_clean(gx_root: Path, identifiers: IdentifierSet) -> None:
    """Fail closed if a stored hashed validation result carries a raw identifier.

    Data Docs render these results next to static text (suite files, GX templates); only the
    results come from the data, so only their data-bearing parts (``result``,
    ``exception_info``) are scanned: a pseudonymized account whose screen name is a common word
    ("Media") must not fail the gate because a template says "media".
    """
    offending = []
    for path in sorted((gx_root / "uncommitted" / "validations").rglob("*.json")):
        stored = json.loads(path.read_text(encoding="utf-8"))
        data = [[r.get("result"), r.get("exception_info")] for r in stored.get("results", [])]
        if identifiers.count_hits(json.dumps(data, ensure_ascii=False, default=str)):
            offending.append(path)
    if offending:
        shutil.rmtree(gx_root, ignore_errors=True)
        raise DataDocsLeak(
            f"hashed validation results under {gx_root} named a raw identifier of a pseudonymized account "
            f"in {len(offending)} file(s) (first: {offending[0].name}); the hashed Data Docs were deleted. "
            "Report this to the ioarchive maintainers: a GX result format exposed values."
        )
