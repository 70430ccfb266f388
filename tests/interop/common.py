"""Shared setup of the interop scripts: configuration and transport."""

import argparse
import warnings

# oslo.service/eventlet print deprecation warnings on import; they are noise here.
warnings.simplefilter("ignore")

from oslo_config import cfg  # noqa: E402
import oslo_messaging as messaging  # noqa: E402


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="transport_url, e.g. rabbit://guest:guest@127.0.0.1:5672/")
    p.add_argument("--exchange", required=True, help="control_exchange")
    p.add_argument("--topic", required=True)
    p.add_argument("--key", default=None, help="Trove-style encryption key (omit for clear text)")
    return p


def transport(args):
    # oslo.messaging registers some options (tracing) on the global CONF only.
    messaging.set_transport_defaults(control_exchange=args.exchange)
    cfg.CONF([], project="trove-interop", default_config_files=[], default_config_dirs=[])
    return messaging.get_rpc_transport(cfg.CONF, url=args.url)
