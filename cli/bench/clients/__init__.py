"""One client per ``--api``, one module each: ``clients/<module>.py`` defines a
:class:`~.base.Client` subclass with ``api = "<api>"``, which registers itself when its
module is imported. The API is the module's name with ``-`` for ``_`` (``triton_grpc.py``
serves ``--api triton-grpc``): Python names take no hyphen, flags read better with one.

A new API is one new module here; :func:`api_names` finds it without importing anything
(so the config can list the APIs before aiohttp is loaded).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferfleet.cli.bench.clients.base import Client, ClientSettings

NOT_APIS = frozenset({"base"})


def api_names() -> tuple[str, ...]:
    """Every API a module of this package serves, by module name."""
    names = (module.name for module in pkgutil.iter_modules(__path__))
    return tuple(sorted(name.replace("_", "-") for name in names if name not in NOT_APIS))


def client_for(api: str, settings: ClientSettings) -> Client:
    from inferfleet.cli.bench.clients.base import Client

    if api not in api_names():
        raise ValueError(f"unknown api {api}; known: {', '.join(api_names())}")
    importlib.import_module(f"{__name__}.{api.replace('-', '_')}")
    return Client.registry[api](settings)
