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

# --- Standard LPIPS v0.1 (the `lpips` 0.1.4 package, max-pooling VGG16) -------------------
# Its backbone comes from torchvision's vgg16 (stubbed below with torchvision's exact
# `features` layout, configuration "D"), loaded with the same 13 convolutions as above; the
# linear heads are the package's own weights/v0.1/vgg.pth.
import torch.nn as nn
def _vgg16(pretrained=False, **kw):
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c = v
    m = types.SimpleNamespace(); m.features = nn.Sequential(*layers); return m
sys.modules["torchvision.models"].vgg16 = _vgg16
sys.modules["torchvision.models"].alexnet = sys.modules["torchvision.models"].squeezenet1_1 = _vgg16
for name in ["scipy", "scipy.ndimage", "tqdm"]:  # imported by lpips.trainer, unused here
    if name not in sys.modules:
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name); m.zoom = m.tqdm = None; sys.modules[name] = m
import lpips  # noqa: E402
std = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
st_idx = [0, 2, 6, 8, 12, 14, 16, 20, 22, 24, 28, 30, 32]
std_idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
st_convs = {k: v for k, v in model.net.state_dict().items()}
std_sd = std.net.state_dict()
def find(sd, idx, leaf):
    return [k for k in sd if k.endswith(f".{idx}.{leaf}")][0]
for ia, ib in zip(st_idx, std_idx):
    for leaf in ["weight", "bias"]:
        std_sd[find(std_sd, ib, leaf)] = st_convs[find(st_convs, ia, leaf)]
std.net.load_state_dict(std_sd)
with torch.no_grad():
    s1 = std(a, b).reshape(-1)
    s2 = std(a2[None], b2[None]).reshape(-1)
lins = {f"lin{i}.model.1.weight": std.state_dict()[f"lin{i}.model.1.weight"].contiguous() for i in range(5)}
out_dir = os.path.dirname(sys.argv[2])
save_file(lins, os.path.join(out_dir, "lpips_v0.1_vgg_lin.safetensors"),
          metadata={"source": "lpips 0.1.4 weights/v0.1/vgg.pth (BSD-2-Clause, Richard Zhang)"})
save_file({"d64": s1.contiguous(), "d96x64": s2.contiguous()}, os.path.join(out_dir, "lpips_v0.1_vgg_reference.safetensors"),
          metadata={"source": "lpips 0.1.4 LPIPS(net='vgg') with the stlpips convolutions as backbone, torch " + torch.__version__})
print("standard:", s1.tolist(), s2.tolist())
