#!/usr/bin/env bash
# Build a tiny bootable demo guest for tests and demos, from Debian packages only.
#
# Debian packages this script needs (installed on demand, see ensure_packages):
#   busybox-static isolinux syslinux-common xorriso cpio gzip
#   grub-efi-amd64-bin grub-common mtools dosfstools   (the UEFI boot image)
# plus apt/dpkg themselves. To boot the results you also need qemu-system-x86 (and qemu-utils
# for disk images), which this script does not install.
#
# Outputs (relative to the repository root, git-ignored):
#   .cache/fixtures/vmlinuz          Debian cloud kernel (linux-image-<ver>-cloud-amd64)
#   .cache/fixtures/initrd.gz        initramfs (cpio newc + gzip): busybox + /init + a few modules
#   .cache/fixtures/demo.iso         ISO with the same two files, bootable from a CD-ROM with BIOS
#                                    (isolinux) and with UEFI (GRUB, an El Torito EFI boot image);
#                                    isohybrid, so it also boots as a disk (MBR for BIOS, GPT ESP for UEFI)
#   .cache/fixtures/build-info.txt   what was built; written last, doubles as the "done" stamp
#
# The guest, once booted:
#   - prints "GUESTHOUSE-DISK <name> <sectors>" for every /sys/block/vd* and sd* to the serial port,
#     "GUESTHOUSE-NIC <vendor>:<device>" for every PCI network card, and "GUESTHOUSE-BOOTORDER <paths>"
#     with the boot order QEMU handed the firmware (fw_cfg's bootorder)
#   - reports a kernel panic to QEMU's pvpanic device (echo c >/proc/sysrq-trigger makes one)
#   - prints a banner (hostname "demo", kernel version) on the VGA console
#   - runs respawning root shells on tty1 (VGA/VNC) and ttyS0 (serial); the first shell on each
#     prints the line "GUESTHOUSE-DEMO-READY" on its terminal, so the marker means "booted, the
#     power button handler is armed and this shell reads input"
#   - on an ACPI power button press (QMP system_powerdown) prints "GUESTHOUSE-DEMO-POWEROFF" on
#     serial and powers off, so QEMU exits by itself
#   - on ctrl-alt-del (QMP send-key ctrl-alt-delete) prints "GUESTHOUSE-DEMO-REBOOT" and reboots
#   - brings lo up and runs busybox udhcpc in the background on every eth* (at boot, and on every
#     card hot-plugged later); a lease (bound or renewed) sets the address, the default route (the
#     first interface, by kernel order, whose lease has a router) and /etc/resolv.conf (all leases'
#     DNS servers and search domains), and prints "GUESTHOUSE-DHCP <ifname> <ip>/<prefix>" on serial
#     and VGA. It comes whenever the lease does, often just after READY: wait for it. Boot never
#     waits for a lease. Lease details in /run/net/<ifname>.lease, udhcpc's log in /run/net/<ifname>.log
#   - serves http://<guest>/ on port 80 (busybox httpd): "GUESTHOUSE-HTTP" and "hostname: demo"
#     on two lines; answers ping; has ping, nslookup and wget, which resolve names through DHCP's DNS
#
# Usage: sudo scripts/fixtures.sh [--force]
# Environment: GUESTHOUSE_FIXTURES_DIR (output folder), GUESTHOUSE_FIXTURE_KERNEL (kernel package,
# default: what linux-image-cloud-amd64 depends on).
#
# Fast no-op when the outputs exist and are newer than this script. Builds in a temp folder next
# to the outputs and renames into place, under a lock, so an interrupted or concurrent run never
# leaves a half-written file behind.
set -euo pipefail

PACKAGES=(busybox-static isolinux syslinux-common xorriso cpio gzip
  grub-efi-amd64-bin grub-common mtools dosfstools)
