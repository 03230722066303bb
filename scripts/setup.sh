#!/usr/bin/env bash
# Set up a fresh machine for napari-cellist: system libraries for Qt under Xvfb, a virtual
# environment in .venv with the CPU build of torch 2.13.0 first, then the package with all extras.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libxkbcommon-x11-0 libxcb-icccm4
libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0
libxcb-xinerama0 libxcb-xfixes0 libfontconfig1 libdbus-1-3"

install_system_packages() {
    local missing=()
    for pkg in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "[setup] apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
    local python="${PYTHON:-python3}"
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    local pip=".venv/bin/python -m pip"
    $pip install -q --upgrade pip
    # torch first and pinned: an unpinned torch (or a later dependency) would pull CUDA builds.
    $pip install -q "torch==2.13.0"
    $pip install -q -c .ci/constraints.txt -e ".[all,test]"
    .venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
}

if command -v apt-get >/dev/null 2>&1; then
    install_system_packages
fi
install_python_packages
echo "[setup] ready: $(.venv/bin/python -c 'import napari_cellist, napari, torch; print("napari-cellist", napari_cellist.__version__, "napari", napari.__version__, "torch", torch.__version__)')"
