//! Embeddings: class label table, sinusoidal timestep embedding (built on the host in f32 as
//! the references build it).

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::Result;
use crate::weights::{Builder, Init};

/// Class embedding table (`embedding_table.weight`, num_classes + 1 rows; the last is null).
#[derive(Module, Debug)]
pub struct LabelEmbed {
    pub table: Param<Tensor<2>>,
}

impl LabelEmbed {
    pub fn build(b: &mut Builder, key: &str, rows: usize, dim: usize) -> Result<Self> {
        Ok(Self {
            table: b.param(
                &format!("{key}.embedding_table.weight"),
                [rows, dim],
                Init::Fan(1),
            )?,
        })
    }

    pub fn rows(&self) -> usize {
        self.table.dims()[0]
    }

    /// # Shapes
    /// `[B] -> [B, D]`
    pub fn forward(&self, y: Tensor<1, Int>) -> Tensor<2> {
        self.table.val().select(0, y)
    }
}

/// The sinusoidal timestep embedding of U-ViT / DiT, `cat(cos(t f), sin(t f))` with
/// `f_i = exp(-ln(10000) i / (dim/2))`, built in f32 on the host the way the references build
/// it (at t ~ 1000 one f32 ulp of the argument moves the output by ~1e-5).
pub fn timestep_embedding(t: &[f32], dim: usize, device: &Device) -> Tensor<2> {
    let half = dim / 2;
    let c = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (c * i as f32 / half as f32).exp())
        .collect();
    let mut v = Vec::with_capacity(t.len() * dim);
    for &tv in t {
        let args: Vec<f32> = freqs.iter().map(|&f| tv * f).collect();
        v.extend(args.iter().map(|a| a.cos()));
        v.extend(args.iter().map(|a| a.sin()));
        v.extend(std::iter::repeat_n(0.0, dim - 2 * half));
    }
    Tensor::from_data(TensorData::new(v, [t.len(), dim]), device)
}

/// Class ids as a device tensor, checked against the table size.
pub fn labels_tensor(labels: &[i64], rows: usize, device: &Device) -> Result<Tensor<1, Int>> {
    if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= rows) {
        return Err(crate::error::Error::Input(format!(
            "class id {bad} is out of range (the model has {} classes plus the null class {})",
            rows - 1,
            rows - 1
        )));
    }
    let v: Vec<i64> = labels.to_vec();
    Ok(Tensor::from_data(
        TensorData::new(v, [labels.len()]),
        device,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cat(cos, sin)` with `f_i = exp(-ln(1e4) i / half)`: at t = 0 cos = 1, sin = 0, and the
    /// first frequency is 1 (so column 0 is cos t, column half is sin t).
    #[test]
    fn timestep_embedding_layout() {
        let dev = Device::flex();
        let e = timestep_embedding(&[0.0, 2.0], 8, &dev)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(&e[..8], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((e[8] - 2f32.cos()).abs() < 1e-7);
        assert!((e[12] - 2f32.sin()).abs() < 1e-7);
        // Last frequency: 1e4^(-3/4) = 1e-3.
        assert!((e[15] - (2.0f32 * 1e-3).sin()).abs() < 1e-6);
    }
}
