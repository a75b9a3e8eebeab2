#!/usr/bin/env bash
# The WebGPU benchmarks (npm run bench -- webgpu) on a machine with a GPU, no network and perhaps no Node,
# from what `node scripts/gpu-pack.mjs` put in .gpu/. Arguments go to the benchmark (--json,
# --peak-tflops=N). Vulkan: the loader is unpacked from .gpu/debs when the system has none, and the
# NVIDIA driver's manifest is used where the loader would not find it by itself.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f .gpu/bench.mjs ] || { echo "gpu.sh: no .gpu/bench.mjs: run 'node scripts/gpu-pack.mjs' first" >&2; exit 2; }

if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv" ] \
  && ! ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | grep -qi nvidia; then
  export VK_DRIVER_FILES="$nv"
fi

node=$(command -v node || true)
if [ -z "$node" ] || ! "$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  node=/tmp/adaptkit-node
  if command -v xz >/dev/null; then xz -dc .gpu/node.xz > "$node"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' .gpu/node.xz "$node"; fi
  chmod +x "$node"
fi
echo "node $("$node" --version); GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
exec "$node" --experimental-wasm-relaxed-simd .gpu/bench.mjs webgpu "$@"
