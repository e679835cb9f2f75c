# Image for the production-like stack: Airflow 3.3 + the ioarchive library + Java for Spark.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless unzip \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.lock requirements-build.txt pyproject.toml README.md /opt/ioarchive/
COPY --chown=airflow:root plugins /opt/ioarchive/plugins
COPY --chown=airflow:root jobs /opt/ioarchive/jobs
COPY --chown=airflow:root templates /opt/ioarchive/templates
COPY --chown=airflow:root expectations /opt/ioarchive/expectations
RUN pip install --no-cache-dir -r /opt/ioarchive/requirements.lock \
 && pip install --no-cache-dir --no-deps -e /opt/ioarchive
