//! Cheap live previews of a latent: a per-autoencoder linear map latent -> RGB (one 3 x C
//! matrix and a bias), fitted by least squares on the autoencoder's own encodings of a few
//! photos, each latent pixel against the mean colour of the f x f block it encodes. Applying
//! it costs 3 C multiply-adds per latent pixel, so a sampler's estimate can be shown after
//! every step without running the decoder.

use burn::tensor::{Tensor, TensorData};

use crate::autoencoder::DcAe;
use crate::autoencoder::tiling::Tiling;
use crate::error::{Error, Result};
use crate::io::image::{RgbF32, quantize};
use crate::pipeline::reconstruct::host;
use crate::task::{Cancel, DecodedEstimate, Progress, Silent};

/// Ridge term added to the normal equations (relative to their mean diagonal): keeps the
/// solve stable for channels a few photos barely excite.
const RIDGE: f64 = 1e-4;

/// `rgb = weights · z + bias` per latent pixel, for unscaled latents (what the decoder reads).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatentRgb {
    pub channels: usize,
    /// `[3, channels]`, row-major.
    pub weights: Vec<f32>,
    pub bias: [f32; 3],
}

impl LatentRgb {
    /// Least-squares fit of `targets` (`[3, n]` planar, in [-1, 1]) on `latents`
    /// (`[channels, n]` planar), the same `n` pixels in both.
    pub fn fit(latents: &[f32], targets: &[f32], channels: usize) -> Result<Self> {
        if channels == 0 || !latents.len().is_multiple_of(channels) {
            return Err(Error::Input(format!(
                "preview fit: {} latent values for {channels} channels",
                latents.len()
            )));
        }
        let n = latents.len() / channels;
        if targets.len() != 3 * n || n == 0 {
            return Err(Error::Input(format!(
                "preview fit: {} target values for {n} pixels",
                targets.len()
            )));
        }
        // Normal equations over [z, 1] in f64: (A^T A + r I) w = A^T y, one y per colour.
        let d = channels + 1;
        let mut ata = vec![0f64; d * d];
        let mut aty = vec![0f64; 3 * d];
        let mut row = vec![0f64; d];
        for p in 0..n {
            for c in 0..channels {
                row[c] = f64::from(latents[c * n + p]);
            }
            row[channels] = 1.0;
            for i in 0..d {
                let ri = row[i];
                if ri == 0.0 {
                    continue;
                }
                for j in i..d {
                    ata[i * d + j] += ri * row[j];
                }
                for k in 0..3 {
                    aty[k * d + i] += ri * f64::from(targets[k * n + p]);
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                ata[i * d + j] = ata[j * d + i];
            }
        }
        let mean_diag = (0..d).map(|i| ata[i * d + i]).sum::<f64>() / d as f64;
        for i in 0..channels {
            ata[i * d + i] += RIDGE * mean_diag.max(1e-12);
        }
        let w = solve_spd(&ata, &aty, d, 3).ok_or_else(|| {
            Error::Input("preview fit: the photos' latents are degenerate".into())
        })?;
        let mut weights = Vec::with_capacity(3 * channels);
        let mut bias = [0f32; 3];
        for k in 0..3 {
            weights.extend(w[k * d..k * d + channels].iter().map(|&v| v as f32));
            bias[k] = w[k * d + channels] as f32;
        }
        Ok(Self {
            channels,
            weights,
            bias,
        })
    }

    /// Fits the map for `ae` on `photos` (each cropped to a multiple of f; at least one).
    pub fn fit_autoencoder(ae: &DcAe, photos: &[RgbF32]) -> Result<Self> {
        let f = ae.factor();
        let c = ae.config.latent_channels;
        let (mut lat, mut tgt) = (Vec::new(), Vec::new());
        for p in photos {
            let (w, h) = (p.width / f * f, p.height / f * f);
            if w == 0 || h == 0 {
                continue;
            }
            let crop = p.crop((p.width - w) / 2, (p.height - h) / 2, w, h);
            let x = Tensor::<4>::from_data(
                TensorData::new(crop.data.clone(), [1, 3, h, w]),
                &ae.device,
            );
            let z = host(ae.encode(x)?, "the preview latent")?;
            let (lh, lw) = (h / f, w / f);
            let n = lh * lw;
            lat.push((z.data, n));
            tgt.push(block_means(&crop, f));
        }
        if lat.is_empty() {
            return Err(Error::Input(format!(
                "preview fit: no photo of at least {f}x{f} pixels"
            )));
        }
        // Concatenate per channel: [C, sum n] and [3, sum n].
        let total: usize = lat.iter().map(|(_, n)| n).sum();
        let mut latents = vec![0f32; c * total];
        let mut targets = vec![0f32; 3 * total];
        let mut off = 0;
        for ((z, n), t) in lat.iter().zip(&tgt) {
            for ch in 0..c {
                latents[ch * total + off..ch * total + off + n]
                    .copy_from_slice(&z[ch * n..(ch + 1) * n]);
            }
            for k in 0..3 {
                targets[k * total + off..k * total + off + n]
                    .copy_from_slice(&t[k * n..(k + 1) * n]);
            }
            off += n;
        }
        Self::fit(&latents, &targets, c)
    }

    /// RGB bytes (`h * w * 3`, interleaved) of one unscaled latent `[channels, h, w]`.
    pub fn apply(&self, latent: &[f32], h: usize, w: usize) -> Result<Vec<u8>> {
        let n = h * w;
        if latent.len() != self.channels * n {
            return Err(Error::Input(format!(
                "preview: {} latent values, expected {}x{h}x{w}",
                latent.len(),
                self.channels
            )));
        }
        let mut out = vec![0u8; 3 * n];
        for k in 0..3 {
            let wk = &self.weights[k * self.channels..(k + 1) * self.channels];
            let mut acc = vec![self.bias[k]; n];
            for (c, &wc) in wk.iter().enumerate() {
                for (a, &z) in acc.iter_mut().zip(&latent[c * n..(c + 1) * n]) {
                    *a += wc * z;
                }
            }
            for (p, a) in acc.iter().enumerate() {
                out[3 * p + k] = quantize(*a);
            }
        }
        Ok(out)
    }
}

/// Mean colour of each f x f block (`[3, h/f * w/f]` planar); sides are multiples of f.
fn block_means(img: &RgbF32, f: usize) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let (lw, lh) = (w / f, h / f);
    let mut out = vec![0f32; 3 * lw * lh];
    let inv = 1.0 / (f * f) as f32;
    for k in 0..3 {
        let plane = &img.data[k * w * h..(k + 1) * w * h];
        for y in 0..h {
            for x in 0..w {
                out[k * lw * lh + (y / f) * lw + x / f] += plane[y * w + x] * inv;
            }
        }
    }
    out
}

