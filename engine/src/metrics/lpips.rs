//! LPIPS perceptual distance (Zhang et al. 2018) with a VGG16 backbone: a metric of the
//! workbench and `dcae eval`, and the perceptual loss of training.
//!
//! Weights come from a file the user supplies, read without Python:
//! - the standard LPIPS v0.1 VGG: torchvision VGG16 `features.N.*` (e.g. `vgg16-397923af.pth`)
//!   plus the LPIPS linear heads `linK.model.1.weight` (`lpips/weights/v0.1/vgg.pth`), in one or
//!   several files, or the full LPIPS module (`net.sliceK.N.*` + `linK.*`);
//! - the shift-tolerant LPIPS VGG (`stlpips-pytorch` wheel, BSD-2,
//!   `stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth`): the same 13 convolutions with
//!   each max-pool replaced by max-pool(2, stride 1) + reflect-padded [1,2,1]^2 blur, stride 2
//!   (Zhang 2019, "Making convolutional networks shift-invariant again").
//!
//! `.pth`/`.pt` files are read by burn-store's PyTorch reader, `.safetensors` by ours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::io::tensors::{HostTensor, TensorFile, decode_floats};

/// VGG16 convolution widths (configuration "D"), grouped by LPIPS slice.
const SLICES: [&[usize]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256, 256],
    &[512; 3],
    &[512; 3],
];
/// LPIPS v0.1 input scaling layer (`ScalingLayer` shift / scale).
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// Which backbone variant the weights are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LpipsVariant {
    /// torchvision VGG16 with 2x2 max-pooling.
    Vgg,
    /// Shift-tolerant VGG16 (blur-pooling), from the `stlpips-pytorch` wheel.
    VggShiftTolerant,
}

/// LPIPS-VGG with frozen weights. `forward` is differentiable with respect to its inputs.
#[derive(Module, Debug)]
pub struct Lpips {
    /// 13 convolutions: weight [out, in, 3, 3], bias [out].
    convs: Vec<(Param<Tensor<4>>, Param<Tensor<1>>)>,
    /// 5 linear heads, [1, C, 1, 1].
    lins: Vec<Param<Tensor<4>>>,
    /// Blur filters for the shift-tolerant variant, [C, 1, 3, 3] per pooling (4).
    blurs: Vec<Param<Tensor<4>>>,
}

/// What was loaded, for the run record.
#[derive(Debug, Clone)]
pub struct LpipsSource {
    pub variant: LpipsVariant,
    pub files: Vec<PathBuf>,
}

impl std::fmt::Display for LpipsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = match self.variant {
            LpipsVariant::Vgg => "LPIPS v0.1 VGG16",
            LpipsVariant::VggShiftTolerant => "shift-tolerant LPIPS VGG16 (stlpips vST0.0)",
        };
        let files: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        write!(f, "{v} from {}", files.join(", "))
    }
}

/// Reads every float tensor of a `.safetensors` or PyTorch `.pth`/`.pt`/`.bin` file.
pub fn read_any_tensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if ext == "safetensors" {
        let f = TensorFile::open(path)?;
        let mut out = BTreeMap::new();
        for k in f.keys() {
            if let Ok(t) = f.tensor(&k) {
                out.insert(k, t);
            }
        }
        return Ok(out);
    }
    use burn::store::pytorch_reader::{DType as PtDType, PytorchReader};
    let corrupt = |message: String| Error::CorruptWeights {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(Error::MissingFile(format!(
            "perceptual weights {} not found",
            path.display()
        )));
    }
    let reader = PytorchReader::new(path).map_err(|e| corrupt(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (k, t) in reader.tensors() {
        let bytes = t.read().map_err(|e| corrupt(format!("{k}: {e}")))?;
        let dtype = match t.dtype() {
            PtDType::F32 => safetensors::Dtype::F32,
            PtDType::F64 => safetensors::Dtype::F64,
            PtDType::F16 => safetensors::Dtype::F16,
            PtDType::BF16 => safetensors::Dtype::BF16,
            _ => continue,
        };
        let Some(data) = decode_floats(dtype, &bytes) else {
            continue;
        };
        let shape = t.shape().to_vec();
        if data.len() != shape.iter().product::<usize>() {
            return Err(corrupt(format!("{k}: data does not match shape {shape:?}")));
        }
        out.insert(k.clone(), HostTensor { shape, data });
    }
    Ok(out)
}

/// Layer index of a backbone key: `features.N.weight`, `net.sliceK.N.weight`, `slice K.N...`.
fn backbone_index(key: &str) -> Option<(usize, &str)> {
    let parts: Vec<&str> = key.split('.').collect();
    let n = parts.len();
    if n < 2 {
        return None;
    }
    let leaf = parts[n - 1];
    let idx: usize = parts[n - 2].parse().ok()?;
    let in_backbone = parts
        .iter()
        .any(|p| *p == "features" || p.starts_with("slice"));
    in_backbone.then_some((idx, leaf))
}

/// Head index of `linK.model.1.weight` / `linK.weight` / `lins.K.model.1.weight`.
fn lin_index(key: &str) -> Option<usize> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.last() != Some(&"weight") {
        return None;
    }
    if let Some(k) = parts.first().and_then(|p| p.strip_prefix("lin")) {
        if let Ok(k) = k.parse() {
            return Some(k);
        }
        if k == "s" {
            return parts.get(1).and_then(|p| p.parse().ok());
        }
    }
    None
}

