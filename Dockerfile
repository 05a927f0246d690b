# Shadow as a container: CPU-only torch, a non-root user, the ledger and the model registry on /data.
#   docker build -t shadow .
#   docker run -d --name shadow -v shadow-data:/data -p 127.0.0.1:9108:9108 shadow
# deploy/compose.yaml is the fuller example; docs/service.md explains start, stop, upgrade and backup.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from PyTorch's CPU-only index, at pyproject.toml's pin: none of the CUDA libraries
# (several GB) a GPU build brings. `pip install` of Shadow below then finds torch satisfied.
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"

# The code lives in /opt/shadow, owned by root: the service can read it, not change it.
# Editable install, so the bundled sample candles (data/sample, used by `shadow demo` and
# `shadow selftest`) stay beside the packages.
WORKDIR /opt/shadow
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY config ./config
COPY env ./env
COPY state ./state
COPY strategies ./strategies
COPY trainer ./trainer
COPY data/sample ./data/sample
RUN pip install --editable . \
    && if pip list 2>/dev/null | grep -qi '^nvidia-'; then echo "CUDA packages were installed" >&2; exit 1; fi

# Everything the service writes (ledger, model registry, logs, backups) goes under /data,
# its working directory: mount a volume there.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin shadow \
    && mkdir -p /data && chown shadow:shadow /data
USER shadow
WORKDIR /data
VOLUME ["/data"]
ENV HOME=/data \
    SHADOW_LEDGER__DB_PATH=/data/shadow.sqlite \
    SHADOW_SERVICE__BACKUP_DIR=/data/backups \
    SHADOW_SERVICE__HTTP=0.0.0.0:9108 \
    SHADOW_SERVICE__HTTP_PUBLIC=true

# Inside the container the dashboard and endpoints must listen on all interfaces to be published
# (hence HTTP_PUBLIC); publish them on the host's loopback only (-p 127.0.0.1:9108:9108).
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=3m --retries=3 CMD ["python", "-c", "import os, urllib.request; port = os.environ['SHADOW_SERVICE__HTTP'].rsplit(':', 1)[-1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["shadow"]
CMD ["run"]
