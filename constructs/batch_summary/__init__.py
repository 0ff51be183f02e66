"""The batch job's summary step, shipped as Lambda code next to its construct.

The construct zips this folder as the function's code (no Docker bundling); the tests run
the same handler against moto's server.
"""
