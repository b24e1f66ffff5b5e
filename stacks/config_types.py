"""Building blocks of the stack config: the base model, value types and the image and resources.

Every `flowchat:*` object is a `ConfigModel` (camelCase keys, unknown keys refused, frozen);
`stacks.config` assembles them into `StackConfig` and parses what the CLI hands over.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel

Cloud = Literal["azure", "aws"]
CLOUDS: tuple[str, ...] = ("azure", "aws")

QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
IMAGE_REPO = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """Invalid stack configuration; the message names every offending `flowchat:` key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  {p}" for p in problems))


def _quantity(value: str) -> str:
    if not QUANTITY.match(value):
        raise ValueError("must be a Kubernetes quantity such as 500m, 256Mi or 10Gi")
    if float(re.sub(r"[A-Za-z]+$", "", value)) <= 0:
        raise ValueError("must be greater than zero")
    return value


def _pinned_image(value: str) -> str:
    """An image reference with an explicit tag that is not `latest` (e.g. redis:7.2.5)."""
    name, _, tag = value.rpartition(":")
    if "@sha256:" in value:
        return value
    if not name or "/" in tag or not IMAGE_TAG.match(tag):
        raise ValueError("must carry an explicit tag, e.g. redis:7.2.5")
    if tag == "latest":
        raise ValueError("must not use the tag 'latest'; pin a version")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
Replicas = Annotated[int, Field(ge=0)]


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ImageConfig(ConfigModel):
    """The one flowchat image (API, worker and emulator)."""

    repository: str = "ghcr.io/flowchat/flowchat"
    tag: str = "0.1.0"
    # `user:token` for a private registry (secret config flowchat:registryAuth, from ESC)
    pull_auth: SecretStr | None = None

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        if "@" in value or not IMAGE_REPO.match(value) or value.rsplit("/", 1)[-1].count(":"):
            raise ValueError(
                "must be a repository without tag or digest (put the tag in image.tag)"
            )
        return value

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, value: str) -> str:
        if value == "latest":
            raise ValueError("must not be 'latest'; pin a version or a git sha")
        if not (IMAGE_TAG.match(value) or DIGEST.match(value)):
            raise ValueError(
                "must be a Docker tag (letters, digits, '.', '_', '-') or sha256 digest"
            )
        return value

    @property
    def ref(self) -> str:
        sep = "@" if self.tag.startswith("sha256:") else ":"
        return f"{self.repository}{sep}{self.tag}"


class Resources(ConfigModel):
    """Requests and limits of one container."""

    cpu_request: Quantity = "100m"
    memory_request: Quantity = "256Mi"
    cpu_limit: Quantity = "1"
    memory_limit: Quantity = "1Gi"

    def manifest(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }
