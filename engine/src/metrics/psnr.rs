//! PSNR on 8-bit values, as the DC-AE evaluator computes it.

/// PSNR in dB between two equally sized 8-bit buffers; `f64::INFINITY` when identical.
pub fn psnr_u8(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "psnr of differently sized images");
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_known_values() {
        let a = vec![0u8; 100];
        let mut b = a.clone();
        assert!(psnr_u8(&a, &b).is_infinite());
        b[0] = 10; // mse = 100/100 = 1 -> 48.13 dB
        assert!((psnr_u8(&a, &b) - 48.1308).abs() < 1e-3);
    }
}
