# syntax=docker/dockerfile:1
# The one image every Stock-IT Python service runs (producer, processor, alert engine, web and the
# one-shot `stockit db migrate` / `stockit topics` jobs); docker-compose.yml picks the subcommand.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the project and its dependencies, installed from setup.cfg into a venv ------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# README* is optional: setup.cfg reads it as the long description when it is there.
COPY setup.cfg setup.py README* ./
COPY app ./app
COPY pipeline ./pipeline
COPY components ./components
RUN pip install --upgrade pip setuptools wheel \
 && pip install .

# --- runtime: the venv plus the project tree, run as an unprivileged user ---------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="stockit" \
      org.opencontainers.image.description="Stock-IT real-time trade monitoring (pipeline workers and web app)"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STOCKIT_HOME=/home/stockit/.stockit \
    STOCKIT_METRICS_HOST=0.0.0.0 \
    STOCKIT_WEB_HOST=0.0.0.0
RUN groupadd --system --gid 10001 stockit \
 && useradd --system --uid 10001 --gid stockit --home-dir /home/stockit --create-home \
        --shell /usr/sbin/nologin stockit
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Owned by root and read-only to the service user: the code cannot be changed at run time.
# PYTHONPATH=/app makes this tree the imported one, so sql/ and assets/ sit beside the packages.
COPY app ./app
COPY pipeline ./pipeline
COPY components ./components
COPY assets ./assets
COPY sql ./sql
USER 10001:10001
EXPOSE 8001 8002 8003 8088
CMD ["stockit", "web"]
