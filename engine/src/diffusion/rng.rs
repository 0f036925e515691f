//! Portable seeded noise: Philox4x32-10 (Salmon et al., SC'11) plus Box-Muller, computed on the
//! host in f64, so one seed gives bit-identical noise on CPU, wgpu and CUDA (device RNGs differ
//! per backend and per launch shape).
//!
//! Every value is addressed by `(seed, stream, item, index)`: the initial latent of batch item
//! `k` does not depend on the batch size or on the other items, and each sampler step draws from
//! its own stream.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox4x32 block with 10 rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// Purpose of a noise draw; separates the streams of one seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The starting latent x_T.
    Initial,
    /// The fresh noise of ancestral step `j` (0 = first step taken).
    Step(u32),
}

impl Stream {
    fn id(self) -> u32 {
        match self {
            Stream::Initial => 0,
            Stream::Step(j) => j.wrapping_add(1),
        }
    }
}

/// `n` standard normal values for `(seed, stream, item)`, as f32.
pub fn normals(seed: u64, stream: Stream, item: u32, n: usize) -> Vec<f32> {
    let key = [seed as u32, (seed >> 32) as u32];
    let mut out = Vec::with_capacity(n + 3);
    let mut block = 0u32;
    while out.len() < n {
        let r = philox4x32_10([block, item, stream.id(), 0x6463_6165], key);
        for pair in [[r[0], r[1]], [r[2], r[3]]] {
            // Uniforms in (0, 1): the half offset keeps ln(u1) finite.
            let u1 = (f64::from(pair[0]) + 0.5) / 4_294_967_296.0;
            let u2 = (f64::from(pair[1]) + 0.5) / 4_294_967_296.0;
            let rad = (-2.0 * u1.ln()).sqrt();
            let th = std::f64::consts::TAU * u2;
            out.push((rad * th.cos()) as f32);
            out.push((rad * th.sin()) as f32);
        }
        block += 1;
    }
    out.truncate(n);
    out
}

/// A `[B, C, H, W]` latent of normals, item `b` drawn from `(seed, stream, item_ids[b])`.
pub fn batch_normals(seed: u64, stream: Stream, item_ids: &[u32], per_item: usize) -> Vec<f32> {
    item_ids
        .iter()
        .flat_map(|&i| normals(seed, stream, i, per_item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from Random123's `kat_vectors` (philox4x32, 10 rounds).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn normals_are_standard_and_addressed_by_item() {
        let v = normals(7, Stream::Initial, 0, 100_000);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        // An item's noise does not depend on the batch it sits in.
        let b = batch_normals(7, Stream::Initial, &[3, 0], 10);
        assert_eq!(&b[10..], &v[..10]);
        assert_ne!(normals(7, Stream::Step(0), 0, 10), v[..10]);
        assert_ne!(normals(8, Stream::Initial, 0, 10), v[..10]);
    }
}
