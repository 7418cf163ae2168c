#!/usr/bin/env bash
# Install seedqa as a bench appliance: the seedqa user, its folders, a virtual
# environment with seedqa in /opt/seedqa/venv, the systemd units, the camera udev
# rule and a settings file; then enable the kiosk app and the nightly backup.
#
# Running it again changes only what differs, and never overwrites an edited
# /etc/seedqa/seedqa.toml. With --prefix DIR nothing outside DIR is touched: the
# files are written under DIR and each system command is printed, not run.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: systemd/install.sh [--prefix DIR] [--source DIR] [--python PYTHON] [--no-enable]

  --prefix DIR     dry run: write every file under DIR, print the commands that
                   would create the user, the virtual environment and enable the
                   units, and run none of them
  --source DIR     the seedqa source tree to install (default: this script's
                   checkout)
  --python PYTHON  the Python 3.11+ that builds the virtual environment (python3)
  --no-enable      install but do not enable or start the units
EOF
}

PREFIX=""
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=python3
ENABLE=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
        --source) SOURCE="${2:?--source needs a folder}"; shift 2 ;;
        --python) PYTHON="${2:?--python needs a program}"; shift 2 ;;
        --no-enable) ENABLE=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

APP_USER=seedqa
VENV=/opt/seedqa/venv
DATA_DIR=/var/lib/seedqa
BACKUP_DIR=/var/lib/seedqa-backups
UNIT_DIR=/etc/systemd/system
UNITS=(seedqa.service seedqa-backup.service seedqa-backup.timer)

if [[ ! -f "$SOURCE/pyproject.toml" || ! -f "$SOURCE/systemd/seedqa.service" ]]; then
    echo "install.sh: $SOURCE is not a seedqa source tree (no pyproject.toml or" \
        "systemd/seedqa.service); pass --source" >&2
    exit 2
fi
if [[ -n "$PREFIX" ]]; then
    mkdir -p "$PREFIX"
    PREFIX="$(cd "$PREFIX" && pwd)"
elif [[ "$(id -u)" -ne 0 ]]; then
    echo "install.sh: run as root (sudo systemd/install.sh), or try --prefix DIR" >&2
    exit 2
fi

say() { echo "install.sh: $*"; }

# Run a system command, or only print it in a dry run.
run() {
    if [[ -n "$PREFIX" ]]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

# Copy SOURCE to TARGET with MODE unless TARGET already has those bytes.
put() {
    local source="$1" target="$PREFIX$2" mode="$3"
    if [[ -f "$target" ]] && cmp -s "$source" "$target"; then
        say "unchanged $2"
        return 1
    fi
    install -D -m "$mode" "$source" "$target"
    say "installed $2"
}

# Write TEXT to TARGET with MODE only if TARGET does not exist yet.
put_once() {
    local text="$1" target="$PREFIX$2" mode="$3"
    if [[ -e "$target" ]]; then
        say "kept existing $2"
        return 0
    fi
    mkdir -p "$(dirname "$target")"
    printf '%s' "$text" > "$target"
    chmod "$mode" "$target"
    say "wrote $2"
}

# 1. The user the app runs as, with access to display, input and camera devices.
if [[ -n "$PREFIX" ]] || ! id "$APP_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "seedqa inspection bench" "$APP_USER"
else
    say "user $APP_USER exists"
fi
for group in video render input plugdev; do
    if [[ -n "$PREFIX" ]] || getent group "$group" >/dev/null; then
        run usermod --append --groups "$group" "$APP_USER"
    fi
done

# 2. Folders: data and backups belong to the app; systemd keeps them so too.
for dir in "$DATA_DIR" "$BACKUP_DIR"; do
    mkdir -p "$PREFIX$dir"
    run chown "$APP_USER:$APP_USER" "$dir"
    chmod 0750 "$PREFIX$dir"
done

# 3. The virtual environment, rebuilt from the source tree on every run.
if [[ -n "$PREFIX" ]] || [[ ! -x "$VENV/bin/python" ]]; then
    run "$PYTHON" -m venv "$VENV"
fi
run "$VENV/bin/pip" install --quiet --upgrade "$SOURCE"
mkdir -p "$PREFIX/usr/local/bin"
for tool in seedqa seedqa-models; do
    if [[ "$(readlink "$PREFIX/usr/local/bin/$tool" 2>/dev/null)" != "$VENV/bin/$tool" ]]; then
        ln -sfn "$VENV/bin/$tool" "$PREFIX/usr/local/bin/$tool"
        say "linked /usr/local/bin/$tool"
    fi
done

# 4. Settings for the seedqa command run by hand (the units set their own folders).
put_once "# seedqa settings; see README.md, section Settings.
[seedqa]
data_dir = \"$DATA_DIR\"
backup_dir = \"$BACKUP_DIR\"
backup_keep = 14
" /etc/seedqa/seedqa.toml 0644

# 5. USB3 Vision cameras (interface class EF, subclass 05) open to the app's group.
udev_changed=0
rule="$(mktemp)"
trap 'rm -f "$rule"' EXIT
cat > "$rule" <<EOF
# USB3 Vision cameras, for the seedqa inspection bench (written by install.sh).
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", IMPORT{builtin}="usb_id"
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ENV{ID_USB_INTERFACES}=="*:ef05??:*", GROUP="$APP_USER", MODE="0660"
EOF
if put "$rule" /etc/udev/rules.d/70-seedqa-cameras.rules 0644; then
    udev_changed=1
fi

# 6. The units.
units_changed=0
for unit in "${UNITS[@]}"; do
    if put "$SOURCE/systemd/$unit" "$UNIT_DIR/$unit" 0644; then
        units_changed=1
    fi
done
if [[ "$udev_changed" -eq 1 ]]; then
    run udevadm control --reload-rules
    run udevadm trigger --subsystem-match=usb
fi
if [[ "$units_changed" -eq 1 ]]; then
    run systemctl daemon-reload
fi
if [[ "$ENABLE" -eq 1 ]]; then
    run systemctl enable seedqa.service seedqa-backup.timer
    run systemctl start seedqa-backup.timer
    say "the kiosk starts with graphical.target; make it the default with" \
        "systemctl set-default graphical.target, then reboot"
fi
say "done${PREFIX:+ (dry run into $PREFIX)}"
