"""The operator's API client trusts and authenticates as a kubeconfig says, in each form a kubeconfig
takes: file paths, or the CA and client certificate embedded as base64 (kind, EKS, GKE) or as PEM.
Checked by a TLS handshake with a server on 127.0.0.1 that requires a client certificate."""

from __future__ import annotations

import base64
import socket
import ssl
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from benchpilot_operator.k8s import APIError, Connection, KubeClient, pem
from tests.cluster.control_plane import _cert, _key, _pem_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("test-ca", ca_key, ca=True)
    srv_key = _key()
    srv = _cert("server", srv_key, ca, ca_key, sans=("127.0.0.1",))
    cli_key = _key()
    cli = _cert("operator-user", cli_key, ca, ca_key)
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM), "srv": srv.public_bytes(serialization.Encoding.PEM),
             "srv_key": _pem_key(srv_key), "cli": cli.public_bytes(serialization.Encoding.PEM),
             "cli_key": _pem_key(cli_key)}
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d, files


def handshake(pki, ctx: ssl.SSLContext) -> str:
    """Connect to a server that requires a client certificate signed by the CA; the CN it saw."""
    d, _ = pki
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(d / "srv", d / "srv_key")
    server_ctx.load_verify_locations(d / "ca")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        port = lsock.getsockname()[1]

        def serve():
            conn, _ = lsock.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    subject = dict(x[0] for x in tls.getpeercert()["subject"])
                    seen.append(subject["commonName"])
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                seen.append(f"refused: {exc}")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.recv(2)
        t.join(5)
    return seen[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("form", ["paths", "base64-str", "base64-bytes", "pem-str"])
def test_ca_and_client_certificate_in_every_kubeconfig_form(pki, form):
    d, f = pki
    url = "https://127.0.0.1:6443"
    if form == "paths":
        conn = Connection(server=url, ca_path=str(d / "ca"), certificate_path=str(d / "cli"),
                          private_key_path=str(d / "cli_key"))
    elif form == "base64-str":  # what kopf passes from a kind/EKS/GKE kubeconfig: YAML strings
        conn = Connection(server=url, ca_data=b64(f["ca"]), certificate_data=b64(f["cli"]),
                          private_key_data=b64(f["cli_key"]))
    elif form == "base64-bytes":
        conn = Connection(server=url, ca_data=b64(f["ca"]).encode(), certificate_data=b64(f["cli"]).encode(),
                          private_key_data=b64(f["cli_key"]).encode())
    else:
        conn = Connection(server=url, ca_data=f["ca"].decode(), certificate_data=f["cli"].decode(),
                          private_key_data=f["cli_key"].decode())
    assert handshake(pki, conn.ssl_context()) == "operator-user"


def test_a_wrong_ca_is_refused_and_garbage_data_is_named(pki):
    _, f = pki
    other = _cert("another-ca", _key(), ca=True).public_bytes(serialization.Encoding.PEM)
    conn = Connection(server="https://127.0.0.1:1", ca_data=b64(other), certificate_data=b64(f["cli"]),
                      private_key_data=b64(f["cli_key"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(pki, conn.ssl_context())
    with pytest.raises(ValueError, match=r"\*-data.*neither PEM nor base64"):
        KubeClient(Connection(server="https://127.0.0.1:1", ca_data="not base64 at all!"))
    assert pem(b64(f["ca"]) + "\n") == f["ca"].decode()


def test_token_and_basic_auth_headers():
    assert Connection(server="https://x", token="t").headers() == {"Authorization": "Bearer t"}
    basic = Connection(server="https://x", username="u", password="p").headers()["Authorization"]
    assert basic == "Basic " + b64(b"u:p")
    assert Connection(server="http://x", insecure=True).ssl_context() is False


async def test_creating_in_a_namespace_being_deleted_is_not_an_error():
    """The API server refuses new objects in a terminating namespace (403, cause NamespaceTerminating);
    the run goes with its namespace, so the operator creates nothing and reports nothing, while a 403
    from RBAC still raises (the caller turns it into a Forbidden condition)."""
    from aiohttp import web

    terminating = {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
                   "message": 'configmaps "r-spec" is forbidden: unable to create new content in namespace n '
                              "because it is being terminated",
                   "details": {"name": "r-spec", "kind": "configmaps", "causes": [
                       {"reason": "NamespaceTerminating", "message": "namespace n is being terminated"}]}}
    rbac = {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": 'jobs.batch is forbidden: User "system:serviceaccount:x:y" cannot create resource "jobs"'}

    async def handler(request):
        body = terminating if "configmaps" in request.path else rbac
        return web.json_response(body, status=403)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client = KubeClient(Connection(server=f"http://127.0.0.1:{port}"))
    try:
        assert await client.create("api/v1/namespaces/n/configmaps", {"metadata": {"name": "r-spec"}}) is False
        with pytest.raises(APIError) as err:
            await client.create("apis/batch/v1/namespaces/n/jobs", {"metadata": {"name": "r-s0"}})
        assert err.value.status == 403 and not err.value.namespace_terminating
    finally:
        await client.close()
        await runner.cleanup()
