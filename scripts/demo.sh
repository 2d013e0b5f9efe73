#!/usr/bin/env bash
# Install zonewatch on Debian and run the demo: the server on embedded defaults and a simulated
# fleet. It prints the URL to open and the login. Ctrl-C stops everything.
#     sudo scripts/demo.sh [--devices N] [--port P]
set -euo pipefail
source "$(dirname "$0")/setup.sh"

zw_debian_packages "${ZW_BUILD_PACKAGES[@]}" mosquitto
zw_venv .venv "agent,server"
exec .venv/bin/zonewatch demo "$@"
