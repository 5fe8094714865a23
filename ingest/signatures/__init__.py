"""One pure verifier per provider signature scheme, chosen by the source's kind.

| kind | module | method |
|---|---|---|
| nexuspromail, generic | ``hmac_body`` | ``nexuspromail-hmac-sha256``, ``generic-hmac-sha256`` |
| svix, resend | ``standard_webhooks`` | ``standard-webhooks-v1`` |
| sendgrid | ``sendgrid`` | ``sendgrid-ecdsa`` |
| mailgun | ``mailgun`` | ``mailgun-hmac`` |
| postmark | ``postmark`` | ``postmark-basic-auth`` |
| ses | ``ses`` (+ ``certs``) | ``sns-v1``, ``sns-v2`` |
| mandrill | ``mandrill`` | ``mandrill-hmac-sha1`` |

Key material is decoded once here, so a malformed secret is a ``ConfigError`` at start
rather than a 401 on every request.
"""

from __future__ import annotations

from ingest.errors import ConfigError
from ingest.settings import SourceSettings
from ingest.signatures.base import CertFetcher, Verified, Verifier, WebhookRequest
from ingest.signatures.certs import fetch_certificate_pem
from ingest.signatures.hmac_body import (
    GENERIC_HEADER,
    GENERIC_METHOD,
    NEXUSPROMAIL_HEADER,
    NEXUSPROMAIL_METHOD,
    HmacBodyVerifier,
)
from ingest.signatures.mailgun import MailgunVerifier
from ingest.signatures.mandrill import MandrillVerifier
from ingest.signatures.postmark import PostmarkVerifier
from ingest.signatures.sendgrid import SendGridVerifier
from ingest.signatures.ses import SnsVerifier
from ingest.signatures.standard_webhooks import StandardWebhooksVerifier

__all__ = ["CertFetcher", "Verified", "Verifier", "WebhookRequest", "build_verifier"]


def build_verifier(source: SourceSettings, *, cert_fetcher: CertFetcher | None = None) -> Verifier:
    """The verifier for one configured source (``cert_fetcher`` is used by SES only)."""
    texts = tuple(s.get_secret_value() for s in source.secrets)
    keys = tuple(t.encode() for t in texts)
    match source.kind:
        case "nexuspromail":
            return HmacBodyVerifier(keys, NEXUSPROMAIL_HEADER, NEXUSPROMAIL_METHOD)
        case "generic":
            return HmacBodyVerifier(keys, GENERIC_HEADER, GENERIC_METHOD)
        case "svix" | "resend":
            return StandardWebhooksVerifier(texts, source.tolerance_s)
        case "sendgrid":
            return SendGridVerifier(texts, source.tolerance_s)
        case "mailgun":
            return MailgunVerifier(keys, source.tolerance_s)
        case "postmark":
            return PostmarkVerifier(texts, source.allowed_ips)
        case "ses":
            return SnsVerifier(cert_fetcher or fetch_certificate_pem, source.topic_arns)
        case "mandrill":
            return MandrillVerifier(keys, source.public_url)
    raise ConfigError(f"no verifier for provider kind {source.kind!r}")
