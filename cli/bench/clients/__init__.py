"""One client per ``--api``: each turns a request spec into a timed record."""

from __future__ import annotations

from inferfleet.cli.bench.clients.base import Client, ClientSettings


def client_for(api: str, settings: ClientSettings) -> Client:
    if api == "openai":
        from inferfleet.cli.bench.clients.openai import OpenAIClient as chosen
    elif api == "triton":
        from inferfleet.cli.bench.clients.triton import TritonClient as chosen
    elif api == "sagemaker":
        from inferfleet.cli.bench.clients.sagemaker import SageMakerClient as chosen
    elif api == "classify":
        from inferfleet.cli.bench.clients.classify import ClassifyClient as chosen
    else:
        raise ValueError(f"unknown api {api}")
    return chosen(settings)


__all__ = ["Client", "ClientSettings", "client_for"]
