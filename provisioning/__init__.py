"""Enrolment, device credentials, broker password/ACL/TLS files, systemd units, install bundles."""
