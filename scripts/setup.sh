#!/usr/bin/env bash
# Installs the system packages the test suite needs on a Debian machine without a GPU:
# Chromium (headless browser tests, and its SwiftShader Vulkan driver that gives Dawn a WebGPU adapter),
# Mesa's Vulkan drivers with the loader (lavapipe, for Deno), and PyTorch for /usr/bin/python3 (the float64
# references of test/reference/). Skips what is already there.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/lib/chromium/vk_swiftshader_icd.json ] || need+=(chromium)
ldconfig -p | grep libvulkan.so.1 >/dev/null || need+=(libvulkan1)
[ -d /usr/share/vulkan/icd.d ] && ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 || need+=(python3-torch libopenblas0-pthread)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
echo "setup: system packages ready"
