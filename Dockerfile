# Courier: HTTP + WebSocket edge (`courier serve`) and workers (`courier worker`).
# Point it at Redis with COURIER_REDIS_URL (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The pinned, hashed versions of the lock file first (a layer that changes only with
# it), then Courier itself without resolving anything again.
COPY requirements/base.txt ./requirements/base.txt
RUN pip install --require-hashes -r requirements/base.txt
COPY pyproject.toml README.md ./
COPY delivery ./delivery
COPY consumers ./consumers
COPY api ./api
# The operators' console (/admin, `courier admin`): outside the product packages, but
# shipped with them; its page files are package data, vendored (no npm in the image).
COPY console ./console
# bench/ (the benchmarks, `courier bench`) is not copied: the image is the product only,
# and `courier bench` there says how to install it. pyproject.toml finds packages, so
# the install below works without it.
RUN pip install --no-deps . \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin courier \
 && mkdir -p /app \
 && chown courier:courier /app

# The non-root user's data folder (COURIER_DATA_DIR: the embedded Redis, the generated
# secret) is /app/data; with COURIER_REDIS_URL set (compose.yaml) nothing is kept there.
WORKDIR /app
USER courier

ENV COURIER_HOST=0.0.0.0 \
    COURIER_PORT=8000 \
    COURIER_DATA_DIR=/app/data
EXPOSE 8000
CMD ["courier", "serve", "--host", "0.0.0.0"]
