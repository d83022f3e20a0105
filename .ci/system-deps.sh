#!/usr/bin/env bash
# System packages the emulated (qemu) and SSH devices and their tests need, on Debian 12.
# Idempotent: installs only what is missing, so a second run is quick and offline.
#
#   qemu-user        qemu-aarch64 (user-mode emulation, TCG plugins)
#   mmdebstrap       builds the Debian arm64 root of the emulated board (gpg, uidmap,
#                    debian-archive-keyring: what it uses from its recommends)
#   gcc, libc6-dev   compile the instruction-counting QEMU plugin
#   libfaketime      a reproducible clock for the emulated program (exact, repeatable counts)
#   xz-utils         QEMU's source tarball (the plugin header) is .tar.xz
#   ca-certificates  HTTPS to PyPI for the aarch64 wheels
#   openssh-client   ssh and scp for ssh devices
#   openssh-server   the loopback "board" in tests/unit/test_devices_ssh.py
#   util-linux       unshare and taskset (normally present already)
#   gcc-arm-none-eabi, libnewlib-arm-none-eabi, libstdc++-arm-none-eabi-dev
#                    compile TFLite Micro + CMSIS-NN and the bare-metal harness for Cortex-M
#   qemu-system-arm  runs it on the emulated Cortex-M4/M7/M55 boards (mps2-an386/an500, mps3-an547)
#   patch            applies TFLM's flatbuffers patch when the sources come from upstream
#   chromium         renders report.html / check.html headless in tests/integration/test_html_in_chromium.py
set -euo pipefail

packages=(qemu-user mmdebstrap gpg uidmap debian-archive-keyring gcc libc6-dev libfaketime
          xz-utils ca-certificates openssh-client openssh-server util-linux
          gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev qemu-system-arm patch chromium)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "system-deps: all present (${packages[*]})"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# --no-install-recommends: qemu-user recommends qemu-user-binfmt, which would register
# binfmt handlers on the host; edgeprune calls qemu-aarch64 explicitly and needs none.
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# sshd wants its privilege-separation folder when started by hand (no systemd unit here)
$SUDO mkdir -p /run/sshd
