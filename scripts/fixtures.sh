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
# in /sys; pvpanic-mmio: a kernel panic reported to QEMU (its pvpanic device).
MODULES=(button evdev virtio_pci virtio_blk virtio_scsi sd_mod ata_piix virtio_net virtio_console virtio_input
  qemu_fw_cfg pvpanic-mmio)

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
  "$R/etc/acpi/PWRF/00000080"

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
