# A SPIRE install as SPIRE leaves it, written without spire-rs: the server's SQLite datastore
# (SPIRE's schema dump plus rows in SPIRE's shape), the server's and the agent's disk key
# manager files (keys.json) and the agent's agent-data.json.
#
# argv: <SPIRE schema dump .sql> <server dir> <agent data dir> <workload uid>
# Writes <server dir>/datastore.sqlite3 and <server dir>/keys.json,
# <agent data dir>/keys.json and <agent data dir>/agent-data.json; prints a JSON summary.
import base64
import datetime
import json
import os
import sqlite3
import sys
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

dump, server_dir, agent_dir, uid = sys.argv[1:5]
TD = "spiffe://example.org"
TOKEN = "spire-issued-token"
AGENT_ID = TD + "/spire/agent/join_token/" + TOKEN
WORKLOAD_ID = TD + "/workload"
ENTRY_ID = str(uuid.uuid4())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


# Protocol buffers, the few wire types SPIRE's bundle and CA journal use.
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_int(number, value):
    return varint(number << 3) + varint(value)


def pkcs8(key):
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def spki(key):
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sqlite_time(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00"


# The X.509 CA (slot A, self-signed: no UpstreamAuthority) and the JWT signer (slot A).
ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE"),
    ]
)
ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
ca_not_before = now - datetime.timedelta(hours=1)
ca_not_after = now + datetime.timedelta(days=1)
ca_cert = (
    x509.CertificateBuilder()
    .subject_name(ca_name)
    .issuer_name(ca_name)
    .public_key(ca_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(ca_not_before)
    .not_valid_after(ca_not_after)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .add_extension(
        x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True,
            crl_sign=True, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    .add_extension(ski, critical=False)
    .add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(TD)]), critical=False
    )
    .sign(ca_key, hashes.SHA256())
)
ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
authority_id = ski.digest.hex()
jwt_key = ec.generate_private_key(ec.SECP256R1())
kid = "spireJwtKidFromSpire0000000000000"

# The agent's key (slot A) and the SVID SPIRE issued it 45 minutes into a 1 h lifetime: past
# its half-life, so the agent renews at once.
agent_key = ec.generate_private_key(ec.SECP256R1())
agent_serial = x509.random_serial_number()
agent_not_after = now + datetime.timedelta(minutes=15)
agent_cert = (
    x509.CertificateBuilder()
    .subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE"),
            ]
        )
    )
    .issuer_name(ca_name)
    .public_key(agent_key.public_key())
    .serial_number(agent_serial)
    .not_valid_before(now - datetime.timedelta(minutes=45))
    .not_valid_after(agent_not_after)
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(
        x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=True, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    .add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        critical=False,
    )
    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    .add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(AGENT_ID)]), critical=False
    )
    .sign(ca_key, hashes.SHA256())
)
agent_der = agent_cert.public_bytes(serialization.Encoding.DER)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


b64 = lambda data: base64.b64encode(data).decode()
write_private(
    os.path.join(server_dir, "keys.json"),
    json.dumps({"keys": {"x509-CA-A": b64(pkcs8(ca_key)), "JWT-Signer-A": b64(pkcs8(jwt_key))}}),
)
write_private(
    os.path.join(agent_dir, "keys.json"),
    json.dumps({"keys": {"agent-svid-A": b64(pkcs8(agent_key))}}),
)
write_private(
    os.path.join(agent_dir, "agent-data.json"),
    json.dumps({"svid": [b64(agent_der)], "bundle": [b64(ca_der)], "reattestable": False}),
)

# spire.common.Bundle: trust_domain_id 1, root_cas 2 {der_bytes 1},
# jwt_signing_keys 3 {pkix_bytes 1, kid 2, not_after 3}, refresh_hint 4, sequence_number 5.
bundle = (
    field_bytes(1, TD.encode())
    + field_bytes(2, field_bytes(1, ca_der))
    + field_bytes(
        3,
        field_bytes(1, spki(jwt_key))
        + field_bytes(2, kid.encode())
        + field_int(3, int(ca_not_after.timestamp())),
    )
    + field_int(5, 2)
)
# SPIRE's CA journal: x509_cas 1 {slot_id 1, issued_at 2, certificate 3, status 5 (3 = active),
# authority_id 6, not_after 7}, jwt_keys 2 {slot_id 1, issued_at 2, not_after 3, kid 4,
# public_key 5, status 6}.
journal = field_bytes(
    1,
    field_bytes(1, b"A")
    + field_int(2, int(ca_not_before.timestamp()))
    + field_bytes(3, ca_der)
    + field_int(5, 3)
    + field_bytes(6, authority_id.encode())
    + field_int(7, int(ca_not_after.timestamp())),
) + field_bytes(
    2,
    field_bytes(1, b"A")
    + field_int(2, int(ca_not_before.timestamp()))
    + field_int(3, int(ca_not_after.timestamp()))
    + field_bytes(4, kid.encode())
    + field_bytes(5, spki(jwt_key))
    + field_int(6, 3),
)

t = sqlite_time(now - datetime.timedelta(minutes=45))
db = sqlite3.connect(os.path.join(server_dir, "datastore.sqlite3"))
db.executescript(open(dump).read())
db.execute("DELETE FROM bundles")
db.execute("DELETE FROM ca_journals")
db.execute(
    "INSERT INTO bundles (created_at, updated_at, trust_domain, data) VALUES (?, ?, ?, ?)",
    (t, t, TD, bundle),
)
db.execute(
    "INSERT INTO ca_journals (created_at, updated_at, data, active_x509_authority_id, "
    "active_jwt_authority_id) VALUES (?, ?, ?, ?, ?)",
    (t, t, journal, authority_id, kid),
)
# Schema 24 added the agent's version to the node row; schema 23 has no such column.
node_columns = {row[1] for row in db.execute("PRAGMA table_info(attested_node_entries)")}
version = ("agent_version", "'1.14.2'") if "agent_version" in node_columns else None
db.execute(
    "INSERT INTO attested_node_entries (created_at, updated_at, spiffe_id, data_type, "
    "serial_number, expires_at, new_serial_number, new_expires_at, can_reattest"
    + (", " + version[0] if version else "")
    + ") VALUES (?, ?, ?, 'join_token', ?, ?, '', NULL, 0"
    + (", " + version[1] if version else "")
    + ")",
    (t, t, AGENT_ID, str(agent_serial), sqlite_time(agent_not_after)),
)
cur = db.execute(
    "INSERT INTO registered_entries (created_at, updated_at, entry_id, spiffe_id, parent_id, ttl, "
    "admin, downstream, expiry, revision_number, store_svid, hint, jwt_svid_ttl) "
    "VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, '', 0)",
    (t, t, ENTRY_ID, WORKLOAD_ID, AGENT_ID),
)
db.execute(
    "INSERT INTO selectors (created_at, updated_at, registered_entry_id, type, value) "
    "VALUES (?, ?, ?, 'unix', ?)",
    (t, t, cur.lastrowid, "uid:" + uid),
)
db.commit()
db.close()

print(
    json.dumps(
        {
            "agent_id": AGENT_ID,
            "agent_serial": str(agent_serial),
            "authority_id": authority_id,
            "entry_id": ENTRY_ID,
            "workload_id": WORKLOAD_ID,
            "root": b64(ca_der),
        }
    )
)
