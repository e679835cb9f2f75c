"""Airflow loads this file from its plugins folder (``[core] plugins_folder`` = this repo's ``plugins/``).

Everything else under ``plugins/`` is the ioarchive package, which ``.airflowignore`` keeps
Airflow from importing file by file; the plugin itself lives in the package.
"""

from ioarchive.airflow.browser.plugin import ReleaseBrowserPlugin

__all__ = ["ReleaseBrowserPlugin"]
