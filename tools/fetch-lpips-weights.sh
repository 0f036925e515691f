#!/usr/bin/env bash
# Fetches real pretrained perceptual-loss weights without Python code running: the
# `stlpips-pytorch` wheel on PyPI (BSD-2) ships shift-tolerant LPIPS VGG16 / AlexNet weights.
# Usage: tools/fetch-lpips-weights.sh [DEST]   (default: target/lpips)
# Prints the path of the VGG16 weights file (vgg_shift_tolerant.pth).
set -euo pipefail
dest="${1:-target/lpips}"
file="$dest/stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth"
if [ ! -f "$file" ]; then
  mkdir -p "$dest"
  if command -v pip >/dev/null 2>&1; then pipcmd=(pip); else pipcmd=(python3 -m pip); fi
  "${pipcmd[@]}" download --quiet --no-deps --only-binary=:all: -d "$dest" stlpips-pytorch==0.0.2 >&2
  python3 - "$dest" <<'PY'
import sys, zipfile, glob
dest = sys.argv[1]
whl = glob.glob(dest + "/stlpips_pytorch-0.0.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith("stlpips_pytorch/weights/") or n.endswith("LICENSE"):
            z.extract(n, dest)
PY
fi
echo "$file"
