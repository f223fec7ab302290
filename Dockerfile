FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p src/backchannel && echo '__version__ = "0.0.0"' > src/backchannel/__init__.py \
    && pip install . && pip uninstall -y backchannel

COPY src ./src
RUN pip install --no-deps .

RUN useradd --create-home --uid 10001 backchannel && mkdir -p /data && chown backchannel /data
USER backchannel
ENV BACKCHANNEL_DATA_DIR=/data BACKCHANNEL_HOST=0.0.0.0 BACKCHANNEL_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["backchannel", "serve"]
