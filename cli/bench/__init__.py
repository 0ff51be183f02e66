"""Streaming-LLM endpoint benchmark behind ``inferfleet bench``.

config (what to run) -> workload (seeded request schedule) -> engine (closed or
open loop, one step at a time) -> metrics -> results / report / plots.
"""
