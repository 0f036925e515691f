"""Reference LPIPS distances from the real `stlpips-pytorch` 0.0.2 package (shift-tolerant
LPIPS, VGG16), for tests/lpips.rs.

    python tests/tools/make_lpips_reference.py <dir holding stlpips_pytorch/> <out.safetensors>

Needs torch, numpy, Pillow, safetensors. The package imports torchvision, IPython and
torchsummary at module level but its shift-tolerant VGG path uses none of them, so small stubs
stand in for those three. Inputs: crops of ../shared/data/val images and altered copies.
"""
import sys, types, os
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

for name in ["IPython", "torchsummary", "torchvision", "torchvision.models"]:
    m = types.ModuleType(name)
    m.embed = lambda *a, **k: None
    m.summary = lambda *a, **k: None
    sys.modules[name] = m
sys.modules["torchvision"].models = sys.modules["torchvision.models"]

sys.path.insert(0, sys.argv[1])
from stlpips_pytorch import stlpips  # noqa: E402

torch.manual_seed(0)
model = stlpips.LPIPS(net="vgg", variant="shift_tolerant", verbose=False).eval()

root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "val")
def crop(name, x, y, w, h):
    im = Image.open(os.path.join(root, name)).convert("RGB").crop((x, y, x + w, y + h))
    a = np.asarray(im).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(a).permute(2, 0, 1)

a1 = crop("skimage_astronaut.png", 100, 40, 64, 64)
b1 = crop("skimage_astronaut.png", 104, 40, 64, 64)          # shifted by 4 px
a2 = crop("wiki_001.png", 0, 0, 96, 64)
b2 = (a2 + 0.1 * torch.randn_like(a2)).clamp(-1, 1)         # noise
b2 = b2.contiguous()
a = torch.stack([a1, a1])
b = torch.stack([b1, crop("icinfo_flower_foveon.png", 10, 10, 64, 64)])
with torch.no_grad():
    d1 = model(a, b).reshape(-1)
    d2 = model(a2[None], b2[None]).reshape(-1)
save_file({"a64": a.contiguous(), "b64": b.contiguous(), "d64": d1.contiguous(),
           "a96x64": a2[None].contiguous(), "b96x64": b2[None].contiguous(), "d96x64": d2.contiguous()},
          sys.argv[2], metadata={"source": "stlpips-pytorch 0.0.2 LPIPS(net='vgg', variant='shift_tolerant'), torch " + torch.__version__})
print(d1.tolist(), d2.tolist())