# The kernel command line, the same for both boot loaders (isolinux for BIOS, GRUB for UEFI).
CMDLINE="console=tty0 console=ttyS0"
# Kernel modules loaded at boot (dependencies are added automatically).
# ata_piix: a pc machine's IDE disks; qemu_fw_cfg: the boot order QEMU gives the firmware, readable
# in /sys; pvpanic-mmio: a kernel panic reported to QEMU (its pvpanic device); virtio_balloon: the
# guest's memory statistics for the metrics.
MODULES=(button evdev virtio_pci virtio_blk virtio_scsi sd_mod ata_piix virtio_net virtio_console virtio_input
  qemu_fw_cfg pvpanic-mmio virtio_balloon)

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SCRIPT")/.." && pwd)"
OUT="${GUESTHOUSE_FIXTURES_DIR:-$ROOT/.cache/fixtures}"
OUTPUTS=(vmlinuz initrd.gz demo.iso)
STAMP="$OUT/build-info.txt"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { printf '[fixtures] %s\n' "$*" >&2; }
die() { printf '[fixtures] error: %s\n' "$*" >&2; exit 1; }

is_fresh() {
  [[ $FORCE == 0 && -f "$STAMP" && "$STAMP" -nt "$SCRIPT" ]] || return 1
  local f
  for f in "${OUTPUTS[@]}"; do
    [[ -s "$OUT/$f" && "$OUT/$f" -nt "$SCRIPT" ]] || return 1
  done
}

print_outputs() {
  local f
  for f in "${OUTPUTS[@]}"; do echo "$OUT/$f"; done
}

if is_fresh; then
  print_outputs
  exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (installs Debian packages, builds device nodes)"
mkdir -p "$OUT"

# One build at a time; a second caller waits, then finds the outputs fresh.
exec 9>"$OUT/.lock"
flock 9
if is_fresh; then
  print_outputs
  exit 0
fi

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

