# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run): install what zonewatch needs
# on Debian and create the project's virtual environment. Everything here is idempotent.

zw_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$zw_root"

# zw_debian_packages PKG... — install the Debian packages that are missing (as root), or print
# the one apt-get line to run and stop.
zw_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "zonewatch needs these Debian packages, which are not installed:" >&2
        echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        echo "Run that (or run this script as root, which does it for you), then run this script again." >&2
        exit 1
    fi
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# zw_python — a Python 3.11+ with venv support.
zw_python() {
    local py
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"; return 0
        fi
    done
    echo "zonewatch needs Python 3.11 or newer with venv (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
}

# zw_venv DIR EXTRAS — create DIR if needed and install the project with EXTRAS into it.
zw_venv() {
    local dir="$1" extras="$2"
    if [ ! -x "$dir/bin/python" ]; then
        echo "==> creating $dir"
        "$(zw_python)" -m venv "$dir"
        "$dir/bin/pip" install -q --upgrade pip
    fi
    echo "==> installing zonewatch[$extras] into $dir"
    if ! "$dir/bin/pip" install --disable-pip-version-check -e ".[$extras]" >"$dir/install.log" 2>&1; then
        tail -n 40 "$dir/install.log" >&2
        echo "installing zonewatch[$extras] failed; the whole log is $dir/install.log" >&2
        exit 1
    fi
}

# Debian packages: the toolchain that builds pycups, and the real peers the server and tests use.
ZW_BUILD_PACKAGES=(python3 python3-venv python3-dev gcc libcups2-dev iproute2 util-linux systemd)
ZW_PEER_PACKAGES=(mosquitto mosquitto-clients cups-daemon cups-client cups-ipp-utils postgresql dbus avahi-daemon dnsmasq-base chromium fonts-noto-cjk)
