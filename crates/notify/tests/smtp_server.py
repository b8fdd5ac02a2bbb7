"""A real SMTP server for sekisho-notify's mail tests: aiosmtpd on 127.0.0.1, on a free port.

Usage: smtp_server.py --dir DIR --cert CERT --key KEY [--mode starttls|tls|plain] [--user U --password P]
  [--port N]  (also used by the gateway's end-to-end response tests, crates/sekisho/tests/response.rs)

  starttls  STARTTLS offered and required before any mail (and before AUTH)
  tls       implicit TLS from the first byte (as on port 465)
  plain     no TLS at all, STARTTLS not offered (a local relay)

With --user, AUTH (PLAIN or LOGIN) is required and accepts only that user name and password. A
recipient whose local part is "reject" gets 550, "tempfail" gets 451. Every accepted message is
written to DIR as JSON, decoded with Python's email package: {"from", "to", "subject", "text",
"message_id", "date", "reply_to", "content_type", "tls", "auth"}. Prints "port N" once it listens;
stops when its standard input closes (the test ended) or on SIGTERM.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import signal
import ssl
import sys
import uuid
import warnings

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    sys.exit(
        "aiosmtpd is missing: install Debian's python3-aiosmtpd (apt-get install python3-aiosmtpd) "
        "or pip install aiosmtpd; scripts/test.sh installs it"
    )


class Handler:
    def __init__(self, directory):
        self.directory = directory

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "reject":
            return "550 5.1.1 <%s>: no such user here" % address
        if local == "tempfail":
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(msg["subject"]),
            "text": body.get_content() if body is not None else "",
            "message_id": str(msg["message-id"] or ""),
            "date": str(msg["date"] or ""),
            "reply_to": str(msg["reply-to"] or ""),
            "content_type": msg.get_content_type(),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth": session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
        }
        path = os.path.join(self.directory, uuid.uuid4().hex + ".json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(path + ".tmp", path)
        return "250 OK: queued"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers 235 or 535 itself
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--mode", choices=["starttls", "tls", "plain"], default="starttls")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    a = p.parse_args()
    # aiosmtpd's own notes (AUTH without STARTTLS in implicit mode, deprecations) are not news here.
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    implicit = a.mode == "tls"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    handler = Handler(a.dir)

    def protocol():
        kwargs = {"hostname": "smtp.test", "loop": loop}
        if a.mode == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            kwargs["auth_require_tls"] = False  # implicit TLS, or a loopback relay
        if a.user:
            kwargs.update(auth_required=True, authenticator=authenticator(a.user, a.password or ""))
        return SMTP(handler, **kwargs)

    server = loop.run_until_complete(
        loop.create_server(protocol, host="127.0.0.1", port=a.port, ssl=ctx if implicit else None)
    )
    print("port %d" % server.sockets[0].getsockname()[1], flush=True)
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(4096) or loop.stop())
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
