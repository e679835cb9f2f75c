# One image for the production-like stack (docker-compose.yaml): every Airflow component AND the
# Spark master/worker run it, so the Spark driver (inside an Airflow task) and the executors have
# exactly the same Spark (pyspark from requirements.lock), Java, Python and ioarchive code.
# The base tag must match apache-airflow in requirements.lock (tests/devtools/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

USER root
# default-jre-headless: Java 17 on bookworm, 21 on trixie; Spark 4.x runs on both.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless unzip \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data/staging /data/campaigns \
 && chown -R airflow:root /data \
 && chmod 0770 /data/staging
ENV JAVA_HOME=/usr/lib/jvm/default-java

USER airflow
# Dependencies first (cached until the lock changes), then the code.
COPY --chown=airflow:root requirements.lock requirements-build.txt /opt/ioarchive/
RUN pip install --no-cache-dir -r /opt/ioarchive/requirements-build.txt \
 && pip install --no-cache-dir -r /opt/ioarchive/requirements.lock
COPY --chown=airflow:root pyproject.toml README.md /opt/ioarchive/
COPY --chown=airflow:root plugins /opt/ioarchive/plugins
COPY --chown=airflow:root jobs /opt/ioarchive/jobs
COPY --chown=airflow:root templates /opt/ioarchive/templates
COPY --chown=airflow:root expectations /opt/ioarchive/expectations
COPY --chown=airflow:root dags /opt/ioarchive/dags
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/ioarchive \
 && python -c "import ioarchive, pyspark; print('ioarchive ok, pyspark', pyspark.__version__)"

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/ioarchive/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
