# delivery-gateway: one gateway process per container (`delivery-gateway serve`); run several behind a proxy, see
# docs/deployment.md and compose.yaml. Build: docker build -t delivery-gateway .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY delivery_gateway ./delivery_gateway
RUN pip install .

# An unprivileged user; /data holds a SQLite ledger when one is used (mount a volume there).
RUN useradd --system --uid 10001 --no-create-home gateway && mkdir /data && chown gateway /data
USER gateway
WORKDIR /data

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
CMD ["delivery-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