/// Solves `a x = b` for `m` right-hand sides (`b`, `x`: `[m, d]`) with `a` symmetric
/// positive definite (`[d, d]`), by Cholesky; `None` when `a` is not.
fn solve_spd(a: &[f64], b: &[f64], d: usize, m: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    let mut x = vec![0f64; m * d];
    for r in 0..m {
        let (bb, xx) = (&b[r * d..(r + 1) * d], &mut x[r * d..(r + 1) * d]);
        // L y = b, then L^T x = y.
        for i in 0..d {
            let s = bb[i] - (0..i).map(|k| l[i * d + k] * xx[k]).sum::<f64>();
            xx[i] = s / l[i * d + i];
        }
        for i in (0..d).rev() {
            let s = xx[i] - (i + 1..d).map(|k| l[k * d + i] * xx[k]).sum::<f64>();
            xx[i] = s / l[i * d + i];
        }
    }
    Some(x)
}

/// Decodes one item's estimate (unscaled latent `[C, H, W]`) to pixels, tiled where the
/// image is large, for a full preview on demand.
pub(crate) fn decode_estimate(
    ae: &DcAe,
    z: Vec<f32>,
    [c, h, w]: [usize; 3],
) -> Result<DecodedEstimate> {
    let f = ae.factor();
    let t = Tensor::<4>::from_data(TensorData::new(z, [1, c, h, w]), &ae.device);
    let img = ae.decode_tiled(
        t,
        Tiling::Auto.spec(h * f, w * f),
        &mut Silent,
        &Cancel::new(),
    )?;
    let [_, _, height, width] = img.dims();
    Ok(DecodedEstimate {
        pixels: host(img, "the decoded estimate")?.data,
        height,
        width,
    })
}

