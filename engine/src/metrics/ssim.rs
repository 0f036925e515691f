//! SSIM on 8-bit RGB as the DC-AE evaluator computes it: an 11x11 Gaussian window (sigma 1.5),
//! K1 0.01, K2 0.03, data range 255, per channel over the valid region, averaged.

fn gaussian_window() -> [f64; 11] {
    let mut g = [0.0; 11];
    for (i, v) in g.iter_mut().enumerate() {
        let x = i as f64 - 5.0;
        *v = (-x * x / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f64 = g.iter().sum();
    g.map(|v| v / s)
}

/// Separable Gaussian filter over the valid region of a `w x h` plane.
fn filter(p: &[f64], w: usize, h: usize, g: &[f64; 11]) -> (Vec<f64>, usize, usize) {
    let (ow, oh) = (w - 10, h - 10);
    let mut tmp = vec![0.0; ow * h];
    for y in 0..h {
        for x in 0..ow {
            tmp[y * ow + x] = (0..11).map(|k| g[k] * p[y * w + x + k]).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..11).map(|k| g[k] * tmp[(y + k) * ow + x]).sum();
        }
    }
    (out, ow, oh)
}

/// Mean SSIM of two interleaved RGB8 images of `w x h`; `None` when smaller than 11x11.
pub fn ssim_rgb8(a: &[u8], b: &[u8], w: usize, h: usize) -> Option<f64> {
    if w < 11 || h < 11 || a.len() != w * h * 3 || b.len() != a.len() {
        return None;
    }
    let g = gaussian_window();
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    for c in 0..3 {
        let pa: Vec<f64> = (0..w * h).map(|i| a[i * 3 + c] as f64).collect();
        let pb: Vec<f64> = (0..w * h).map(|i| b[i * 3 + c] as f64).collect();
        let sq = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<_>>();
        let (ma, ow, oh) = filter(&pa, w, h, &g);
        let (mb, _, _) = filter(&pb, w, h, &g);
        let (saa, _, _) = filter(&sq(&pa, &pa), w, h, &g);
        let (sbb, _, _) = filter(&sq(&pb, &pb), w, h, &g);
        let (sab, _, _) = filter(&sq(&pa, &pb), w, h, &g);
        let mut sum = 0.0;
        for i in 0..ow * oh {
            let (mu_a, mu_b) = (ma[i], mb[i]);
            let va = saa[i] - mu_a * mu_a;
            let vb = sbb[i] - mu_b * mu_b;
            let cov = sab[i] - mu_a * mu_b;
            sum += ((2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2))
                / ((mu_a * mu_a + mu_b * mu_b + c1) * (va + vb + c2));
        }
        total += sum / (ow * oh) as f64;
    }
    Some(total / 3.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssim_identity_and_degradation() {
        let (w, h) = (32, 24);
        let a: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        assert!((ssim_rgb8(&a, &a, w, h).unwrap() - 1.0).abs() < 1e-12);
        let b: Vec<u8> = a.iter().map(|&v| v / 2 + 60).collect();
        let s = ssim_rgb8(&a, &b, w, h).unwrap();
        assert!(s < 0.95 && s > 0.0, "{s}");
        assert!(ssim_rgb8(&a[..30], &a[..30], 2, 5).is_none());
    }
}
