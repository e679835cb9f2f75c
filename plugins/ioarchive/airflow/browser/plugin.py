"""The Airflow plugin: the release browser's app on the API server and its navigation link.

Airflow 3 plugins serve FastAPI apps (``fastapi_apps``, mounted by the API server under their
``url_prefix``, behind its authentication middleware and with access to its auth manager) and
add UI navigation entries (``external_views``). Loaded from the deployment's plugins folder by
``plugins/ioarchive_browser_plugin.py``.

The app is built on its first request (``LazyApp``): every Airflow process loads plugins
(workers too, for macros and listeners), and only the API server needs FastAPI and the pages.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ioarchive.airflow.browser.links import URL_PREFIX


class LazyApp:
    """An ASGI app that builds the browser on the first request it serves."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from ioarchive.airflow.browser.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class ReleaseBrowserPlugin(AirflowPlugin):
    """``/ioarchive/``: every release version, its documents and data; "Releases" in the navigation."""

    name = "ioarchive_release_browser"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "ioarchive release browser"}]
    external_views = [
        {
            "name": "Releases",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "ioarchive_releases",
        }
    ]
