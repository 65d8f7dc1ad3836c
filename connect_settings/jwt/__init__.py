"""Pure token code: canonical requests, qsh, token decoding and minting, install keys.

Nothing in this package imports Django or touches a request object or the ORM, so it can be
tested and benchmarked on its own and reused by the host emulator.
"""