ensure_packages() {
  local missing=() p
  for p in "$@"; do is_installed "$p" || missing+=("$p"); done
  if ((${#missing[@]})); then
    apt_update_once
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -qq "${missing[@]}" >&2
  fi
}

kernel_package() {
  if [[ -n "${GUESTHOUSE_FIXTURE_KERNEL:-}" ]]; then
    echo "$GUESTHOUSE_FIXTURE_KERNEL"
    return
  fi
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')
  if [[ -z "$pkg" ]]; then
    apt_update_once
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')
  fi
  [[ -n "$pkg" ]] || die "cannot find the kernel behind linux-image-cloud-amd64 (apt-cache depends)"
  echo "$pkg"
}

ensure_packages "${PACKAGES[@]}"

rm -rf "$OUT"/.build.* # left by a run that was killed hard (we hold the lock)
BUILD="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT

# --- kernel -----------------------------------------------------------------------------------
KPKG="$(kernel_package)"
log "downloading $KPKG"
(cd "$BUILD" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG" >&2) || {
  apt_update_once
  (cd "$BUILD" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG" >&2)
}
dpkg -x "$BUILD"/"$KPKG"_*.deb "$BUILD/kpkg"
rm -f "$BUILD"/"$KPKG"_*.deb
KDIR=$(find "$BUILD/kpkg/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)
KVER=$(basename "$KDIR")
[[ -f "$BUILD/kpkg/boot/vmlinuz-$KVER" ]] || die "no vmlinuz in $KPKG"
cp "$BUILD/kpkg/boot/vmlinuz-$KVER" "$BUILD/vmlinuz"

# --- kernel modules: resolve dependencies from each .ko's .modinfo, load order = deps first ------
declare -A MODPATH=() SEEN=()
while IFS= read -r -d '' ko; do
  name=$(basename "$ko" .ko)
  MODPATH[${name//-/_}]="$ko"
done < <(find "$KDIR/kernel" -name '*.ko' -print0)

ORDER=()
add_module() {
  local m=${1//-/_} dep deps
  [[ -n "${SEEN[$m]:-}" ]] && return 0
  SEEN[$m]=1
  if [[ -z "${MODPATH[$m]:-}" ]]; then
    # built into the kernel (or absent): nothing to load
    grep -q "/$m.ko\$" "$KDIR/modules.builtin" 2>/dev/null ||
      grep -q "/${1}.ko\$" "$KDIR/modules.builtin" 2>/dev/null ||
      log "warning: module $1 not found in $KVER"
    return 0
  fi
  deps=$(tr '\0' '\n' <"${MODPATH[$m]}" | sed -n 's/^depends=//p' | head -n1)
  for dep in ${deps//,/ }; do add_module "$dep"; done
  ORDER+=("$m")
}
for m in "${MODULES[@]}"; do add_module "$m"; done

# --- initramfs tree ------------------------------------------------------------------------------
R="$BUILD/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,proc,sys,dev,run,tmp,root,var/log,lib/modules}
chmod 1777 "$R/tmp"
ln -s ../run "$R/var/run"
cp /bin/busybox "$R/bin/busybox"
while IFS= read -r applet; do
  [[ "$applet" == bin/busybox ]] && continue
  ln -sf /bin/busybox "$R/$applet"
done < <(/bin/busybox --list-full)
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3

: >"$R/etc/modules"
for m in "${ORDER[@]}"; do
  cp "${MODPATH[$m]}" "$R/lib/modules/$m.ko"
  case $m in
    scsi_mod) echo "$m scan=sync" ;; # so virtio-scsi disks exist before we list them
    *) echo "$m" ;;
  esac >>"$R/etc/modules"
done

echo demo >"$R/etc/hostname"
# Names: /etc/hosts first, then DNS (glibc's default without nsswitch.conf asks DNS only, while a
# DNS server answers).
printf '127.0.0.1 localhost\n::1 localhost\n' >"$R/etc/hosts"
printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
cat >"$R/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root
export PS1='\h:\w\$ '
cd /root
# The first shell on the serial port and the first on the VGA console each announce READY on
# their own terminal: once it shows, that shell takes input (and rc.boot has finished).
t=$(tty 2>/dev/null)
case $t in
  /dev/ttyS0 | /dev/tty1)
    if [ ! -e "/run/ready.${t#/dev/}" ]; then
      : >"/run/ready.${t#/dev/}"
      printf '\nGUESTHOUSE-DEMO-READY\n'
    fi
    ;;
esac
unset t
EOF

cat >"$R/init" <<'EOF'
#!/bin/sh
# Guesthouse demo guest: early setup, then hand over to busybox init (/etc/inittab).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
hostname -F /etc/hostname
exec /sbin/init
EOF

cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/rc.boot
tty1::respawn:-/bin/sh
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/etc/rc.ctrlaltdel
::shutdown:/etc/rc.shutdown
EOF

cat >"$R/etc/rc.boot" <<'EOF'
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
# say LINE: to the serial port and the VGA console (either may be missing)
say() {
  printf '%s\n' "$1" >/dev/ttyS0 2>/dev/null
  printf '%s\n' "$1" >/dev/tty1 2>/dev/null
}

while read -r mod args; do
  [ -n "$mod" ] && insmod "/lib/modules/$mod.ko" $args 2>/dev/null
done </etc/modules

# sd probing is asynchronous: wait (up to ~3 s) for every SCSI disk to get its block device.
i=0
while [ $i -lt 30 ]; do
  pending=0
  for d in /sys/bus/scsi/devices/*:*:*:*; do
    [ -e "$d/type" ] || continue
    [ "$(cat "$d/type")" = 0 ] && [ ! -d "$d/block" ] && pending=1
  done
  [ $pending = 0 ] && break
  sleep 0.1
  i=$((i + 1))
done

for b in /sys/block/vd* /sys/block/sd*; do
  [ -e "$b/size" ] && say "GUESTHOUSE-DISK ${b##*/} $(cat "$b/size")"
done
# Network cards by PCI vendor:device (the card the guest sees, whether or not it has a driver).
for d in /sys/bus/pci/devices/*; do
  case "$(cat "$d/class" 2>/dev/null)" in
    0x02*) say "GUESTHOUSE-NIC $(cut -c3- "$d/vendor"):$(cut -c3- "$d/device")" ;;
  esac
done
# The boot order QEMU handed the firmware, device paths in order.
bootorder=/sys/firmware/qemu_fw_cfg/by_name/bootorder/raw
[ -r $bootorder ] && say "GUESTHOUSE-BOOTORDER $(tr '\n\000' '  ' <$bootorder)"

# Networking, never waited for: lo, then every eth* now (and, through the kernel's hotplug hook,
# every card plugged in later) comes up with udhcpc in the background (/etc/net-up), and a small
# web server answers on port 80.
ip link set lo up
if [ -w /proc/sys/kernel/hotplug ]; then
  echo /sbin/hotplug >/proc/sys/kernel/hotplug
else
  uevent /sbin/hotplug </dev/null >/dev/null 2>&1 &
fi
for n in /sys/class/net/eth*; do
  [ -e "$n" ] && /etc/net-up "${n##*/}"
done
mkdir -p /www
printf 'GUESTHOUSE-HTTP\nhostname: %s\n' "$(hostname)" >/www/index.html
httpd -p 80 -h /www </dev/null >/dev/null 2>&1

# acpid scans /dev/input/event* once, at start: start it after the modules, and wait until it
# holds every event device open, so a power button press right after READY is never lost.
acpid -f -c /etc/acpi -a /etc/acpid.conf -l /run/acpid.log </dev/null >/dev/null 2>&1 &
apid=$!
want=$(ls /dev/input 2>/dev/null | grep -c '^event')
i=0
while [ $i -lt 50 ]; do
  have=$(ls -l /proc/$apid/fd 2>/dev/null | grep -c /dev/input/event)
  [ "$have" -ge "$want" ] && break
  sleep 0.1
  i=$((i + 1))
done

# Keep kernel chatter from scribbling over the shells from now on.
dmesg -n 1

printf '\033[2J\033[H' >/dev/tty1 2>/dev/null
cat >/dev/tty1 2>/dev/null <<BANNER

  ==================================================
     Guesthouse demo guest
     hostname: $(hostname)    kernel: $(uname -r)
  ==================================================

  Root shells run here (tty1) and on the serial port (ttyS0).
  The ACPI power button powers off; ctrl-alt-del reboots.

BANNER
EOF

# --- networking: DHCP on every eth*, at boot and when hot-plugged ---------------------------------
# Name resolution (checked in the guest against dnsmasq): busybox's own applets resolve names as
# they are. ping and wget (and the other applets that take a host) go through glibc's getaddrinfo:
# busybox-static is linked with Debian 12's glibc 2.36, whose "files" and "dns" lookups are part
# of libc itself since 2.34, so the static binary needs no NSS module: /etc/hosts, then the
# servers and search domains of /etc/resolv.conf (`ping -c1 db.lab.internal`, `ping -c1 db`,
# `wget -qO- http://db/` all work). nslookup asks the servers in /etc/resolv.conf itself (it
# does not read /etc/hosts). A name DNS does not know fails at once ("ping: bad address").
#
# The kernel's hotplug hook: Debian's cloud kernel has no /proc/sys/kernel/hotplug
# (CONFIG_UEVENT_HELPER is off), so rc.boot runs busybox's `uevent /sbin/hotplug` instead, which
# reads the same events from netlink and runs the same hook; the /proc path is used where it exists.
#
# /etc/net-up IF: bring IF up and keep one udhcpc on it. Used by rc.boot for the cards present at
# boot and by the hotplug hook for cards plugged in later; a per-interface lock (mkdir is atomic)
# and pid file (/run/udhcpc.IF.pid) make a second call for the same interface a no-op while its
# udhcpc runs. udhcpc runs in its own session, forever: 5 discovers a second apart, 2 s of rest,
# again (5 s, as dnsmasq pings an address for about 3 s before it first offers it). Its output goes
# to /run/net/IF.log.
cat >"$R/etc/net-up" <<'EOF'
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
IF=$1
case $IF in '' | */* | .*) echo "usage: net-up IFACE" >&2; exit 2 ;; esac
[ -e "/sys/class/net/$IF" ] || { echo "net-up: no interface $IF" >&2; exit 1; }
mkdir -p /run/net
# The kernel starts its hotplug hook with no standard descriptors at all.
exec </dev/null >>"/run/net/$IF.log" 2>&1
lock=/run/net/$IF.lock
i=0
until mkdir "$lock" 2>/dev/null; do
  i=$((i + 1))
  [ $i -ge 50 ] && { rmdir "$lock" 2>/dev/null; i=0; } # held 5 s: its holder died
  sleep 0.1
done
trap 'rmdir "$lock"' EXIT
ip link set "$IF" up
pidfile=/run/udhcpc.$IF.pid
pid=$(cat "$pidfile" 2>/dev/null)
if [ -n "$pid" ] && tr '\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^udhcpc .*-i $IF "; then
  exit 0 # already has its udhcpc
fi
setsid udhcpc -f -i "$IF" -p "$pidfile" -s /etc/udhcpc.script -t 5 -T 1 -A 2 \
  -x "hostname:$(hostname)" -O search &
echo $! >"$pidfile"
EOF

# The hotplug hook, run for every uevent with the event in its environment (by the kernel through
# /proc/sys/kernel/hotplug, or by busybox's uevent where that is missing, as here).
cat >"$R/sbin/hotplug" <<'EOF'
#!/bin/sh
[ "$SUBSYSTEM" = net ] || exit 0
case $INTERFACE in eth*) ;; *) exit 0 ;; esac
case $ACTION in
  add) exec /etc/net-up "$INTERFACE" ;;
  remove)
    # The card is gone: stop its udhcpc and forget its lease (its DNS servers, its default route).
    pid=$(cat "/run/udhcpc.$INTERFACE.pid" 2>/dev/null)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -f "/run/udhcpc.$INTERFACE.pid"
    interface=$INTERFACE exec /etc/udhcpc.script deconfig </dev/null >/dev/null 2>&1
    ;;
esac
EOF

# udhcpc runs this on every DHCP event ($1) with the lease in its environment ($interface, $ip,
# $mask = prefix length, $router, $dns, $domain, $search, ...). It applies the lease, keeps the
# lease's variables in /run/net/IF.lease, and announces it on the serial port and the VGA console.
cat >"$R/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# Names resolve with busybox's applets as they are: ping, wget, nc through glibc's built-in
# files+dns lookup (/etc/hosts, then the /etc/resolv.conf written here), nslookup by itself.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
RUN=/run/net
mkdir -p $RUN

# A marker starts with a newline: a shell prompt may be sitting on the current line.
say() {
  printf '\n%s\n' "$1" >/dev/ttyS0 2>/dev/null
  printf '\n%s\n' "$1" >/dev/tty1 2>/dev/null
}

# One writer of the shared state (resolv.conf, the default route) at a time.
lock() {
  i=0
  until mkdir $RUN/.lock 2>/dev/null; do
    i=$((i + 1))
    [ $i -ge 50 ] && { rmdir $RUN/.lock 2>/dev/null; i=0; } # held 5 s: its holder died
    sleep 0.1
  done
}
unlock() { rmdir $RUN/.lock 2>/dev/null; }

# The interfaces that hold a lease, in the order the kernel made them (eth0 before eth1, a card
# plugged in later after both).
leased() {
  for f in $RUN/*.addr; do
    [ -e "$f" ] || continue
    n=${f##*/}
    n=${n%.addr}
    [ -r "/sys/class/net/$n/ifindex" ] && echo "$(cat "/sys/class/net/$n/ifindex") $n"
  done | sort -n | cut -d' ' -f2
}

# The shared state, from every lease: /etc/resolv.conf merges their DNS servers and search
# domains (no repeats); the default route goes through the first interface whose lease has a
# router, and only through that one.
apply_shared() {
  ifs=$(leased)
  tmp=/etc/.resolv.conf.$$
  {
    echo "# written by /etc/udhcpc.script from the DHCP leases of: $(echo $ifs)"
    domains=$(for n in $ifs; do cat "$RUN/$n.search"; done | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
    [ -n "$domains" ] && echo "search ${domains% }"
    for n in $ifs; do cat "$RUN/$n.dns"; done | tr ' ' '\n' | awk 'NF && !seen[$0]++ { print "nameserver " $0 }'
  } >$tmp
  mv -f $tmp /etc/resolv.conf

  via=
  for n in $ifs; do
    r=$(cat "$RUN/$n.router" 2>/dev/null)
    [ -n "$r" ] && { via="$r dev $n"; break; }
  done
  if [ -n "$via" ]; then
    ip route replace default via $via && echo "$via" >$RUN/default-route
  elif [ -e $RUN/default-route ]; then
    ip route del default via $(cat $RUN/default-route) 2>/dev/null
    rm -f $RUN/default-route
  fi
}

case $1 in
  deconfig)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip link set "$interface" up 2>/dev/null
    lock
    rm -f "$RUN/$interface".addr "$RUN/$interface".router "$RUN/$interface".dns "$RUN/$interface".search "$RUN/$interface".lease
    apply_shared
    unlock
    ;;
  bound | renew)
    addr="$ip/$mask"
    # A new address replaces the lease's old one; a renewed one stays as it is (no connection is
    # cut), and addresses someone added by hand stay too.
    old=$(cat "$RUN/$interface.addr" 2>/dev/null)
    [ -n "$old" ] && [ "$old" != "$addr" ] && ip addr del "$old" dev "$interface" 2>/dev/null
    ip addr add "$addr" ${broadcast:+broadcast "$broadcast"} dev "$interface" 2>/dev/null
    lock
    echo "$addr" >"$RUN/$interface.addr"
    echo "${router%% *}" >"$RUN/$interface.router"
    echo "$dns" >"$RUN/$interface.dns"
    echo "$search $domain" >"$RUN/$interface.search"
    apply_shared
    unlock
    for v in interface ip mask subnet broadcast router dns domain search hostname lease serverid; do
      eval "value=\$$v"
      printf '%s=%s\n' "$v" "$value"
    done >"$RUN/$interface.lease"
    say "GUESTHOUSE-DHCP $interface $addr"
    ;;
esac
exit 0
EOF

# busybox acpid maps the power button (input event KEY_POWER) to /etc/acpi/PWRF/00000080 and
# runs that folder's entries with run-parts.
cat >"$R/etc/acpid.conf" <<'EOF'
PWRF PWRF
EOF
# Markers start with a newline: a shell prompt may be sitting on the current line.
cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
printf '\nGUESTHOUSE-DEMO-POWEROFF\n' >/dev/ttyS0 2>/dev/null
printf '\nGUESTHOUSE-DEMO-POWEROFF\n' >/dev/tty1 2>/dev/null
exec /sbin/poweroff
EOF

cat >"$R/etc/rc.ctrlaltdel" <<'EOF'
#!/bin/sh
printf '\nGUESTHOUSE-DEMO-REBOOT\n' >/dev/ttyS0 2>/dev/null
printf '\nGUESTHOUSE-DEMO-REBOOT\n' >/dev/tty1 2>/dev/null
exec /sbin/reboot
EOF

cat >"$R/etc/rc.shutdown" <<'EOF'
#!/bin/sh
sync
EOF
chmod 755 "$R/init" "$R/etc/rc.boot" "$R/etc/rc.ctrlaltdel" "$R/etc/rc.shutdown" \
  "$R/etc/acpi/PWRF/00000080" "$R/etc/net-up" "$R/sbin/hotplug" "$R/etc/udhcpc.script"

(cd "$R" && find . -print0 | LC_ALL=C sort -z |
  cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -9 -n >"$BUILD/initrd.gz"

# --- ISO ------------------------------------------------------------------------------------------
# One ISO, two El Torito boot images pointing at the same kernel, initramfs and command line:
#   BIOS: isolinux (isolinux/isolinux.bin, reads isolinux/isolinux.cfg)
#   UEFI: boot/efiboot.img, a small FAT image (an EFI System Partition) holding only
#         EFI/BOOT/BOOTX64.EFI: a standalone GRUB with its grub.cfg inside. That GRUB finds the ISO
#         by the marker file below (not by /boot/vmlinuz, which another disk of the guest may have).
I="$BUILD/iso"
MARKER=".disk/guesthouse-demo"
mkdir -p "$I/isolinux" "$I/boot" "$I/.disk"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$I/isolinux/"
cp "$BUILD/vmlinuz" "$I/boot/vmlinuz"
cp "$BUILD/initrd.gz" "$I/boot/initrd.gz"
echo "Guesthouse demo guest, kernel $KVER" >"$I/$MARKER"
cat >"$I/isolinux/isolinux.cfg" <<EOF
DEFAULT demo
PROMPT 0
TIMEOUT 0
LABEL demo
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND $CMDLINE
EOF

# GRUB for UEFI. Only the modules it needs (and their dependencies) go into its memdisk, and no
# locales, fonts or themes: BOOTX64.EFI is about 1.1 MB instead of about 9.8 MB with the defaults.
E="$BUILD/efi"
mkdir -p "$E"
cat >"$E/grub.cfg" <<EOF
set default=0
set timeout=0
set timeout_style=hidden
insmod all_video
search --no-floppy --set=root --file /$MARKER
menuentry "Guesthouse demo guest" {
  linux /boot/vmlinuz $CMDLINE
  initrd /boot/initrd.gz
}
EOF
GRUB_MODULES="iso9660 part_msdos part_gpt search search_fs_file normal configfile linux echo all_video"
grub-mkstandalone -O x86_64-efi -o "$E/BOOTX64.EFI" \
  --modules="$GRUB_MODULES" --install-modules="$GRUB_MODULES" \
  --locales= --fonts= --themes= \
  "boot/grub/grub.cfg=$E/grub.cfg" >"$BUILD/grub.log" 2>&1 ||
  { cat "$BUILD/grub.log" >&2; die "grub-mkstandalone failed"; }
# FAT image: the EFI binary plus 256 KiB of room, in KiB (mkfs.vfat -C takes the size in KiB).
efi_kib=$(( ($(stat -c %s "$E/BOOTX64.EFI") + 1023) / 1024 + 256 ))
mkfs.vfat -C -n GH_DEMO_EFI "$I/boot/efiboot.img" "$efi_kib" >"$BUILD/mkfs.log" 2>&1 ||
  { cat "$BUILD/mkfs.log" >&2; die "mkfs.vfat failed"; }
MTOOLS_SKIP_CHECK=1 mmd -i "$I/boot/efiboot.img" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "$I/boot/efiboot.img" "$E/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

xorriso -as mkisofs -quiet -o "$BUILD/demo.iso" -V GUESTHOUSE_DEMO -J -R \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
  -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table \
  -eltorito-alt-boot -e boot/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
  "$I" >"$BUILD/xorriso.log" 2>&1 || { cat "$BUILD/xorriso.log" >&2; die "xorriso failed"; }

# --- install atomically: drop the stamp, rename each file, write the stamp last ----------------
rm -f "$STAMP"
for f in "${OUTPUTS[@]}"; do mv -f "$BUILD/$f" "$OUT/$f"; done
{
  echo "kernel_package=$KPKG"
  echo "kernel_version=$KVER"
  echo "modules=${ORDER[*]}"
  echo "busybox=$(dpkg-query -W -f='${Version}' busybox-static)"
  echo "boot=bios:isolinux-$(dpkg-query -W -f='${Version}' isolinux) uefi:grub-$(dpkg-query -W -f='${Version}' grub-efi-amd64-bin)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$BUILD/build-info.txt"
mv -f "$BUILD/build-info.txt" "$STAMP"
log "built $KVER: $(du -h "$OUT/demo.iso" | cut -f1) ISO"
print_outputs
