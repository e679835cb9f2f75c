"""ioarchive: turn a removed information operation into a published research dataset.

The package is the library behind the Airflow DAGs, the Spark jobs and the ``ioarchive``
command. Modules are small and import heavy dependencies (Spark, GX, boto3) lazily so that
DAG parsing stays fast.
"""

__version__ = "0.1.0"
