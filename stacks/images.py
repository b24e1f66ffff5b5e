"""Third-party images the stacks run, by digest (the tag stays beside it for humans).

A digest pins the exact bytes: a re-pushed tag cannot change what a pod runs (checkov
CKV_K8S_43). Renovate (renovate.json, regex manager over this file) proposes new digests and
versions as pull requests; stack config may still override it (flowchat:redis.image). Chroma
has no image of its own: it runs chromadb's Python server from the service image (issue 18).
Where the digest was read (no registry is reachable from the machine that wrote it; the update
bot replaces it with the registry's answer):

* redis:7.2.5: the OCI index digest listed for the tag in docker-library's repo-info
  (repos/redis/remote/7.2.5.md, mirror maxmood96/repo-info at 01d91f10; build of 2024-09-04).
"""

from __future__ import annotations

REDIS_IMAGE = "redis:7.2.5@sha256:5475c46d52421abc3e6a0abf8d98d247c7d46109a312452727fe583fd22b4eb1"
