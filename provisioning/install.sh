#!/bin/sh
# Install the zonewatch agent on this kiosk or counter PC from an install bundle made by
# `zonewatch provision bundle`, then enrol it with the bundle's one-time token.
#
#   sudo sh install.sh                 install, enrol, enable and start the agent
#   sudo sh install.sh --root DIR      the same into the directory tree DIR (an image, a test): this machine's
#                                      users, /opt, /etc and services are not touched (DESTDIR works too)
#
# What it does: creates the system user zonewatch-agent; a venv in /opt/zonewatch-agent with the agent from
# wheels/ (offline when the bundle carries the dependencies, else from the package index); /etc/zonewatch
# (0750 root:zonewatch-agent) and /var/lib/zonewatch (0750, the agent's); the hardened systemd unit; then
# `zonewatch-agent enroll` with the token in enrol-token, which it deletes once used.
# Run it again to upgrade the agent: an enrolled device keeps its config (--force enrols it again).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
AGENT_USER=zonewatch-agent
PREFIX=/opt/zonewatch-agent
CONF_DIR=/etc/zonewatch
DATA_DIR=/var/lib/zonewatch
UNIT=zonewatch-agent.service
ROOT=${DESTDIR:-}
PYTHON=python3
SERVER=""
TOKEN_FILE="$HERE/enrol-token"
DEVICE_ID=""
ENROL=yes
FORCE=no

die() {
    echo "install.sh: $*" >&2
    exit 1
}

usage() {
    cat <<EOF
usage: sh install.sh [--root DIR] [--server URL] [--token-file FILE] [--device-id ID] [--python PYTHON]
                     [--no-enrol] [--force]
  --root DIR         install into the directory tree DIR instead of this machine (also: DESTDIR=DIR)
  --server URL       the zonewatch server (default: $(cat "$HERE/server-url" 2>/dev/null || echo none))
  --token-file FILE  the one-time enrolment token (default: enrol-token in this bundle)
  --device-id ID     this device's id (default: the server picks one)
  --python PYTHON    Python 3.11 or newer with venv (default: python3)
  --no-enrol         install only; enrol later with $PREFIX/bin/zonewatch-agent enroll
  --force            enrol again although this device has a config
EOF
}

need_value() {
    [ "$2" -ge 2 ] || die "$1 needs a value; see sh install.sh --help"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) need_value "$1" $#; ROOT=$2; shift 2 ;;
        --server) need_value "$1" $#; SERVER=$2; shift 2 ;;
        --token-file) need_value "$1" $#; TOKEN_FILE=$2; shift 2 ;;
        --device-id) need_value "$1" $#; DEVICE_ID=$2; shift 2 ;;
        --python) need_value "$1" $#; PYTHON=$2; shift 2 ;;
        --no-enrol) ENROL=no; shift ;;
        --force) FORCE=yes; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1'; see sh install.sh --help" ;;
    esac
done

