#!/usr/bin/env bash
# Install test of the Debian package (./manage deploy-test; not part of the
# pytest suite): a fresh Debian 12 chroot gets dist/ooni-backend_*_amd64.deb
# through apt, then every installed command's --help, the unit checks, the
# standalone backend with the embedded database added the lab-host way
# (submit and find a measurement over loopback HTTP) and
# `systemd-analyze verify` on every unit. One PASS/FAIL line per step; exit
# status 1 when a step failed.
#
#   tests/deploy/deploy_test.sh [--keep] [--ansible]
#
# --ansible then runs ansible/site.yml against the chroot
# (ansible_connection=community.general.chroot, variables in
# tests/deploy/ansible-lab-vars.yml): a real run with a self-signed
# certificate, a second run that must change nothing, a run without the S3
# variables that must stop at once, and a --check --diff run of the
# dehydrated (Let's Encrypt) path, which cannot reach an ACME server here.
#
# The debootstrapped base (minbase + systemd) is cached in
# .cache/deploy/base; each run copies it to .cache/deploy/root, which --keep
# leaves in place (e.g. for the ansible chroot run, docs/operations.md).
# Needs root (debootstrap, chroot, mount).
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CACHE=$REPO/.cache/deploy
BASE=$CACHE/base
ROOT=$CACHE/root
KEEP=0
ANSIBLE=0
for a in "$@"; do
    case "$a" in
        --keep) KEEP=1 ;;
        --ansible) ANSIBLE=1 ;;
        *) echo "usage: $0 [--keep] [--ansible]" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "deploy-test: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
DEB=$(ls -t dist/ooni-backend_*_amd64.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || { echo "deploy-test: no dist/ooni-backend_*_amd64.deb; run ./manage package first" >&2; exit 2; }

FAILED=0
step() {  # step NAME COMMAND...: runs it, logs its output, prints PASS/FAIL
    local name=$1; shift
    local log=$CACHE/logs/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_').log
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        printf 'PASS  %-58s %4ss\n' "$name" $((SECONDS - t0))
    else
        printf 'FAIL  %-58s %4ss  (log: %s)\n' "$name" $((SECONDS - t0)) "${log#"$REPO"/}"
        tail -15 "$log" | sed 's/^/      | /'
        FAILED=1
    fi
}
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"; }

# The mirror this machine's apt uses (deb822 or one-line sources).
mirror() {
    local m
    m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
    [ -n "$m" ] || m=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                       | awk '{for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' | grep -v security | head -1)
    echo "${m:-http://deb.debian.org/debian}"
}

make_base() {
    rm -rf "$BASE.tmp"
    debootstrap --variant=minbase --include=systemd,ca-certificates bookworm "$BASE.tmp" "$(mirror)" \
        && rm -rf "$BASE" && mv "$BASE.tmp" "$BASE"
}

MOUNTS=()
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    local i
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}"; done
    MOUNTS=()
    [ $KEEP = 1 ] || rm -rf "$ROOT"
}
trap cleanup EXIT
bind() {  # bind SRC DEST-INSIDE-ROOT [mount args]
    mkdir -p "$ROOT$2" && mount "${@:3}" "$1" "$ROOT$2" && MOUNTS+=("$ROOT$2")
}

fresh_root() {
    rm -rf "$ROOT" && cp -a "$BASE" "$ROOT" || return 1
    bind proc /proc -t proc && bind sysfs /sys -t sysfs && bind /sys/fs/cgroup /sys/fs/cgroup --bind \
        && bind /dev /dev --bind \
        && bind /dev/pts /dev/pts --bind && bind tmpfs /dev/shm -t tmpfs -o mode=1777 && bind "$CACHE/pip" /root/.cache/pip --bind || return 1
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # No daemon may start inside the chroot (there is no systemd running
    # anyway; this covers init scripts of dependencies too).
    printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d" && chmod 755 "$ROOT/usr/sbin/policy-rc.d"
}

install_deb() {
    cp "$DEB" "$ROOT/tmp/" \
        && in_root apt-get update -q \
        && in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/tmp/$(basename "$DEB")"
}

commands() { in_root dpkg -L ooni-backend | grep '^/usr/bin/' | sort; }
units() { in_root dpkg -L ooni-backend | grep -E '^/(usr/)?lib/systemd/system/.*\.(service|timer)$' | sort; }

