"""Test certificates: a CA, a server certificate for 127.0.0.1/localhost, a client certificate
whose subject is CN=alice,OU=test,O=cairn, another for CN=admin,OU=test,O=cairn, and a self-signed "rogue" client certificate with the
same subject that the CA never signed. Keys are unencrypted PKCS#8 (what Kafka's PEM keystore
reads).

Run as a script to write them into a directory (the kafkajs suite does):
    python tls_certs.py DIR
"""

import datetime
import ipaddress
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# RFC 2253 writes the last RDN first: this subject prints as CN=alice,OU=test,O=cairn.
CLIENT_RDNS = [(NameOID.ORGANIZATION_NAME, "cairn"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "test"), (NameOID.COMMON_NAME, "alice")]
CLIENT_PRINCIPAL = "User:CN=alice,OU=test,O=cairn"
ADMIN_RDNS = [(NameOID.ORGANIZATION_NAME, "cairn"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "test"), (NameOID.COMMON_NAME, "admin")]
ADMIN_PRINCIPAL = "User:CN=admin,OU=test,O=cairn"


def _name(rdns):
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in rdns])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _cert(subject, key, issuer, issuer_key, *, ca=False, server=False, client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer_key is not key:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_certs(directory):
    """Writes the files into `directory` and returns {name: path as str}:
    ca (CA certificate), server_keystore (server key + chain in one PEM, Kafka's
    ssl.keystore.location), server_key / server_chain (the same, apart), client_cert,
    client_key, admin_cert, admin_key (CN=admin,OU=test,O=cairn), rogue_cert, rogue_key, plus
    client_principal and admin_principal (Kafka principals, not paths)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name([(NameOID.ORGANIZATION_NAME, "cairn"), (NameOID.COMMON_NAME, "cairn test CA")])
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)

    server_key = _key()
    server = _cert(_name([(NameOID.COMMON_NAME, "localhost")]), server_key, ca_name, ca_key, server=True)

    client_key = _key()
    client = _cert(_name(CLIENT_RDNS), client_key, ca_name, ca_key, client=True)

    admin_key = _key()
    admin = _cert(_name(ADMIN_RDNS), admin_key, ca_name, ca_key, client=True)

    rogue_key = _key()
    rogue = _cert(_name(CLIENT_RDNS), rogue_key, _name(CLIENT_RDNS), rogue_key, client=True)

    chain = _cert_pem(server) + _cert_pem(ca)
    files = {
        "ca": _cert_pem(ca),
        "server_key": _key_pem(server_key),
        "server_chain": chain,
        "server_keystore": _key_pem(server_key) + chain,
        "client_cert": _cert_pem(client),
        "client_key": _key_pem(client_key),
        "admin_cert": _cert_pem(admin),
        "admin_key": _key_pem(admin_key),
        "rogue_cert": _cert_pem(rogue),
        "rogue_key": _key_pem(rogue_key),
    }
    out = {}
    for name, data in files.items():
        path = d / f"{name}.pem"
        path.write_bytes(data)
        out[name] = str(path)
    out["client_principal"] = CLIENT_PRINCIPAL
    out["admin_principal"] = ADMIN_PRINCIPAL
    assert "User:" + client.subject.rfc4514_string() == CLIENT_PRINCIPAL
    assert "User:" + admin.subject.rfc4514_string() == ADMIN_PRINCIPAL
    return out


if __name__ == "__main__":
    print(json.dumps(make_certs(sys.argv[1])))