/// A sampling sink between a pipeline and its caller's [`Progress`]: every report passes
/// through, and when the caller [wants a decode](Progress::wants_decode) the first item's
/// estimate goes through `decode` (unscaled latent, `[C, H, W]`) and back to it.
pub(crate) struct DecodeOnDemand<'a, F> {
    pub inner: &'a mut dyn Progress,
    /// One item's latent shape and the factor the network's latents carry.
    pub chw: [usize; 3],
    pub scaling: f32,
    pub decode: F,
}

impl<F: FnMut(Vec<f32>, [usize; 3]) -> Result<DecodedEstimate>> Progress for DecodeOnDemand<'_, F> {
    fn update(&mut self, stage: &str, done: u64, total: u64) {
        self.inner.update(stage, done, total);
    }

    fn wants_estimate(&self) -> bool {
        self.inner.wants_estimate() || self.inner.wants_decode()
    }

    fn estimate(&mut self, latent: &[f32]) {
        if self.inner.wants_estimate() {
            self.inner.estimate(latent);
        }
        if self.inner.wants_decode() {
            let n: usize = self.chw.iter().product();
            let r = match latent.get(..n) {
                Some(first) => {
                    let z = first.iter().map(|v| v / self.scaling).collect();
                    (self.decode)(z, self.chw).map_err(|e| e.to_string())
                }
                None => Err(format!("the estimate has {} values, not {n}", latent.len())),
            };
            self.inner.decoded(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Targets made by a known linear map are fitted back (up to the small ridge term).
    #[test]
    fn recovers_a_linear_map() {
        let (c, n) = (4, 200);
        let mut s = 1u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let latents: Vec<f32> = (0..c * n).map(|_| rnd()).collect();
        let w = [
            0.5, -0.2, 0.1, 0.0, 0.3, 0.3, -0.1, 0.2, -0.4, 0.0, 0.25, 0.1,
        ];
        let bias = [0.1, -0.05, 0.2];
        let mut targets = vec![0f32; 3 * n];
        for k in 0..3 {
            for p in 0..n {
                targets[k * n + p] = bias[k]
                    + (0..c)
                        .map(|ch| w[k * c + ch] * latents[ch * n + p])
                        .sum::<f32>();
            }
        }
        let m = LatentRgb::fit(&latents, &targets, c).unwrap();
        for (got, want) in m.weights.iter().zip(w) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
        for (got, want) in m.bias.iter().zip(bias) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
        // Applying it gives the target colours, quantised.
        let bad = m.apply(&latents[..3], 1, 1).unwrap_err();
        assert!(bad.to_string().contains("expected"));
        let one: Vec<f32> = (0..c).map(|ch| latents[ch * n]).collect();
        let rgb = m.apply(&one, 1, 1).unwrap();
        for k in 0..3 {
            assert_eq!(rgb[k], quantize(targets[k * n]));
        }
    }

    #[test]
    fn bad_shapes_and_degenerate_data_are_errors() {
        assert!(LatentRgb::fit(&[1.0; 5], &[0.0; 3], 2).is_err());
        assert!(LatentRgb::fit(&[1.0; 4], &[0.0; 3], 2).is_err());
        assert!(LatentRgb::fit(&[], &[], 0).is_err());
    }

    #[test]
    fn block_means_average_each_block() {
        let img = RgbF32 {
            width: 4,
            height: 2,
            data: (0..24).map(|v| v as f32).collect(),
        };
        // Red plane: rows [0 1 2 3], [4 5 6 7]; blocks of 2: mean(0,1,4,5)=2.5, mean(2,3,6,7)=4.5.
        let m = block_means(&img, 2);
        assert_eq!(&m[..2], &[2.5, 4.5]);
        assert_eq!(&m[2..4], &[10.5, 12.5]);
    }
}
