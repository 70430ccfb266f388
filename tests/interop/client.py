"""A small oslo.messaging RPC client for interoperability tests and the benchmark.

--mode check: calls a server (echo/add/whoami/fail/nope/record) and prints one JSON line
with what came back. --mode bench: N calls and N casts, prints calls/s and casts/s.
--mode selftest: checks the encryption helper against the spec's test vectors."""

import json
import time

import common  # first: silences import-time deprecation warnings
import oslo_messaging as messaging
import trove_secure

CTXT = {"user": "py-user", "project_id": "py-project", "request_id": "req-python", "roles": ["member"], "is_admin": False}


def error_info(exc):
    return {"type": type(exc).__name__, "exc_type": getattr(exc, "exc_type", None), "value": getattr(exc, "value", str(exc))}


def check(client):
    out = {}
    out["add"] = client.call(CTXT, "add", a=2, b=40)
    out["echo"] = client.call(CTXT, "echo", x={"nested": [1, "\u00e9", None]}, password="hunter2")
    out["whoami"] = client.call(CTXT, "whoami")
    for method in ("fail", "nope"):
        try:
            client.call(CTXT, method)
            out[method] = None
        except Exception as exc:  # the test inspects the class reported
            out[method] = error_info(exc)
    try:
        client.prepare(version="1.9").call(CTXT, "echo")
        out["v19"] = None
    except Exception as exc:
        out["v19"] = error_info(exc)
    for n in range(5):
        client.cast(CTXT, "record", n=n)
    return out


def bench(client, n):
    client.call(CTXT, "add", a=0, b=0)
    start = time.monotonic()
    for i in range(n):
        client.call(CTXT, "add", a=i, b=1)
    calls = n / (time.monotonic() - start)
    start = time.monotonic()
    for i in range(n):
        client.cast(CTXT, "record", n=i)
    casts = n / (time.monotonic() - start)
    return {"calls_per_s": calls, "casts_per_s": casts, "n": n}


def main():
    p = common.parser(__doc__)
    p.add_argument("--mode", choices=["check", "bench", "selftest"], default="check")
    p.add_argument("--server", default=None)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--timeout", type=int, default=20)
    args = p.parse_args()
    if args.mode == "selftest":
        trove_secure.selftest()
        print(json.dumps({"selftest": "ok"}), flush=True)
        return
    transport = common.transport(args)
    target = messaging.Target(topic=args.topic, server=args.server, version="1.0")
    client = messaging.get_rpc_client(transport, target, serializer=trove_secure.SecureSerializer(args.key), timeout=args.timeout)
    out = check(client) if args.mode == "check" else bench(client, args.n)
    print(json.dumps(out), flush=True)
    transport.cleanup()


if __name__ == "__main__":
    main()