every_help() {
    local c rc=0
    for c in $(commands); do
        if in_root "$c" --help >/tmp/deploy-help.out 2>&1; then
            echo "ok   $c --help ($(head -1 /tmp/deploy-help.out))"
        else
            echo "FAIL $c --help:"; cat /tmp/deploy-help.out; rc=1
        fi
    done
    [ -n "$(commands)" ] || { echo "no command in /usr/bin"; rc=1; }
    return $rc
}

nothing_enabled() {
    # Enabling a unit leaves a symlink in a *.wants directory.
    local found
    found=$(find "$ROOT/etc/systemd/system" -name '*.wants' -type d -exec ls {} \; 2>/dev/null \
            | grep -E '^(ooni-|fastpath)' || true)
    [ -z "$found" ] || { echo "enabled at install: $found"; return 1; }
    echo "no ooni unit enabled"
}

documentation_shipped() {
    local u doc rc=0
    for u in $(units); do
        doc=$(sed -n 's|^Documentation=file://||p' "$ROOT$u")
        [ -n "$doc" ] || continue
        if [ -f "$ROOT$doc" ]; then echo "ok   $u -> $doc"; else echo "FAIL $u -> $doc missing"; rc=1; fi
    done
    return $rc
}

verify_units() {
    # shellcheck disable=SC2046
    in_root systemd-analyze verify $(units) && echo "verified: $(units | tr '\n' ' ')"
}

