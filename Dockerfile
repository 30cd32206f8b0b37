# syntax=docker/dockerfile:1
# AgentHub: one process serving HTTP and Socket.IO on port 3000, as an unprivileged user.
# Data (the SQLite folder, or nothing with PostgreSQL) lives in the /var/lib/agenthub volume;
# secrets (JWT_SECRET, database password) come from the environment at run time, never the image.
#
#   podman build --format docker -t agenthub .    (or: docker build -t agenthub .)
#   docker run -d -p 3000:3000 -e JWT_SECRET=... -v agenthub-data:/var/lib/agenthub agenthub
#
# Python packages come from requirements.lock (`uv pip compile`, with hashes): two builds of one
# commit install the same versions. `make lock` regenerates it after pyproject changes.

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM runtime AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/agenthub
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Dependencies first: this layer is rebuilt only when the lock changes, not on every source edit.
COPY requirements.lock /tmp/requirements.lock
# An optional CA bundle for builds behind a TLS-inspecting proxy:
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt (it never enters a layer).
RUN --mount=type=secret,id=ca,required=false \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    /opt/agenthub/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY agenthub /src/agenthub
# The lock holds the build backend too, so nothing unpinned is fetched here; `pip check` fails the
# build if the lock misses a dependency. Then the build-only tools leave the venv.
RUN /opt/agenthub/bin/pip install --no-deps --no-build-isolation --no-index /src \
 && /opt/agenthub/bin/pip check \
 && /opt/agenthub/bin/pip uninstall -y -q setuptools wheel \
 && /opt/agenthub/bin/python -m pip uninstall -y -q pip

FROM runtime
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/agenthub --no-create-home \
      --shell /usr/sbin/nologin agenthub \
 && install -d -o agenthub -g agenthub -m 0750 /var/lib/agenthub
COPY --from=build /opt/agenthub /opt/agenthub
ENV PATH=/opt/agenthub/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENTHUB_ENV=production \
    AGENTHUB_DATA_DIR=/var/lib/agenthub \
    HOST=0.0.0.0 \
    PORT=3000
VOLUME /var/lib/agenthub
WORKDIR /opt/agenthub
USER 10001:10001
EXPOSE 3000
# Ready means the database answers (and Redis, when REDIS_URL is set): GET /readyz is 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '3000'), timeout=4)"]
# The server drains its sockets and exits 0 on SIGTERM within about 10 s (README, "Shutdown").
STOPSIGNAL SIGTERM
ENTRYPOINT ["agenthub"]
CMD ["serve"]
