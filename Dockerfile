# The production image: the locked runtime set only (no embedded Postgres, no test tools),
# production mode by default, a non-root user.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies in their own layer: rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf /app/src

RUN useradd --create-home --uid 10001 backchannel && mkdir -p /data && chown backchannel /data
USER backchannel
# Production refuses to start without DATABASE_URL and BACKCHANNEL_JWT_SECRET (and never starts
# an embedded Postgres); pass them with `docker run -e` or compose.
ENV BACKCHANNEL_ENV=production BACKCHANNEL_DATA_DIR=/data BACKCHANNEL_HOST=0.0.0.0 \
    BACKCHANNEL_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BACKCHANNEL_PORT', '8080')).status != 200)"
CMD ["backchannel", "serve"]
