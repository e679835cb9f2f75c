"""ioarchive.airflow."""
