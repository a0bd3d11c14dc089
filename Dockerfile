# syntax=docker/dockerfile:1

# DebtFlow's command line, HTTP API, worker and scheduler in one image.
#
#   docker build -t debtflow .
#   docker run --rm -p 8000:8000 -v debtflow-data:/var/lib/debtflow debtflow demo
#   docker run --rm -e DEBTFLOW_DATABASE_URL=postgresql://user:pass@db/debtflow debtflow migrate
#   docker run --rm -p 8000:8000 -e DEBTFLOW_JWT_SECRET=… -e DEBTFLOW_DATABASE_URL=… debtflow
#
# The whole production stack (API, workers, scheduler, PostgreSQL, Redis, MinIO, Prometheus,
# Grafana) is deploy/docker-compose.yml; see docs/operations.md.
#
# Without DEBTFLOW_DATABASE_URL the data is a SQLite file in /var/lib/debtflow: mount a
# volume there, or it is lost with the container.

# Build stage: install the package and its dependencies into a virtual environment, so that
# the final image needs neither pip's caches nor the source tree.
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/debtflow
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/debtflow/bin/pip install .

# Final stage: the same base image (the venv's interpreter links to its Python), the venv,
# and an unprivileged user who owns only the data directory.
FROM python:3.11-slim

ENV PATH=/opt/debtflow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEBTFLOW_DATABASE_URL=sqlite+aiosqlite:////var/lib/debtflow/debtflow.db \
    DEBTFLOW_HTTP_HOST=0.0.0.0

RUN groupadd --system --gid 10001 debtflow \
    && useradd --system --uid 10001 --gid debtflow --no-create-home \
        --home-dir /var/lib/debtflow --shell /usr/sbin/nologin debtflow \
    && install --directory --owner=debtflow --group=debtflow --mode=0750 /var/lib/debtflow

COPY --from=builder /opt/debtflow /opt/debtflow

WORKDIR /var/lib/debtflow
# Numeric, so that orchestrators can check "runAsNonRoot" without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000
# The API answers GET /health while it serves. The slim image has no curl: Python's urllib
# raises (so the check fails) on a refused connection, a timeout or a non-2xx answer.
# Containers of this image that do not serve (worker, scheduler, migrate) replace or
# disable it; see deploy/docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DEBTFLOW_HTTP_PORT', '8000') + '/health', timeout=4)"]
ENTRYPOINT ["debtflow"]
CMD ["serve"]
