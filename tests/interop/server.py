"""A small oslo.messaging RPC server for interoperability tests.

Serves `echo`, `add`, `whoami`, `fail`, `record` and `recorded` on --topic (and
--topic.--server). Prints READY once consuming, and stops when stdin closes."""

import sys
import threading

import common  # first: silences import-time deprecation warnings
import oslo_messaging as messaging
import trove_secure


class Endpoint:
    target = messaging.Target(version="1.3")

    def __init__(self, name):
        self.name = name
        self.records = []
        self.lock = threading.Lock()

    def echo(self, ctxt, **kwargs):
        return kwargs

    def add(self, ctxt, a, b):
        return a + b

    def whoami(self, ctxt):
        return {"server": self.name, "user": ctxt.get("user"), "request_id": ctxt.get("request_id")}

    def fail(self, ctxt):
        raise ValueError("python says no")

    def record(self, ctxt, n):
        with self.lock:
            self.records.append(n)

    def recorded(self, ctxt):
        with self.lock:
            return list(self.records)


def main():
    p = common.parser(__doc__)
    p.add_argument("--server", default="py-server")
    args = p.parse_args()
    transport = common.transport(args)
    target = messaging.Target(topic=args.topic, server=args.server)
    server = messaging.get_rpc_server(
        transport,
        target,
        [Endpoint(args.server)],
        serializer=trove_secure.SecureSerializer(args.key),
        access_policy=messaging.DefaultRPCAccessPolicy,
    )
    server.start()
    print("READY", flush=True)
    sys.stdin.read()
    server.stop()
    server.wait()
    transport.cleanup()


if __name__ == "__main__":
    main()
