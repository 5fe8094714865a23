"""``X-Webhook-Signature`` is what seed 003's Node receiver computes."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from processors.webhooks.signing import new_secret, sign, verify

NODE = """
const crypto = require("crypto");
const [secret, body] = process.argv.slice(1);
process.stdout.write(crypto.createHmac("sha256", secret).update(body).digest("hex"));
"""


def node_signature(secret: str, body: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed: it is the independent implementation of the seed's check")
    done = subprocess.run(
        [node, "-e", NODE, secret, body], capture_output=True, check=True, timeout=30
    )
    return done.stdout.decode()


@pytest.mark.parametrize(
    "body",
    [
        '{"id":"d1","type":"email.bounce"}',
        '{"recipient":"zoë@exämple.com","note":"ünïcode ✓"}',  # UTF-8, as Node reads it
        "",
    ],
)
def test_signature_equals_nodes_hmac(body: str) -> None:
    secret = "whsec_test_secret"
    assert sign(secret, body.encode()) == node_signature(secret, body)


def test_verify_accepts_the_signature_and_refuses_any_change() -> None:
    body = b'{"id":"d1"}'
    signature = sign("s1", body)
    assert verify("s1", body, signature)
    assert verify("s1", body, signature.upper())
    assert not verify("s2", body, signature)
    assert not verify("s1", b'{"id":"d2"}', signature)
    assert not verify("s1", body, "")


def test_generated_secrets_are_prefixed_and_unique() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(s.startswith("whsec_") and len(s) >= 40 for s in secrets)
