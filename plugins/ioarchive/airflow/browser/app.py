"""The release browser's FastAPI app, mounted by the Airflow plugin on the API server.

Every route needs a signed-in Airflow user: the dependency is Airflow's own ``get_user``
(``airflow.api_fastapi.core_api.security``: the UI's JWT cookie, or a bearer token), so the
browser has no login of its own and no user Airflow does not know. A request without a valid
session is sent to Airflow's login page and comes back after it. The unhashed (member) variant's
pages answer HTTP 403 unless the user holds a member-data role (``access.MEMBER_DATA_ROLES``:
reviewers, administrators).

Pages are Jinja2 templates (``templates/browser/``, autoescaped) with their styles inline; a
Content-Security-Policy forbids every request to another origin and every script, so nothing a
page shows (GX's own Data Docs included) can reach a third party.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
# and the user dependency's ``Annotated`` alias is local to ``create_app``.
import functools
import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ioarchive.airflow import access
from ioarchive.airflow.browser import pages
from ioarchive.airflow.browser.links import URL_PREFIX
from ioarchive.airflow.browser.versions import Sources, VersionEntry, collect, find
from ioarchive.schema import VARIANTS

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'none'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
"""No script, no request to another origin: every page works offline and tells no third party."""
VARIANT_LABEL = {"hashed": "public (hashed)", "unhashed": "members (unhashed)"}


def default_sources() -> Sources:
    """The deployment's sources: staging root, the two buckets through connection ``ioarchive_s3``, run states."""
    from ioarchive import settings
    from ioarchive.airflow.browser.runs import latest_runs

    buckets = {}
    for variant in VARIANTS:
        try:
            buckets[variant] = settings.bucket_for(variant)
        except Exception:  # noqa: BLE001 - a deployment without buckets still browses staging
            pass
    store = None
    if buckets:
        try:
            from ioarchive.publish.store import RetryPolicy
            from ioarchive.publish.upload import s3_store

            # One try per call: a page must answer, not wait minutes for S3 like a publication does.
            store = s3_store(aws_conn_id="ioarchive_s3", retry=RetryPolicy(attempts=1, base_seconds=0))
        except Exception as exc:  # noqa: BLE001
            log.warning("release browser: no object store (%s); showing staging folders only", exc)
    return Sources(staging_root=settings.staging_root(), store=store, buckets=buckets, runs=latest_runs)


