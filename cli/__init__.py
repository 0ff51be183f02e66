"""The ``inferfleet`` command line."""
