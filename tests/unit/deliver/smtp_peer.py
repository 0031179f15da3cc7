"""tests/unit/deliver/smtp_peer.py -- a real SMTP server (aiosmtpd) for test_smtp.

Run with /usr/bin/python3 (Debian's python3-aiosmtpd). Usage:
  smtp_peer.py PORT DIR [--tls CERT KEY] [--auth USER:PASS] [--rcpt-fail CODE:N]

Prints "ready" on stdout once it accepts connections. Each message received
is written, before the 250 reply to DATA, as DIR/NNN.eml (the bytes as
received) and DIR/NNN.json: what Python's own email parser (policy=default,
an independent MIME implementation) makes of it, plus the session facts
(TLS, authenticated user, envelope). --rcpt-fail 451:2 answers the first two
RCPT commands with 451 (550: permanent), then accepts.
"""
import json
import os
import ssl
import sys
import time
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Handler:
    def __init__(self, outdir, rcpt_fail):
        self.outdir = outdir
        self.n = 0
        self.rcpt_fail = rcpt_fail  # (code, count) or None
        self.rcpts_seen = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpts_seen += 1
        if self.rcpt_fail and self.rcpts_seen <= self.rcpt_fail[1]:
            code = self.rcpt_fail[0]
            return f"{code} {'4.3.0 try again later' if code < 500 else '5.1.1 no such user'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        parts = {}
        for part in msg.walk():
            ct = part.get_content_type()
            if ct in ("text/plain", "text/html") and not part.is_multipart():
                parts[ct] = part.get_content()
        out = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "auth": getattr(session, "jd_user", None) if session.authenticated else None,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "date": str(msg["date"]),
            "message_id": str(msg["message-id"]),
            "list_unsubscribe": str(msg["list-unsubscribe"]),
            "list_unsubscribe_post": str(msg["list-unsubscribe-post"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "defects": [type(d).__name__ for p in msg.walk() for d in p.defects],
            "crlf_only": b"\n" not in raw.replace(b"\r\n", b""),
            "max_line": max(len(l) for l in raw.split(b"\r\n")),
        }
        base = os.path.join(self.outdir, "%03d" % self.n)
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        with open(base + ".json.tmp", "w") as f:
            json.dump(out, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as Q%03d" % self.n


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    args = sys.argv[3:]
    kw = {}
    rcpt_fail = None
    auth = None
    while args:
        a = args.pop(0)
        if a == "--tls":
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(args.pop(0), args.pop(0))
            kw.update(tls_context=ctx, require_starttls=True)
        elif a == "--auth":
            auth = args.pop(0).split(":", 1)
        elif a == "--rcpt-fail":
            c, n = args.pop(0).split(":")
            rcpt_fail = (int(c), int(n))
    if auth:
        def authenticator(server, session, envelope, mechanism, data):
            ok = data.login.decode() == auth[0] and data.password.decode() == auth[1]
            if ok:
                session.jd_user = data.login.decode()
            return AuthResult(success=ok, handled=False)
        kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    # decode_data=False keeps the bytes; 8BITMIME not needed (we send 7bit QP)
    ctl = Controller(Handler(outdir, rcpt_fail), hostname="127.0.0.1", port=port, **kw)
    ctl.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ctl.stop()


if __name__ == "__main__":
    main()
