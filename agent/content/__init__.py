"""Content bundles on the device: safe unpacking, download with resume, signature check, atomic install with
rollback, and the desired-state handler that ties them together.

:mod:`.archive` and :mod:`.manifest` hold no state and need nothing beyond the standard library and msgspec,
so the server validates an uploaded bundle with exactly the rules the agent applies.
"""
