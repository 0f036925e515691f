"""SSIM / PSNR reference values for tests/metrics.rs, computed by scikit-image.

Run from the repository root (scikit-image 0.26.0, numpy 2.4.6, Pillow 13.0.0):
    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-image numpy pillow
    /tmp/skvenv/bin/python tests/tools/make_ssim_reference.py
Writes tests/data/ssim_{a,b,c}.png (a 96x72 crop of the bundled astronaut photo, a blurred and
noised copy, and a colour-shifted copy; fixed seed) and tests/data/ssim_reference.json.
"""
import json

import numpy as np
from PIL import Image, ImageFilter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

src = Image.open("assets/images/astronaut.png").convert("RGB")
a = src.crop((180, 60, 276, 132))  # 96 x 72
rng = np.random.default_rng(20261201)
blurred = np.asarray(a.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float64)
b = np.clip(blurred + rng.normal(0, 6, blurred.shape), 0, 255).round().astype(np.uint8)
c = np.asarray(a, dtype=np.int16).copy()
c[..., 0] += 25
c[..., 2] -= 18
c = np.clip(c, 0, 255).astype(np.uint8)
a = np.asarray(a, dtype=np.uint8)

out = {"command": "python tests/tools/make_ssim_reference.py (scikit-image 0.26.0)", "pairs": {}}
for name, img in [("a", a), ("b", b), ("c", c)]:
    Image.fromarray(img).save(f"tests/data/ssim_{name}.png")
for pair, (x, y) in {"a_b": (a, b), "a_c": (a, c), "a_a": (a, a)}.items():
    ssim = structural_similarity(
        x, y, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, K1=0.01, K2=0.03,
    )
    psnr = peak_signal_noise_ratio(x, y, data_range=255) if pair != "a_a" else None
    out["pairs"][pair] = {"ssim": float(ssim), "psnr": None if psnr is None else float(psnr)}
json.dump(out, open("tests/data/ssim_reference.json", "w"), indent=1)
print(json.dumps(out, indent=1))
