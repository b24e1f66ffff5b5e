"""The one shape of an AWS role trust policy for OIDC tokens, used by every program that makes
such a role: the service's IRSA roles, bootstrap's GitHub and Pulumi ESC roles."""

from __future__ import annotations


def web_identity_trust(provider_arn: str, host: str, subject: str, audience: str) -> dict:
    """The role trusts exactly `subject`'s tokens for `audience` from the OIDC provider
    `provider_arn` whose issuer is `host` (without ``https://``)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{host}:sub": subject, f"{host}:aud": audience}},
            }
        ],
    }
