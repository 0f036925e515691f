//! Tensor-free image and latent analysis for the views: signed difference heatmaps, latent
//! channel statistics, histograms, the PCA false-colour view and the channel grid. Everything
//! here is plain `Vec` arithmetic so it is unit-tested without a model or a GPU.

/// A latent `[C, H, W]` (one image), row-major per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Latent {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Summary statistics of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub mean: f32,
    pub std: f32,
    pub min: f32,
    pub max: f32,
}

impl Stats {
    /// Mean, population std, min and max (f64 accumulation). Zeros for an empty slice.
    pub fn of(v: &[f32]) -> Stats {
        if v.is_empty() {
            return Stats {
                mean: 0.0,
                std: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        Stats {
            mean: mean as f32,
            std: var.sqrt() as f32,
            min: v.iter().copied().fold(f32::INFINITY, f32::min),
            max: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }
}

impl Latent {
    /// Number of values (what the latent costs to store).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Channel `c` as a slice of `H*W` values.
    pub fn channel(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }

    /// The value at channel `c`, row `y`, column `x`.
    pub fn at(&self, c: usize, y: usize, x: usize) -> Option<f32> {
        (c < self.channels && y < self.height && x < self.width)
            .then(|| self.data[(c * self.height + y) * self.width + x])
    }

    /// Statistics of every channel.
    pub fn channel_stats(&self) -> Vec<Stats> {
        (0..self.channels)
            .map(|c| Stats::of(self.channel(c)))
            .collect()
    }

    /// Histogram of all values over `bins` equal bins between the min and max.
    pub fn histogram(&self, bins: usize) -> Histogram {
        Histogram::of(&self.data, bins)
    }

    /// The channels laid out in a grid of `cols` columns, each channel scaled to its own
    /// min..max (a flat channel is mid-grey), with a 1-px gap. Returns `(width, height, grey)`.
    pub fn channel_grid(&self, cols: usize) -> (usize, usize, Vec<u8>) {
        let cols = cols.clamp(1, self.channels.max(1));
        let rows = self.channels.div_ceil(cols);
        let (cw, ch) = (self.width + 1, self.height + 1);
        let (gw, gh) = (cols * cw - 1, rows * ch - 1);
        let mut out = vec![0u8; gw * gh];
        for c in 0..self.channels {
            let s = Stats::of(self.channel(c));
            let span = s.max - s.min;
            let (ox, oy) = ((c % cols) * cw, (c / cols) * ch);
            for y in 0..self.height {
                for x in 0..self.width {
                    let v = self.data[(c * self.height + y) * self.width + x];
                    let t = if span > 0.0 { (v - s.min) / span } else { 0.5 };
                    out[(oy + y) * gw + ox + x] = (t * 255.0 + 0.5) as u8;
                }
            }
        }
        (gw, gh, out)
    }

    /// Which channel and latent pixel a point of [`Self::channel_grid`] falls on (None in a gap).
    pub fn grid_cell(&self, cols: usize, gx: usize, gy: usize) -> Option<(usize, usize, usize)> {
        let cols = cols.clamp(1, self.channels.max(1));
        let (cw, ch) = (self.width + 1, self.height + 1);
        let (x, y) = (gx % cw, gy % ch);
        let c = (gy / ch) * cols + gx / cw;
        (x < self.width && y < self.height && c < self.channels && gx / cw < cols)
            .then_some((c, y, x))
    }

    /// Projects every latent pixel on the three leading principal components of the channel
    /// vectors and maps each component to 0..255 (2nd to 98th percentile, so a few outliers do
    /// not wash the image out). Returns `H*W` RGB pixels.
    pub fn pca_rgb(&self) -> Vec<[u8; 3]> {
        let (c, n) = (self.channels, self.height * self.width);
        if c == 0 || n == 0 {
            return Vec::new();
        }
        let mean: Vec<f64> = (0..c)
            .map(|k| self.channel(k).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64)
            .collect();
        let mut cov = vec![0f64; c * c];
        for p in 0..n {
            for i in 0..c {
                let a = f64::from(self.data[i * n + p]) - mean[i];
                for j in i..c {
                    cov[i * c + j] += a * (f64::from(self.data[j * n + p]) - mean[j]);
                }
            }
        }
        for i in 0..c {
            for j in 0..i {
                cov[i * c + j] = cov[j * c + i];
            }
        }
        let comps = top_eigenvectors(&cov, c, 3.min(c));
        let mut proj = vec![vec![0f32; n]; 3];
        for (out, v) in proj.iter_mut().zip(&comps) {
            for (p, o) in out.iter_mut().enumerate() {
                *o = (0..c)
                    .map(|i| (f64::from(self.data[i * n + p]) - mean[i]) * v[i])
                    .sum::<f64>() as f32;
            }
        }
        let ranges: Vec<(f32, f32)> = proj.iter().map(|v| percentile_range(v, 0.02)).collect();
        (0..n)
            .map(|p| {
                std::array::from_fn(|k| {
                    let (lo, hi) = ranges[k];
                    let t = if hi > lo {
                        (proj[k][p] - lo) / (hi - lo)
                    } else {
                        0.5
                    };
                    (t.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
                })
            })
            .collect()
    }
}

/// Leading `k` eigenvectors of a symmetric `n x n` matrix by power iteration with deflation.
/// Deterministic start vectors, so the same latent always gives the same colours.
pub fn top_eigenvectors(m: &[f64], n: usize, k: usize) -> Vec<Vec<f64>> {
    let mut a = m.to_vec();
    let mut out = Vec::with_capacity(k);
    for comp in 0..k {
        let mut v: Vec<f64> = (0..n)
            .map(|i| 1.0 + ((i * 7 + comp * 13) % 11) as f64 / 11.0)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w = vec![0f64; n];
            for i in 0..n {
                w[i] = (0..n).map(|j| a[i * n + j] * v[j]).sum();
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-30 {
                break;
            }
            w.iter_mut().for_each(|x| *x /= norm);
            let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            lambda = norm;
            if delta < 1e-12 {
                break;
            }
        }
        // Sign convention: largest-magnitude entry positive.
        if let Some(big) = v.iter().copied().max_by(|x, y| x.abs().total_cmp(&y.abs()))
            && big < 0.0
        {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] -= lambda * v[i] * v[j];
            }
        }
        out.push(v);
    }
    out
}

/// The `q` and `1 - q` quantiles of `v` (nearest rank).
pub fn percentile_range(v: &[f32], q: f32) -> (f32, f32) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let i = |p: f32| ((p * (s.len() - 1) as f32).round() as usize).min(s.len() - 1);
    (s[i(q)], s[i(1.0 - q)])
}

/// Equal-width histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub min: f32,
    pub max: f32,
    pub counts: Vec<u32>,
}

