"""`SessionSigner` with its keys checked once (`_PreparedKeys`): what it signs and verifies is
what PyJWT's own functions sign and verify, with the same keys, and nothing else is accepted.
The server-level cases (every malformed or forged token a client can send) are in
tests/test_auth.py."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm

from agenthub.auth.jwt import ALGORITHM, SessionSigner, _PreparedKeys, key_id
from agenthub.errors import Unauthorized

CURRENT = "c" * 64
PREVIOUS = "p" * 64


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "role": "agent",
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "tid": str(uuid.uuid4()),
    }
    return base | overrides


def test_the_signer_decodes_with_its_prepared_keys() -> None:
    """Pins PyJWT's attribute the signer reaches into: if it moved, verification would silently
    go back to checking the key every time (slower, not wrong), and this says so."""
    signer = SessionSigner(CURRENT, 600, [PREVIOUS])
    algorithm = signer._jwt._jws.get_algorithm_by_name(ALGORITHM)
    assert isinstance(algorithm, _PreparedKeys)
    # PyJWT's module-level functions keep their own stock algorithm.
    assert type(jwt.api_jws._jws_global_obj.get_algorithm_by_name(ALGORITHM)) is HMACAlgorithm


def test_what_it_signs_pyjwt_verifies_and_the_other_way_round() -> None:
    signer = SessionSigner(CURRENT, 600)
    agent, token_id = uuid.uuid4(), uuid.uuid4()
    issued = signer.issue(agent, "admin", token_id)
    decoded = jwt.decode(issued.token, CURRENT, algorithms=[ALGORITHM])
    assert decoded["sub"] == str(agent)
    assert decoded["tid"] == str(token_id)
    assert jwt.get_unverified_header(issued.token)["kid"] == key_id(CURRENT)

    body = claims(role="agent")
    principal = signer.verify(jwt.encode(body, CURRENT, algorithm=ALGORITHM))
    assert str(principal.agent_id) == body["sub"]
    assert principal.role == "agent"
    assert principal.expires_at == body["exp"]


def test_previous_keys_verify_and_unknown_ones_do_not() -> None:
    signer = SessionSigner(CURRENT, 600, [PREVIOUS])
    by_previous = jwt.encode(claims(), PREVIOUS, algorithm=ALGORITHM)  # no kid: every key tried
    assert signer.verify(by_previous).role == "agent"
    named = jwt.encode(claims(), PREVIOUS, algorithm=ALGORITHM, headers={"kid": key_id(PREVIOUS)})
    assert signer.verify(named).role == "agent"
    for token in (
        jwt.encode(claims(), "x" * 48, algorithm=ALGORITHM),
        jwt.encode(claims(), PREVIOUS, algorithm=ALGORITHM, headers={"kid": key_id(CURRENT)}),
        jwt.encode(claims(), CURRENT, algorithm="HS512"),
        jwt.encode(claims(exp=int(time.time()) - 5), CURRENT, algorithm=ALGORITHM),
    ):
        with pytest.raises(Unauthorized):
            signer.verify(token)
    rotated = SessionSigner(CURRENT, 600)  # the previous key dropped
    with pytest.raises(Unauthorized):
        rotated.verify(named)


def test_a_key_other_than_the_signers_is_still_checked() -> None:
    """Only the signer's own keys skip PyJWT's checks; anything else gets them."""
    algorithm = _PreparedKeys([CURRENT])
    assert algorithm.prepare_key(CURRENT) == CURRENT.encode()
    with pytest.raises(jwt.InvalidKeyError):
        algorithm.prepare_key("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----")
    with pytest.raises(jwt.InvalidKeyError):
        algorithm.prepare_key("")
