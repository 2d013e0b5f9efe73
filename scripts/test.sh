#!/usr/bin/env bash
# Install everything zonewatch's test suite needs on Debian, then run the whole suite inside a
# private network namespace that has only loopback: no test can send a packet beyond 127.0.0.0/8.
#     sudo scripts/test.sh            # everything
#     sudo scripts/test.sh -k cups    # extra arguments go to pytest
set -euo pipefail
source "$(dirname "$0")/setup.sh"

zw_debian_packages "${ZW_BUILD_PACKAGES[@]}" "${ZW_PEER_PACKAGES[@]}"
zw_venv .venv "dev"
# A second environment with only the agent extra proves a device never needs server packages.
zw_venv .venv-agent "agent"

if [ "$(id -u)" -ne 0 ]; then
    echo "The suite runs as root inside 'unshare -n' (a loopback-only network namespace) and starts" >&2
    echo "cupsd, postgres and mosquitto as their own system users. Run: sudo scripts/test.sh" >&2
    exit 1
fi

echo "==> running the test suite in a loopback-only network namespace"
set +e
unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' zonewatch-tests "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here." >&2
fi
exit "$status"