impl Histogram {
    pub fn of(v: &[f32], bins: usize) -> Histogram {
        let bins = bins.max(1);
        let s = Stats::of(v);
        let mut counts = vec![0u32; bins];
        let span = s.max - s.min;
        for &x in v {
            let b = if span > 0.0 {
                (((x - s.min) / span) * bins as f32) as usize
            } else {
                0
            };
            counts[b.min(bins - 1)] += 1;
        }
        Histogram {
            min: s.min,
            max: s.max,
            counts,
        }
    }
}

/// Blue (-1) -> white (0) -> red (+1), clamped.
pub fn diverging(t: f32) -> [u8; 3] {
    let t = t.clamp(-1.0, 1.0);
    let fade = |a: f32| (255.0 * (1.0 - a) + 0.5) as u8;
    if t >= 0.0 {
        [255, fade(t), fade(t)]
    } else {
        [fade(-t), fade(-t), 255]
    }
}

/// Signed difference `reconstruction - original`, averaged over RGB, in units of 8-bit levels.
/// Both images are packed RGB8 of the same size.
pub fn signed_difference(original: &[u8], reconstruction: &[u8]) -> Vec<f32> {
    original
        .chunks_exact(3)
        .zip(reconstruction.chunks_exact(3))
        .map(|(a, b)| {
            (0..3)
                .map(|c| f32::from(b[c]) - f32::from(a[c]))
                .sum::<f32>()
                / 3.0
        })
        .collect()
}

/// Heatmap of a signed difference: `±scale` levels map to full red / blue. Returns RGB8.
pub fn heatmap(diff: &[f32], scale: f32) -> Vec<u8> {
    let scale = scale.max(1e-6);
    diff.iter().flat_map(|&d| diverging(d / scale)).collect()
}

