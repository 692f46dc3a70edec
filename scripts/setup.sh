#!/usr/bin/env bash
# Installs and prepares everything Guesthouse needs; safe to run again.
#   scripts/setup.sh           what the dashboard needs
#   scripts/setup.sh --test    plus what the test suite needs (Chromium)
# Run as root on Debian 12 with Node 20 (apt-get installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=0
[ "${1:-}" = "--test" ] && WITH_TESTS=1

export GUESTHOUSE_DATA_DIR="${GUESTHOUSE_DATA_DIR:-$PWD/.data}"
export GUESTHOUSE_IMAGE_DIR="${GUESTHOUSE_IMAGE_DIR:-$GUESTHOUSE_DATA_DIR/images}"
export DATABASE_URL="${DATABASE_URL:-file:$GUESTHOUSE_DATA_DIR/guesthouse.db}"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# 1. Debian packages
# g++, make and python3 build better-sqlite3 from source when no prebuilt binary can be had.
# iproute2, nftables and dnsmasq-base build guests' networks (bridges, rules, DHCP and DNS).
packages=(qemu-system-x86 qemu-utils ovmf g++ make python3 iproute2 nftables dnsmasq-base)
# busybox-static: the network tests' stand-in guests ask for DHCP leases with its udhcpc. The
# static build, which the demo guest is made of too (scripts/fixtures.sh): Debian's busybox and
# busybox-static replace each other, so asking for both would swap them on every run.
# prometheus: its promtool checks /metrics' text, and one test scrapes it with the real server.
[ "$WITH_TESTS" = 1 ] && packages+=(chromium xkb-data strace busybox-static prometheus)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# QEMU runs as users of its own (GUESTHOUSE_QEMU_UIDS), which reach /dev/kvm through the
# kvm group, as Debian's udev rules set it up. Where udev does not run (a container) the
# device may be root's alone: it gets that group and mode here.
getent group kvm >/dev/null || groupadd --system kvm
if [ -c /dev/kvm ] && [ "$(stat -c '%a %G' /dev/kvm)" = "600 root" ]; then
  say "giving /dev/kvm to the kvm group (0660), as udev would"
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# 2. npm packages (better-sqlite3 builds from source the first time: a few minutes)
# --include=dev: the build needs Tailwind and the types even when NODE_ENV=production.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || [ ! -d node_modules/@tailwindcss/postcss ] || [ ! -d node_modules/better-sqlite3/build ]; then
  say "installing npm packages"
  npm ci --include=dev --no-audit --no-fund --loglevel=error
fi

# 3. Prisma client and database
if [ ! -f server/db/generated/client.ts ] || [ prisma/schema.prisma -nt server/db/generated/client.ts ]; then
  say "generating the Prisma client"
  npx prisma generate >/dev/null
fi
mkdir -p "$GUESTHOUSE_DATA_DIR" && chmod 700 "$GUESTHOUSE_DATA_DIR"
if ! out=$(npx prisma migrate deploy 2>&1); then
  printf '%s\n' "$out" >&2
  say "the database migration failed (see above)"
  exit 1
fi
printf '%s\n' "$out" | grep -E "applied|No pending" || true

# 4. The demo guest (Debian kernel + busybox), as an ISO in the image folder
scripts/fixtures.sh >/dev/null
mkdir -p "$GUESTHOUSE_IMAGE_DIR"
if ! cmp -s .cache/fixtures/demo.iso "$GUESTHOUSE_IMAGE_DIR/demo.iso"; then
  cp .cache/fixtures/demo.iso "$GUESTHOUSE_IMAGE_DIR/demo.iso.tmp"
  mv "$GUESTHOUSE_IMAGE_DIR/demo.iso.tmp" "$GUESTHOUSE_IMAGE_DIR/demo.iso"
fi

# 5. The database's fixed rows: team, local host, first admin
npx tsx server/setup/bootstrap.ts