if [ -n "$ROOT" ]; then
    case "$ROOT" in
        /*) ;;
        *) die "--root needs an absolute path, not '$ROOT'" ;;
    esac
    ROOT=${ROOT%/}
    [ -d "$ROOT" ] || die "--root $ROOT is not a directory; create it first"
fi
[ "$(id -u)" -eq 0 ] || die "run it as root (sudo sh $0): it creates the user $AGENT_USER and writes $PREFIX, \
$CONF_DIR and the systemd unit. To try it without changing this machine, give --root DIR (as root too)"
[ -f "$HERE/wheels/wheel" ] || die "$HERE is not a complete install bundle (wheels/wheel is missing); make a new \
one with: zonewatch provision bundle --zone CODE --out DIR"
WHEEL="$HERE/wheels/$(cat "$HERE/wheels/wheel")"
[ -f "$WHEEL" ] || die "the agent's wheel $WHEEL is missing from the bundle; make a new bundle"
[ -n "$SERVER" ] || SERVER=$(cat "$HERE/server-url")
ZONE=$(cat "$HERE/zone")
"$PYTHON" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || die "$PYTHON is not \
Python 3.11 or newer with venv: apt-get install python3 python3-venv (or give --python)"

# -- the user ------------------------------------------------------------------------------------
if [ -n "$ROOT" ]; then
    install -d -m 0755 "$ROOT/etc"
    for f in passwd group; do [ -e "$ROOT/etc/$f" ] || install -m 0644 /dev/null "$ROOT/etc/$f"; done
    for f in shadow gshadow; do [ -e "$ROOT/etc/$f" ] || install -m 0640 /dev/null "$ROOT/etc/$f"; done
fi
if grep -q "^$AGENT_USER:" "$ROOT/etc/passwd"; then
    echo "user $AGENT_USER exists"
elif [ -n "$ROOT" ]; then
    useradd --prefix "$ROOT" --system --user-group --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "zonewatch agent" "$AGENT_USER"
else
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "zonewatch agent" "$AGENT_USER"
fi
AGENT_UID=$(awk -F: -v u="$AGENT_USER" '$1 == u { print $3 }' "$ROOT/etc/passwd")
AGENT_GID=$(awk -F: -v u="$AGENT_USER" '$1 == u { print $4 }' "$ROOT/etc/passwd")
[ -n "$AGENT_UID" ] && [ -n "$AGENT_GID" ] || die "user $AGENT_USER was not created in $ROOT/etc/passwd"

# -- directories ---------------------------------------------------------------------------------
install -d -m 0755 "$ROOT/opt" "$ROOT/etc/systemd/system"
install -d -m 0750 -o 0 -g "$AGENT_GID" "$ROOT$CONF_DIR"
install -d -m 0750 -o "$AGENT_UID" -g "$AGENT_GID" "$ROOT$DATA_DIR"

# -- the agent in its own venv -------------------------------------------------------------------
[ -x "$ROOT$PREFIX/bin/python" ] || "$PYTHON" -m venv "$ROOT$PREFIX"
pip_install() {
    "$ROOT$PREFIX/bin/python" -m pip --disable-pip-version-check --no-input -q install --upgrade "$@"
}
if [ -f "$HERE/wheels/with-dependencies" ]; then
    echo "installing the agent from the bundle's wheels (offline)"
    pip_install --no-index --find-links "$HERE/wheels" "$WHEEL[agent]" || die "the bundle's \
wheels do not install here (another Python version or architecture than where the bundle was made?); make the \
bundle on a machine like this one, or without --deps to install the dependencies from the package index"
else
    echo "installing the agent; its dependencies come from the package index (pip's configured index)"
    pip_install "$WHEEL[agent]" || die "pip could not install the agent's dependencies; check \
access to the package index (pip config), or make the bundle with --deps installed to carry them"
fi
install -m 0644 "$HERE/$UNIT" "$ROOT/etc/systemd/system/$UNIT"
echo "installed $PREFIX and /etc/systemd/system/$UNIT"

# -- enrolment -----------------------------------------------------------------------------------
ENROLLED=no
if [ "$ENROL" = no ]; then
    echo "not enrolled (--no-enrol): $PREFIX/bin/zonewatch-agent enroll --server URL --token-file FILE"
elif [ -e "$ROOT$CONF_DIR/agent.toml" ] && [ "$FORCE" = no ]; then
    echo "$CONF_DIR/agent.toml exists: this device is enrolled already and keeps its config (--force enrols again)"
    ENROLLED=yes
else
    [ -s "$TOKEN_FILE" ] || die "no enrolment token at $TOKEN_FILE (used already?); ask an admin for one \
(zonewatch provision token create --zone $ZONE) and give it with --token-file FILE"
    set -- enroll --server "$SERVER" --token-file "$TOKEN_FILE" --zone "$ZONE" --config "$CONF_DIR/agent.toml" \
        --data-dir "$DATA_DIR" --user "$AGENT_USER"
    [ -z "$ROOT" ] || set -- "$@" --root "$ROOT"
    [ ! -f "$HERE/server-ca.pem" ] || set -- "$@" --ca-file "$HERE/server-ca.pem"
    [ -z "$DEVICE_ID" ] || set -- "$@" --device-id "$DEVICE_ID"
    [ "$FORCE" = no ] || set -- "$@" --force
    "$ROOT$PREFIX/bin/zonewatch-agent" "$@" || die "enrolment failed (the reason is above); fix it and run \
sh install.sh again: the agent is installed, only enrolment is left"
    chown "$AGENT_UID:$AGENT_GID" "$ROOT$CONF_DIR/agent.toml" "$ROOT$CONF_DIR/mqtt-password" "$ROOT$DATA_DIR"
    [ "$TOKEN_FILE" != "$HERE/enrol-token" ] || rm -f "$TOKEN_FILE"  # spent: it works once
    ENROLLED=yes
fi

# -- the service ---------------------------------------------------------------------------------
if [ -n "$ROOT" ]; then
    if [ "$ENROLLED" = yes ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl --root="$ROOT" enable "$UNIT" >/dev/null 2>&1; then
            echo "enabled $UNIT in $ROOT"
        else
            echo "could not enable $UNIT in $ROOT; do it there: systemctl enable $UNIT"
        fi
    fi
elif [ ! -d /run/systemd/system ]; then
    echo "systemd is not running here: start the agent with $PREFIX/bin/zonewatch-agent run"
elif [ "$ENROLLED" = yes ]; then
    systemctl daemon-reload
    systemctl enable "$UNIT"
    systemctl restart "$UNIT"
    echo "started $UNIT; follow it with: journalctl -u $UNIT -f"
else
    systemctl daemon-reload
fi
echo "done"
