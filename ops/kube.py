"""Kubernetes steps the ops commands share, as small functions over the official client.

- ``restart_deployment``: what ``kubectl rollout restart`` does (stamp the pod template with
  the ``kubectl.kubernetes.io/restartedAt`` annotation, so the Deployment rolls new pods).
- ``wait_for_rollout``: what ``kubectl rollout status`` waits for.
- ``force_sync_external_secret``: what ``kubectl annotate es NAME force-sync=$(date +%s)
  --overwrite`` does (External Secrets Operator re-reads the secret store), and
  ``wait_for_external_secret`` waits for the operator to report a newer, successful sync.

Each function takes its API object as a parameter, so tests drive them against a Kubernetes
API served over loopback. Every failure - an HTTP error status, a lost or refused connection
(urllib3 transport errors), an answer that is not the expected object - is raised as an
``OpsError`` whose message names the action and the cause.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from app.contracts import (
    EXTERNAL_SECRETS_GROUP,
    EXTERNAL_SECRETS_VERSION,
    RESTARTED_AT_ANNOTATION,
)
from ops.summary import OpsError, say

FORCE_SYNC = "force-sync"
ES_PLURAL = "externalsecrets"
MERGE_PATCH = "application/merge-patch+json"


def load_api_client(context: str | None = None, config_file: str | None = None) -> client.ApiClient:
    """An API client from the in-cluster service account or a kubeconfig (``--context``)."""
    try:
        if context is None and config_file is None:
            try:
                config.load_incluster_config()
                return client.ApiClient()
            except ConfigException:
                pass
        cfg = client.Configuration()
        config.load_kube_config(config_file=config_file, context=context, client_configuration=cfg)
        return client.ApiClient(configuration=cfg)
    except (ConfigException, OSError) as exc:
        where = f"context {context!r}" if context else "the current context"
        raise OpsError(f"cannot load Kubernetes credentials for {where}: {exc}") from None


def _api_error(action: str, exc: ApiException) -> OpsError:
    reason = exc.reason or "error"
    if exc.status == 404:
        return OpsError(f"{action} failed: not found (HTTP 404); check --namespace and --context")
    if exc.status in (401, 403):
        return OpsError(f"{action} failed: access denied (HTTP {exc.status} {reason})")
    return OpsError(f"{action} failed: HTTP {exc.status} {reason}")


def _transport_error(action: str, exc: urllib3.exceptions.HTTPError) -> OpsError:
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    return OpsError(
        f"{action} failed: the Kubernetes API could not be reached or dropped the connection "
        f"({type(cause).__name__}: {cause}); check --context and the cluster's availability"
    )


@contextlib.contextmanager
def _calling(action: str) -> Iterator[None]:
    """Translate the client's HTTP and transport errors of one API call into OpsError."""
    try:
        yield
    except ApiException as exc:
        raise _api_error(action, exc) from None
    except urllib3.exceptions.HTTPError as exc:
        raise _transport_error(action, exc) from None
    except json.JSONDecodeError as exc:  # a proxy's error page, a truncated body
        raise OpsError(
            f"{action} failed: the Kubernetes API answered with something that is not JSON "
            f"({exc.msg} at character {exc.pos}); is --context pointing at the API server?"
        ) from None


def restart_deployment(
    apps: client.AppsV1Api, name: str, namespace: str, *, now: datetime | None = None
) -> str:
    """Roll the pods of a Deployment; return the restartedAt stamp written."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}
    with _calling(f"restarting deployment {namespace}/{name}"):
        apps.patch_namespaced_deployment(name, namespace, body)
    return stamp


def rollout_state(deployment: Any) -> tuple[bool, str]:
    """(done, description) of a Deployment's rollout, judged like ``kubectl rollout status``."""
    spec_replicas = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    status = deployment.status or client.V1DeploymentStatus()
    generation = deployment.metadata.generation or 0
    observed = status.observed_generation or 0
    updated = status.updated_replicas or 0
    total = status.replicas or 0
    available = status.available_replicas or 0
    for cond in status.conditions or []:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            raise OpsError(
                f"deployment {deployment.metadata.name} exceeded its progress deadline: "
                f"{cond.message or 'no message'}"
            )
    if observed < generation:
        return False, "waiting for the deployment spec update to be observed"
    if updated < spec_replicas:
        return False, f"{updated} of {spec_replicas} new replicas updated"
    if total > updated:
        return False, f"{total - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, f"{available} of {spec_replicas} replicas updated and available"