def _airflow_user() -> Callable[..., Any]:
    """Airflow's ``get_user`` dependency (imported late: the API server has it loaded anyway)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def create_app(sources: Callable[[], Sources] = default_sources, user_dependency: Callable[..., Any] | None = None
               ) -> FastAPI:
    """The browser app. ``sources`` is called once, on the first request; ``user_dependency``
    defaults to Airflow's ``get_user``."""
    app = FastAPI(title="ioarchive release browser", docs_url=None, redoc_url=None, openapi_url=None)
    get_sources = functools.cache(sources)
    User = Annotated[Any, Depends(user_dependency or _airflow_user())]

    @app.exception_handler(HTTPException)
    async def _errors(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 or (exc.status_code == 403 and exc.detail == "Invalid JWT token"):
            return RedirectResponse(_login_url(request), status_code=303)
        return _html(_render("message.html.j2", title=f"HTTP {exc.status_code}", message=str(exc.detail),
                             home=_home(request)), exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def releases(request: Request, user: User) -> Response:
        entries, problems = collect(get_sources())
        return _html(_render("list.html.j2", entries=entries, problems=problems, user=_name(user),
                             members=access.may_read_member_data(user), labels=VARIANT_LABEL, home=_home(request)))

    @app.get("/releases/{release_id}/v{version}/")
    def version_root(release_id: str, version: int, user: User) -> Response:
        return RedirectResponse("hashed/", status_code=303)

    @app.get("/releases/{release_id}/v{version}/{variant}/", response_class=HTMLResponse)
    def version_page(request: Request, release_id: str, version: int, variant: str, user: User) -> Response:
        entry, versions = _entry(get_sources(), release_id, version, variant, user)
        sources = get_sources()
        files = pages.VariantFiles(entry, variant, sources)
        readme = files.read("README.md")
        columns, rows, rows_missing = pages.sample_rows(files)
        recon, balanced, recon_missing = pages.reconciliation(entry)
        quality = {v: pages.quality(entry, v) for v in VARIANTS}
        previous, diff, diff_missing = pages.diff_lines(entry, versions, sources, variant)
        return _html(_render(
            "version.html.j2", e=entry, variant=variant, labels=VARIANT_LABEL, user=_name(user),
            members=access.may_read_member_data(user), where=files.where,
            readme=pages.readme_html(readme.decode("utf-8", "replace") if readme is not None else None),
            charts=pages.charts(files), columns=columns, rows=rows, rows_missing=rows_missing,
            recon=recon, balanced=balanced, recon_missing=recon_missing, quality=quality,
            previous=previous, diff=diff, diff_missing=diff_missing, files=files.entry.variants[variant].files,
            versions=sorted((v.version for v in versions), reverse=True), home=_home(request),
        ))

    @app.get("/releases/{release_id}/v{version}/{variant}/charts/{name}")
    def chart(release_id: str, version: int, variant: str, name: str, user: User) -> Response:
        entry, _ = _entry(get_sources(), release_id, version, variant, user)
        rel = f"charts/{name}"
        if not pages.CHART_NAME.match(rel):
            raise HTTPException(404, f"no chart {name!r}")
        data = pages.VariantFiles(entry, variant, get_sources()).read(rel)
        if data is None:
            raise HTTPException(404, f"{rel} of {release_id} v{version} ({variant}) is not available")
        return _secure(Response(data, media_type="image/svg+xml"))

    @app.get("/releases/{release_id}/v{version}/{variant}/quality/", response_class=HTMLResponse)
    def quality_page(request: Request, release_id: str, version: int, variant: str, user: User) -> Response:
        entry, _ = _entry(get_sources(), release_id, version, variant, user)
        summary, docs, missing = pages.quality(entry, variant)
        return _html(_render("quality.html.j2", e=entry, variant=variant, labels=VARIANT_LABEL, summary=summary,
                             docs=docs, missing=missing, home=_home(request)))

    @app.get("/releases/{release_id}/v{version}/{variant}/datadocs/{path:path}")
    def data_docs(release_id: str, version: int, variant: str, path: str, user: User) -> Response:
        entry, _ = _entry(get_sources(), release_id, version, variant, user)
        found = pages.data_docs_file(entry, variant, path)
        if found is None:
            raise HTTPException(404, f"no Data Docs file {path!r} for {release_id} v{version} ({variant})")
        if found.suffix == ".html":
            return _html(pages.offline_html(found.read_text(encoding="utf-8", errors="replace")))
        media = {".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png"}
        return _secure(Response(found.read_bytes(), media_type=media.get(found.suffix, "application/octet-stream")))

    @app.get("/catalog/", response_class=HTMLResponse)
    def catalog(user: User) -> Response:
        """The public catalog as published (``catalog/index.html`` of the public bucket)."""
        sources = get_sources()
        bucket = sources.buckets.get("hashed")
        if sources.store is None or not bucket:
            raise HTTPException(404, "no public bucket is configured")
        try:
            data = sources.store.get_bytes(bucket, "catalog/index.html")
        except Exception as exc:  # noqa: BLE001
            raise HTTPException(404, f"s3://{bucket}/catalog/index.html is not available: {exc}") from None
        return _html(data.decode("utf-8", "replace"))

    return app


def _entry(sources: Sources, release_id: str, version: int, variant: str, user: Any
           ) -> tuple[VersionEntry, list[VersionEntry]]:
    """The version asked for, after the access check; 403 for member data, 404 for the unknown."""
    if variant not in VARIANTS:
        raise HTTPException(404, f"unknown variant {variant!r}")
    if variant == "unhashed" and not access.may_read_member_data(user):
        log.warning("release browser: %s may not read the unhashed variant of %s v%d (HTTP 403)",
                    _name(user), release_id, version)
        raise HTTPException(403, "The unhashed (member) variant is for reviewers and administrators only.")
    entry, versions = find(sources, release_id, version)
    if entry is None:
        raise HTTPException(404, f"no release {release_id} v{version} in the staging folders or the buckets")
    return entry, versions


def _name(user: Any) -> str:
    getter = getattr(user, "get_name", None)
    return str(getter() if callable(getter) else getattr(user, "username", "") or "")


def _home(request: Request) -> str:
    """The browser's root as the client sees it (mount prefix included)."""
    return str(request.scope.get("root_path", "") or URL_PREFIX).rstrip("/") + "/"


def _login_url(request: Request) -> str:
    """Airflow's login page, coming back to the page asked for."""
    target = str(request.url)
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_url_login(next_url=target)
    except Exception:  # noqa: BLE001 - no auth manager (tests): Airflow's default route
        return f"/auth/login/?next={quote(target, safe='')}"


@functools.cache
def _environment() -> Any:
    import jinja2

    from ioarchive.humanize import human_size
    from ioarchive.render.documents import templates_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "browser")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["human_size"] = human_size
    env.filters["qs"] = lambda value: quote(str(value), safe="")
    return env


def _render(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _html(body: str, status: int = 200) -> Response:
    return _secure(HTMLResponse(body, status_code=status))