impl Lpips {
    /// Loads LPIPS-VGG from one or more weight files (merged; a key in two files is an error).
    /// The variant is detected from the keys (blur filters present = shift-tolerant).
    pub fn load(files: &[PathBuf], device: &Device) -> Result<(Self, LpipsSource)> {
        if files.is_empty() {
            return Err(Error::MissingFile(
                "no perceptual (LPIPS) weight files given".into(),
            ));
        }
        let mut all: BTreeMap<String, HostTensor> = BTreeMap::new();
        for f in files {
            for (k, t) in read_any_tensors(f)? {
                if all.insert(k.clone(), t).is_some() {
                    return Err(Error::Input(format!(
                        "perceptual weight `{k}` appears in more than one file"
                    )));
                }
            }
        }
        let first = files[0].clone();
        let bad = |message: String| Error::CorruptWeights {
            path: first.clone(),
            message,
        };
        let mut convs: BTreeMap<usize, (Option<HostTensor>, Option<HostTensor>)> = BTreeMap::new();
        let mut filts: BTreeMap<usize, HostTensor> = BTreeMap::new();
        let mut lins: BTreeMap<usize, HostTensor> = BTreeMap::new();
        for (k, t) in all {
            if let Some(i) = lin_index(&k) {
                lins.insert(i, t);
            } else if let Some((i, leaf)) = backbone_index(&k) {
                match leaf {
                    "weight" => convs.entry(i).or_default().0 = Some(t),
                    "bias" => convs.entry(i).or_default().1 = Some(t),
                    "filt" => {
                        filts.insert(i, t);
                    }
                    _ => {}
                }
            }
            // Other keys (scaling_layer buffers, classifier weights) are not needed: the
            // scaling constants are fixed by LPIPS v0.1.
        }
        let widths: Vec<usize> = SLICES.iter().flat_map(|s| s.iter().copied()).collect();
        if convs.len() < widths.len() {
            return Err(bad(format!(
                "found {} VGG16 convolutions (features.N / net.sliceK.N), need {}",
                convs.len(),
                widths.len()
            )));
        }
        if lins.len() != 5 {
            return Err(bad(format!(
                "found {} LPIPS linear heads (linK.model.1.weight), need 5; the standard heads are \
                 lpips/weights/v0.1/vgg.pth",
                lins.len()
            )));
        }
        let variant = if filts.is_empty() {
            LpipsVariant::Vgg
        } else {
            LpipsVariant::VggShiftTolerant
        };
        let mut cin = 3;
        let mut conv_params = Vec::new();
        // torchvision's VGG16 has the classifier's convolutions only under `features`, in order.
        for (n, (idx, (w, b))) in convs.into_iter().take(widths.len()).enumerate() {
            let cout = widths[n];
            let w = w.ok_or_else(|| bad(format!("VGG layer {idx}: bias without weight")))?;
            let b = b.ok_or_else(|| bad(format!("VGG layer {idx}: weight without bias")))?;
            if w.shape != [cout, cin, 3, 3] || b.shape != [cout] {
                return Err(bad(format!(
                    "VGG layer {idx}: shape {:?}, expected [{cout}, {cin}, 3, 3] (is this VGG16?)",
                    w.shape
                )));
            }
            conv_params.push((frozen(w, device), frozen(b, device)));
            cin = cout;
        }
        let mut lin_params = Vec::new();
        for (i, (k, t)) in lins.into_iter().enumerate() {
            let c = SLICES[i].last().copied().unwrap_or(0);
            if k != i || t.shape != [1, c, 1, 1] {
                return Err(bad(format!(
                    "LPIPS head lin{k}: shape {:?}, expected [1, {c}, 1, 1]",
                    t.shape
                )));
            }
            lin_params.push(frozen(t, device));
        }
        let mut blurs = Vec::new();
        if variant == LpipsVariant::VggShiftTolerant {
            if filts.len() != 4 {
                return Err(bad(format!(
                    "found {} blur filters, the shift-tolerant VGG has 4",
                    filts.len()
                )));
            }
            for (i, (_, t)) in filts.into_iter().enumerate() {
                let c = SLICES[i].last().copied().unwrap_or(0);
                if t.shape != [c, 1, 3, 3] {
                    return Err(bad(format!(
                        "blur filter {i}: shape {:?}, expected [{c}, 1, 3, 3]",
                        t.shape
                    )));
                }
                blurs.push(frozen(t, device));
            }
        }
        Ok((
            Self {
                convs: conv_params,
                lins: lin_params,
                blurs,
            },
            LpipsSource {
                variant,
                files: files.to_vec(),
            },
        ))
    }

