"""A device client on Python's standard library only (ssl, http.client).

Usage: python_client.py PORT CA CERT KEY STATUS|UPLOAD:SERIES:LINES ...
Each request goes on a new connection; every connection after the first offers
the previous connection's session. Prints one JSON line per connection:
{"version", "cipher", "resumed", "status", "body"}.
"""
import http.client
import json
import socket
import ssl
import sys


def main() -> None:
    port, ca, cert, key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    session = None
    for request in sys.argv[5:]:
        raw = socket.create_connection(("127.0.0.1", int(port)))
        tls = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        conn = http.client.HTTPConnection("localhost")
        conn.sock = tls
        if request == "STATUS":
            conn.request("GET", "/device_endpoint")
        else:
            _, series, lines = request.split(":", 2)
            boundary = "pyfleet3c1b"
            body = (
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"{series}\"; "
                f"filename=\"{series}.csv\"\r\nContent-Type: text/csv\r\n\r\n"
                + lines.replace(";", "\n")
                + f"\n\r\n--{boundary}--\r\n"
            ).encode()
            conn.request(
                "POST",
                "/device_endpoint",
                body=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        answer = conn.getresponse()
        print(
            json.dumps(
                {
                    "version": tls.version(),
                    "cipher": tls.cipher()[0],
                    "resumed": tls.session_reused,
                    "status": answer.status,
                    "body": answer.read().decode(),
                }
            ),
            flush=True,
        )
        session = tls.session
        conn.close()


if __name__ == "__main__":
    main()