/// How many times fewer values the latent holds than the 8-bit RGB image (`H*W*3` bytes).
pub fn compression_ratio(width: usize, height: usize, latent_values: usize) -> f64 {
    (width * height * 3) as f64 / latent_values.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latent(c: usize, h: usize, w: usize, f: impl Fn(usize, usize, usize) -> f32) -> Latent {
        let mut data = Vec::new();
        for k in 0..c {
            for y in 0..h {
                for x in 0..w {
                    data.push(f(k, y, x));
                }
            }
        }
        Latent {
            channels: c,
            height: h,
            width: w,
            data,
        }
    }

    #[test]
    fn stats_of_known_values() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.mean, s.min, s.max), (2.5, 1.0, 4.0));
        assert!((s.std - 1.118034).abs() < 1e-6);
        assert_eq!(Stats::of(&[]).mean, 0.0);
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let h = Histogram::of(&[0.0, 0.1, 0.5, 0.9, 1.0], 2);
        assert_eq!(h.counts, vec![2, 3]);
        assert_eq!((h.min, h.max), (0.0, 1.0));
        assert_eq!(Histogram::of(&[3.0, 3.0], 4).counts, vec![2, 0, 0, 0]);
    }

    #[test]
    fn diverging_endpoints() {
        assert_eq!(diverging(0.0), [255, 255, 255]);
        assert_eq!(diverging(1.0), [255, 0, 0]);
        assert_eq!(diverging(-1.0), [0, 0, 255]);
        assert_eq!(diverging(7.0), [255, 0, 0]);
        assert_eq!(heatmap(&[0.0, 10.0, -5.0], 10.0)[3..6], [255, 0, 0]);
    }

    #[test]
    fn signed_difference_is_reconstruction_minus_original() {
        let d = signed_difference(&[10, 10, 10, 0, 0, 0], &[13, 13, 13, 0, 3, 0]);
        assert_eq!(d, vec![3.0, 1.0]);
    }

    #[test]
    fn compression_ratio_of_f32c32() {
        // 512x512 RGB -> 16x16x32 latent: 96x fewer values.
        assert_eq!(compression_ratio(512, 512, 16 * 16 * 32), 96.0);
    }

    #[test]
    fn channel_grid_layout_and_lookup() {
        let l = latent(3, 2, 2, |c, y, x| (c * 4 + y * 2 + x) as f32);
        let (w, h, g) = l.channel_grid(2);
        assert_eq!((w, h), (5, 5));
        // Channel 0 scaled to its own range: 0 -> 0, 3 -> 255.
        assert_eq!((g[0], g[w + 1]), (0, 255));
        assert_eq!(g[2], 0, "gap column");
        assert_eq!(l.grid_cell(2, 4, 1), Some((1, 1, 1)));
        assert_eq!(l.grid_cell(2, 2, 0), None);
        assert_eq!(l.grid_cell(2, 3, 3), None, "no channel 3");
        assert_eq!(l.at(2, 1, 0), Some(10.0));
    }

    #[test]
    fn eigenvectors_of_a_diagonal_matrix() {
        let m = [1.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 3.0];
        let v = top_eigenvectors(&m, 3, 2);
        assert!((v[0][1] - 1.0).abs() < 1e-9, "{v:?}");
        assert!((v[1][2] - 1.0).abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn pca_separates_the_dominant_direction() {
        // Channels 0 and 1 carry the same left-right ramp; channel 2 is constant. The first
        // component (red) must follow the ramp.
        let l = latent(3, 4, 8, |c, _, x| if c < 2 { x as f32 } else { 1.0 });
        let rgb = l.pca_rgb();
        assert_eq!(rgb.len(), 32);
        assert!(
            rgb[7][0] > 240 && rgb[0][0] < 15,
            "{:?} {:?}",
            rgb[0],
            rgb[7]
        );
        assert_eq!(rgb[0], rgb[8], "same column, same colour");
    }

    #[test]
    fn percentiles() {
        let v: Vec<f32> = (0..101).map(|i| i as f32).collect();
        assert_eq!(percentile_range(&v, 0.02), (2.0, 98.0));
    }
}