lab_config() {
    # A lab host's standalone backend keeps its own config and data: the
    # packaged /etc/ooni/backend.toml names a ClickHouse server.
    mkdir -p "$ROOT/var/lib/ooniapi/lab" && chroot "$ROOT" chown ooniapi:ooniapi /var/lib/ooniapi/lab \
        && printf 'DATA_DIR = "/var/lib/ooniapi/lab"\nLISTEN_HOST = "127.0.0.1"\n' > "$ROOT/etc/ooni/lab.toml"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

standalone_refuses_without_chdb() {
    local out
    # A free port: the port is checked before the database is opened.
    out=$(in_root chroot --userspec=ooniapi:ooniapi / ooni-backend run --config /etc/ooni/lab.toml \
          --port "$(free_port)" 2>&1)
    local rc=$?
    echo "exit $rc: $out"
    [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q 'needs the chdb package'
}

add_chdb() {
    local req
    req=$(sed -n 's/.*"embedded": \["\([^"]*\)".*/\1/p' setup.py)
    [ -n "$req" ] || { echo "no embedded extra in setup.py"; return 1; }
    # pip inside the chroot trusts what the host trusts (an HTTPS proxy or
    # mirror CA of this machine would be missing from a fresh chroot).
    local ca=${PIP_CERT:-$(pip3 config get global.cert 2>/dev/null || true)}
    [ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
    cp "$ca" "$ROOT/root/host-ca.crt"
    in_root env PIP_CERT=/root/host-ca.crt /opt/venvs/ooni-backend/bin/python -m pip install \
        -q --disable-pip-version-check "$req" \
        && in_root /opt/venvs/ooni-backend/bin/python -c 'import chdb; print("chdb", chdb.__version__)'
}

import_native_modules() {
    # --help imports little; the extension modules (stripped at build time)
    # and every package module must load with the package's interpreter.
    in_root /opt/venvs/ooni-backend/bin/python - <<'PY'
import importlib, pkgutil
native = ["ahocorasick", "ahocorasick_rs", "lmdb", "lz4.frame", "zstandard", "yaml", "maxminddb",
          "clickhouse_driver.varint", "ujson", "hyperscan", "markupsafe._speedups", "rpds"]
for m in native:
    importlib.import_module(m)
import yaml
assert yaml.__with_libyaml__, "PyYAML without libyaml"
n = 0
for top in ("ooni_common", "ooniapi", "fastpath", "analysis"):
    pkg = importlib.import_module(top)
    for info in pkgutil.walk_packages(pkg.__path__, top + "."):
        importlib.import_module(info.name)
        n += 1
print(f"imported {len(native)} extension modules and {n} modules of the backend")
PY
}


standalone_submit_and_find() {
    local port rc
    port=$(free_port)
    # Not through in_root: a backgrounded function is a subshell, and $!
    # must be the server itself (chroot, env and chroot exec into it).
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root \
        chroot --userspec=ooniapi:ooniapi / ooni-backend run --config /etc/ooni/lab.toml --port "$port" \
        >"$CACHE/logs/standalone-server.log" 2>&1 &
    SERVER_PID=$!
    python3 tests/deploy/submit_and_find.py "http://127.0.0.1:$port" "$SERVER_PID"
    rc=$?
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID"
    local src=$?
    SERVER_PID=
    echo "ooni-backend run stopped by SIGTERM: exit $src (server log: .cache/deploy/logs/standalone-server.log)"
    [ $rc = 0 ] && [ $src = 0 ]
}

INVENTORY=$CACHE/ansible-inventory.ini
playbook() {  # playbook LOGNAME [ansible-playbook args]: runs site.yml against the chroot
    local log=$CACHE/logs/ansible-$1.log; shift
    printf '[backend]\n%s ansible_connection=community.general.chroot ansible_become=false ansible_python_interpreter=/usr/bin/python3\n' \
        "$ROOT" > "$INVENTORY"
    ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ./manage ansible-playbook -i "$INVENTORY" site.yml \
        -e "@$REPO/tests/deploy/ansible-lab-vars.yml" -e "ooni_backend_deb_name=$(basename "$DEB")" "$@" >"$log" 2>&1
    local rc=$?
    sed -n '/PLAY RECAP/,$p' "$log"
    return $rc
}
ansible_real_run() {
    playbook real || return 1
    in_root grep -q '^S3_BUCKET_NAME = "lab-archive"' /etc/ooni/backend.toml || { echo "S3 settings not deployed"; return 1; }
    local u wants
    wants=$(find "$ROOT/etc/systemd/system" -path '*.wants/*' -printf '%f\n' | sort | tr '\n' ' ')
    for u in ooni-api.service fastpath.service ooni-api-uploader.timer ooni-db-backup.timer; do
        case " $wants " in *" $u "*) ;; *) echo "$u not enabled (wants: $wants)"; return 1 ;; esac
    done
    in_root nginx -t || return 1
    echo "enabled: $wants"
}
ansible_second_run() {
    playbook second || return 1
    grep -qE 'changed=0 .*failed=0' "$CACHE/logs/ansible-second.log"
}
ansible_without_s3() {
    if playbook no-s3 -e s3_bucket_name= -e s3_access_key_id=; then
        echo "the playbook ran without S3 variables"; return 1
    fi
    grep -q 'Set s3_endpoint_url, s3_bucket_name' "$CACHE/logs/ansible-no-s3.log" \
        && grep -q 'changed=0' "$CACHE/logs/ansible-no-s3.log"
}
ansible_check_dehydrated() {
    playbook check-dehydrated --check --diff -e tls_mode=dehydrated -e dehydrated_contact_email=ops@lab.invalid
}

mkdir -p "$CACHE/logs" "$CACHE/pip"
echo "deploy-test: $DEB ($(du -h --apparent-size "$DEB" | cut -f1)) in a Debian 12 chroot at ${ROOT#"$REPO"/}"
T0=$SECONDS
if [ ! -x "$BASE/usr/bin/systemd-analyze" ]; then
    step "debootstrap bookworm (cached in .cache/deploy/base)" make_base
fi
step "fresh chroot from the cached base" fresh_root
[ $FAILED = 0 ] || exit 1
step "apt-get install the .deb (dependencies resolved)" install_deb
[ $FAILED = 0 ] || exit 1
step "--help of every /usr/bin command of the package" every_help
step "no unit enabled or started by the installation" nothing_enabled
step "Documentation= of every unit is a shipped file" documentation_shipped
step "systemd-analyze verify on every unit" verify_units
step "every backend module and extension module imports" import_native_modules
step "lab config for the standalone backend" lab_config
step "ooni-backend run without chdb: one-line error, exit 1" standalone_refuses_without_chdb
step "add the embedded extra (chdb) to the package venv" add_chdb
step "ooni-backend run: submit and find a measurement" standalone_submit_and_find
if [ $ANSIBLE = 1 ]; then
    step "ansible: site.yml run, self-signed lab host" ansible_real_run
    step "ansible: second run changes nothing" ansible_second_run
    step "ansible: without S3 variables it stops at the first task" ansible_without_s3
    step "ansible: --check --diff of the dehydrated path" ansible_check_dehydrated
    for r in real second no-s3 check-dehydrated; do
        echo "  recap of the $r run (.cache/deploy/logs/ansible-$r.log):"
        grep -A1 'PLAY RECAP' "$CACHE/logs/ansible-$r.log" | tail -1 | sed 's/^/    /'
    done
fi
echo "installed size: $(du -sh "$ROOT/opt/venvs/ooni-backend" | cut -f1) in /opt/venvs/ooni-backend (with chdb)"
if [ $FAILED = 0 ]; then echo "deploy-test: PASS ($((SECONDS - T0)) s)"; else echo "deploy-test: FAIL ($((SECONDS - T0)) s)"; fi
exit $FAILED