    fn pool(&self, x: Tensor<4>, i: usize) -> Tensor<4> {
        match self.blurs.get(i) {
            None => max_pool2d(x, MaxPoolOptions::new([2, 2])),
            Some(filt) => {
                let x = max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([1, 1]));
                let c = x.dims()[1];
                let x = x.pad((2, 2, 2, 2), PadMode::Reflect);
                conv2d(
                    x,
                    filt.val(),
                    None,
                    ConvOptions::new([2, 2], [0, 0], [1, 1], c),
                )
            }
        }
    }

    /// The five VGG feature maps (relu1_2 ... relu5_3) of an image in [-1, 1].
    fn features(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let device = x.device();
        let shift = Tensor::<1>::from_data(TensorData::new(SHIFT.to_vec(), [3]), &device)
            .reshape([1, 3, 1, 1]);
        let scale = Tensor::<1>::from_data(TensorData::new(SCALE.to_vec(), [3]), &device)
            .reshape([1, 3, 1, 1]);
        let mut h = (x - shift) / scale;
        let mut feats = Vec::with_capacity(5);
        let mut c = 0;
        for (s, widths) in SLICES.iter().enumerate() {
            if s > 0 {
                h = self.pool(h, s - 1);
            }
            for _ in widths.iter() {
                let (w, b) = &self.convs[c];
                h = relu(conv2d(
                    h,
                    w.val(),
                    Some(b.val()),
                    ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                ));
                c += 1;
            }
            feats.push(h.clone());
        }
        feats
    }

    /// LPIPS distance per image.
    ///
    /// # Shapes
    /// `a, b: [B, 3, H, W]` in [-1, 1] (H, W >= 32) -> `[B]`
    pub fn forward(&self, a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
        let batch = a.dims()[0];
        let fa = self.features(a);
        let fb = self.features(b);
        let mut total: Option<Tensor<1>> = None;
        for (k, (x, y)) in fa.into_iter().zip(fb).enumerate() {
            let d = (unit_normalise(x) - unit_normalise(y)).powf_scalar(2.0);
            let d = conv2d(
                d,
                self.lins[k].val(),
                None,
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            );
            let per_image = d.mean_dim(3).mean_dim(2).reshape([batch]);
            total = Some(match total {
                None => per_image,
                Some(t) => t + per_image,
            });
        }
        total.unwrap_or_else(|| Tensor::zeros([batch], &self.lins[0].val().device()))
    }
}

/// Divides every feature vector by its L2 norm over channels (+1e-10, as LPIPS does).
fn unit_normalise(x: Tensor<4>) -> Tensor<4> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt();
    x / (norm + 1e-10)
}

fn frozen<const D: usize>(t: HostTensor, device: &Device) -> Param<Tensor<D>> {
    let shape: [usize; D] = std::array::from_fn(|i| t.shape[i]);
    let tensor = Tensor::<D>::from_data(TensorData::new(t.data, shape), device);
    Param::from_tensor(tensor).set_require_grad(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_patterns() {
        assert_eq!(backbone_index("features.28.weight"), Some((28, "weight")));
        assert_eq!(backbone_index("net.slice2.5.filt"), Some((5, "filt")));
        assert_eq!(backbone_index("lin0.model.1.weight"), None);
        assert_eq!(lin_index("lin3.model.1.weight"), Some(3));
        assert_eq!(lin_index("lins.2.model.1.weight"), Some(2));
        assert_eq!(lin_index("net.slice1.0.weight"), None);
    }
}
