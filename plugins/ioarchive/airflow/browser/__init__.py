"""The release browser: every release version, its state, documents and data, inside Airflow's UI.

An Airflow 3 plugin (``plugin.py``) mounts a FastAPI app (``app.py``) on the API server under
``/ioarchive``, behind Airflow's own login, with a link in the UI's navigation. Reviewers see
what they approve (README, charts, Data Docs, sample rows, reconciliation, diff) without a
shell on a worker. ``versions.py`` finds the versions (staging folders and buckets),
``runs.py`` asks the metadata DB which gate a run waits at, ``pages.py`` prepares each page's
content, ``links.py`` builds the URLs the gates and notifications point to.
"""
