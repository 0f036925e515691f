"""Reference gradients of the training loss, from diffusers' AutoencoderDC, for tests/train.rs.

    python tests/tools/make_grad_reference.py <fixture dir> <out.safetensors>

Loss = mean |decode(encode(x)) - x| (the phase-1 L1 term of our trainer) on the fixture's input
image, float32, CPU. Stores `loss` and `grad.<checkpoint key>` for every float parameter.
Needs torch, diffusers, safetensors.
"""
import json, os, sys
import torch
from safetensors.torch import load_file, save_file
from diffusers import AutoencoderDC

src, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
cfg = json.load(open(os.path.join(src, "config.json")))
model = AutoencoderDC.from_config(cfg).float().eval()
sd = {k: v for k, v in load_file(os.path.join(src, "model.safetensors")).items()
      if not k.endswith("num_batches_tracked")}
missing, unexpected = model.load_state_dict(sd, strict=False)
assert not unexpected, unexpected
assert all(k.endswith("num_batches_tracked") for k in missing), missing
x = load_file(os.path.join(src, "input.safetensors"))["image"]
y = model.decode(model.encode(x).latent).sample
loss = (y - x).abs().mean()
loss.backward()
res = {"loss": loss.detach().reshape(1)}
for k, p in model.named_parameters():
    res["grad." + k] = p.grad.detach().contiguous()
save_file(res, out)
print(f"loss {loss.item():.6f}, {len(res) - 1} gradients")