def wait_for_rollout(
    apps: client.AppsV1Api,
    name: str,
    namespace: str,
    *,
    timeout: float = 300.0,
    interval: float = 2.0,
    progress: Callable[[str], None] = say,
) -> str:
    """Wait until the Deployment's rollout is complete; raise OpsError on timeout."""
    started = time.monotonic()
    last = ""
    while True:
        action = f"reading deployment {namespace}/{name}"
        with _calling(action):
            deployment = apps.read_namespaced_deployment(name, namespace)
        if not (
            isinstance(deployment, client.V1Deployment)
            and deployment.metadata is not None
            and deployment.spec is not None
        ):
            raise OpsError(f"{action} failed: the Kubernetes API did not answer with a Deployment")
        done, state = rollout_state(deployment)
        if state != last:
            progress(f"  {namespace}/{name}: {state}")
            last = state
        if done:
            return state
        if time.monotonic() - started >= timeout:
            raise OpsError(
                f"the rollout of deployment {namespace}/{name} did not finish within "
                f"{timeout:g} s ({state})"
            )
        time.sleep(interval)


def _es_status(custom: client.CustomObjectsApi, name: str, namespace: str) -> dict[str, Any]:
    action = f"reading ExternalSecret {namespace}/{name}"
    with _calling(action):
        obj = custom.get_namespaced_custom_object(
            EXTERNAL_SECRETS_GROUP, EXTERNAL_SECRETS_VERSION, namespace, ES_PLURAL, name
        )
    status = obj.get("status") if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or not isinstance(status, dict | None):
        raise OpsError(f"{action} failed: the Kubernetes API did not answer with an ExternalSecret")
    return dict(status or {})


def force_sync_external_secret(
    custom: client.CustomObjectsApi, name: str, namespace: str, *, now: float | None = None
) -> str:
    """Set the ``force-sync`` annotation to a new value; return the previous refreshTime.

    The value is the current time with microseconds, so two syncs in one second differ.
    """
    before = str(_es_status(custom, name, namespace).get("refreshTime") or "")
    # a new value every call (two syncs within one second must both trigger a refresh)
    stamp = f"{now if now is not None else time.time():.6f}"
    body = {"metadata": {"annotations": {FORCE_SYNC: stamp}}}
    with _calling(f"forcing a sync of ExternalSecret {namespace}/{name}"):
        custom.patch_namespaced_custom_object(
            EXTERNAL_SECRETS_GROUP,
            EXTERNAL_SECRETS_VERSION,
            namespace,
            ES_PLURAL,
            name,
            body,
            _content_type=MERGE_PATCH,
        )
    return before


def wait_for_external_secret(
    custom: client.CustomObjectsApi,
    name: str,
    namespace: str,
    previous_refresh: str,
    *,
    timeout: float = 120.0,
    interval: float = 2.0,
    progress: Callable[[str], None] = say,
) -> str:
    """Wait until the ExternalSecret reports a refresh newer than ``previous_refresh`` and Ready."""
    started = time.monotonic()
    while True:
        status = _es_status(custom, name, namespace)
        refreshed = str(status.get("refreshTime") or "")
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        if refreshed and refreshed != previous_refresh and ready is not None:
            if ready.get("status") == "True":
                progress(f"  ExternalSecret {namespace}/{name} synced at {refreshed}")
                return refreshed
            raise OpsError(
                f"ExternalSecret {namespace}/{name} failed to sync: "
                f"{ready.get('reason') or ''} {ready.get('message') or ''}".rstrip()
            )
        if time.monotonic() - started >= timeout:
            raise OpsError(
                f"ExternalSecret {namespace}/{name} did not sync within {timeout:g} s "
                f"(last refresh {refreshed or 'never'}); is External Secrets Operator running?"
            )
        progress(f"  waiting for ExternalSecret {namespace}/{name} to sync ...")
        time.sleep(interval)
