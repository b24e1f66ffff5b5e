"""Third-party images the stacks run, by digest (the tag stays beside it for humans).

A digest pins the exact bytes: a re-pushed tag cannot change what a pod runs (checkov
CKV_K8S_43). Renovate (renovate.json, regex manager over this file) proposes new digests and
versions as pull requests; stack config may still override them (flowchat:redis.image,
flowchat:chroma.image). Where each digest was read (no registry is reachable from the machine
that wrote them; the update bot replaces them with the registry's answer):

* redis:7.2.5: the OCI index digest listed for the tag in docker-library's repo-info
  (repos/redis/remote/7.2.5.md, mirror maxmood96/repo-info at 01d91f10; build of 2024-09-04).
* chromadb/chroma:1.5.9: the OCI index digest several public projects pin for 1.5.9 (compose files
  and image-lock tables recording it as application/vnd.oci.image.index.v1+json).
"""

from __future__ import annotations

REDIS_IMAGE = "redis:7.2.5@sha256:5475c46d52421abc3e6a0abf8d98d247c7d46109a312452727fe583fd22b4eb1"
CHROMA_IMAGE = (
    "chromadb/chroma:1.5.9@sha256:1e0b73a187a28757c572acba508c46f48c9e8b0acaf5c20e6d95cdedce1acdf6"
)
