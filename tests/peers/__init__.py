"""Real peers the tests run against, each a pytest plugin with its fixtures.

Every peer is a real process started on a free 127.0.0.1 port and always stopped
after. A missing binary fails the fixture with the Debian package to install.
"""
