//! Tiled encode/decode for large images, on top of the geometry in [`crate::tiling`].
//! Memory is bounded by one tile's activations plus the (small) output.

use burn::tensor::{Tensor, TensorData};

use crate::autoencoder::DcAe;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::tiling::{TilePlan, TileSpec, blend_weights};

impl DcAe {
    /// Encodes with tiles when `spec` is given (see [`TileSpec::auto`]); `progress(done, total)`
    /// is called after each tile.
    ///
    /// # Shapes
    /// `[B, 3, H, W] -> [B, latent_channels, H/f, W/f]`
    pub fn encode_tiled(
        &self,
        x: Tensor<4>,
        spec: Option<TileSpec>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor<4>> {
        self.encode_tiled_cancellable(x, spec, progress, &AtomicBool::new(false))
    }

    /// [`Self::encode_tiled`] that stops with [`Error::Cancelled`] after the tile during which
    /// `cancel` was set.
    pub fn encode_tiled_cancellable(
        &self,
        x: Tensor<4>,
        spec: Option<TileSpec>,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<Tensor<4>> {
        self.check_image(&x)?;
        let [b, _, h, w] = x.dims();
        let f = self.factor();
        let plan = match spec {
            Some(s) => TilePlan::new(h / f, w / f, f, s),
            None => {
                let z = self.encode(x)?;
                progress(1, 1);
                return Ok(z);
            }
        };
        if plan.len() == 1 {
            let z = self.encode(x)?;
            progress(1, 1);
            return Ok(z);
        }
        let c = self.config.latent_channels;
        let mut acc = Tensor::<4>::zeros([b, c, h / f, w / f], &self.device);
        let total = plan.len();
        let mut done = 0;
        for (ri, r) in plan.rows.iter().enumerate() {
            for (ci, col) in plan.cols.iter().enumerate() {
                let tile = x.clone().slice([
                    0..b,
                    0..x.dims()[1],
                    r.start * f..r.end() * f,
                    col.start * f..col.end() * f,
                ]);
                let z = self.encode(tile)?;
                let mask = mask_tensor(&plan, ri, ci, 1, &self.device);
                let region = [0..b, 0..c, r.start..r.end(), col.start..col.end()];
                let cur = acc.clone().slice(region.clone());
                acc = acc.slice_assign(region, cur + z * mask);
                done += 1;
                progress(done, total);
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
            }
        }
        Ok(acc / weight_tensor(&plan, 1, &self.device))
    }

    /// Decodes with tiles when `spec` is given; `progress(done, total)` after each tile.
    ///
    /// # Shapes
    /// `[B, latent_channels, h, w] -> [B, 3, h*f, w*f]`
    pub fn decode_tiled(
        &self,
        z: Tensor<4>,
        spec: Option<TileSpec>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor<4>> {
        self.decode_tiled_cancellable(z, spec, progress, &AtomicBool::new(false))
    }

    /// [`Self::decode_tiled`] that stops with [`Error::Cancelled`] after the tile during which
    /// `cancel` was set.
    pub fn decode_tiled_cancellable(
        &self,
        z: Tensor<4>,
        spec: Option<TileSpec>,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<Tensor<4>> {
        self.check_latent(&z)?;
        let [b, c, h, w] = z.dims();
        let f = self.factor();
        let Some(spec) = spec else {
            let y = self.decode(z)?;
            progress(1, 1);
            return Ok(y);
        };
        let plan = TilePlan::new(h, w, f, spec);
        if plan.len() == 1 {
            let y = self.decode(z)?;
            progress(1, 1);
            return Ok(y);
        }
        let oc = self.config.in_channels;
        let mut acc = Tensor::<4>::zeros([b, oc, h * f, w * f], &self.device);
        let total = plan.len();
        let mut done = 0;
        for (ri, r) in plan.rows.iter().enumerate() {
            for (ci, col) in plan.cols.iter().enumerate() {
                let tile = z
                    .clone()
                    .slice([0..b, 0..c, r.start..r.end(), col.start..col.end()]);
                let y = self.decode(tile)?;
                let mask = mask_tensor(&plan, ri, ci, f, &self.device);
                let region = [
                    0..b,
                    0..oc,
                    r.start * f..r.end() * f,
                    col.start * f..col.end() * f,
                ];
                let cur = acc.clone().slice(region.clone());
                acc = acc.slice_assign(region, cur + y * mask);
                done += 1;
                progress(done, total);
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
            }
        }
        Ok(acc / weight_tensor(&plan, f, &self.device))
    }
}

fn mask_tensor(
    plan: &TilePlan,
    ri: usize,
    ci: usize,
    scale: usize,
    device: &burn::tensor::Device,
) -> Tensor<4> {
    let rw = blend_weights(&plan.rows, ri, scale);
    let cw = blend_weights(&plan.cols, ci, scale);
    let mut m = Vec::with_capacity(rw.len() * cw.len());
    for a in &rw {
        for b in &cw {
            m.push(a * b);
        }
    }
    Tensor::from_data(TensorData::new(m, [1, 1, rw.len(), cw.len()]), device)
}

fn weight_tensor(plan: &TilePlan, scale: usize, device: &burn::tensor::Device) -> Tensor<4> {
    let h = plan.rows.last().map_or(0, |s| s.end()) * scale;
    let w = plan.cols.last().map_or(0, |s| s.end()) * scale;
    Tensor::from_data(
        TensorData::new(plan.weight_sum(scale), [1, 1, h, w]),
        device,
    )
}
