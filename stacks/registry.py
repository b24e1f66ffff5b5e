"""Registry pull access for the app image: a `kubernetes.io/dockerconfigjson` Secret.

A package in a private registry (a GHCR package of a private repository is private) needs
credentials on the node. `flowchat:registryAuth` (``user:token``, secret config delivered by the
stack's ESC environment, written there by the bootstrap program) becomes the Secret
`REGISTRY_PULL_SECRET`, which every app pod names in `imagePullSecrets`. Without it the cluster
pulls with its own identity (ACR attached to AKS, ECR via the node role) and no Secret is made.
"""

from __future__ import annotations

import base64
import json

import pulumi
import pulumi_kubernetes as k8s

from stacks.pods import REGISTRY_PULL_SECRET, ServiceScope

DOCKER_HUB = "https://index.docker.io/v1/"


def registry_host(repository: str) -> str:
    """ghcr.io/org/app -> ghcr.io; org/app (Docker Hub) -> Docker Hub's auth URL."""
    first = repository.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") else DOCKER_HUB


def docker_config(repository: str, auth: str) -> str:
    """The .dockerconfigjson of one registry for ``user:token``."""
    encoded = base64.b64encode(auth.encode()).decode()
    return json.dumps({"auths": {registry_host(repository): {"auth": encoded}}})


def pull_secret(scope: ServiceScope) -> k8s.core.v1.Secret | None:
    image = scope.config.image
    if image.pull_auth is None:
        return None
    # pulumi-kubernetes keeps a Secret's data and stringData secret in the state; the option
    # below says so explicitly
    content = docker_config(image.repository, image.pull_auth.get_secret_value())
    return k8s.core.v1.Secret(
        f"{scope.name}-registry",
        metadata=scope.meta(REGISTRY_PULL_SECRET, "api"),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": content},
        opts=pulumi.ResourceOptions.merge(
            scope.opts(), pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
        ),
    )
