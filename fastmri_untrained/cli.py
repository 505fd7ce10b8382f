"""Command-line interface: ``fastmri-untrained <subcommand>``."""


def main(argv=None):
    raise SystemExit("not yet")
