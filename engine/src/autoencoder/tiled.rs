//! Tiled encode/decode for large images, on top of the geometry in [`super::tiling`].
//! Memory is bounded by one tile's activations plus the (small) output.

use burn::tensor::{Device, Tensor, TensorData};

use super::DcAe;
use super::tiling::{TilePlan, TileSpec, blend_weights};
use crate::error::Result;
use crate::task::{Cancel, Progress};

/// How one tiled pass maps tiles: input and output spatial units per latent unit, and the
/// output channels.
struct Pass<'a> {
    stage: &'a str,
    in_scale: usize,
    out_scale: usize,
    out_channels: usize,
}

impl DcAe {
    /// Encodes, in tiles when `spec` asks for more than one (see [`TileSpec::auto`]).
    /// `progress` hears `("encode", tiles done, tiles)` after each tile; `cancel` is checked
    /// before the first and after every tile.
    ///
    /// # Shapes
    /// `[B, 3, H, W] -> [B, latent_channels, H/f, W/f]`
    pub fn encode_tiled(
        &self,
        x: Tensor<4>,
        spec: Option<TileSpec>,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<Tensor<4>> {
        self.check_image(&x)?;
        cancel.check()?;
        let [b, _, h, w] = x.dims();
        let f = self.factor();
        self.check_memory("encoding", b, h, w, spec)?;
        let pass = Pass {
            stage: "encode",
            in_scale: f,
            out_scale: 1,
            out_channels: self.config.latent_channels,
        };
        match spec.map(|s| TilePlan::new(h / f, w / f, f, s)) {
            Some(plan) if plan.len() > 1 => {
                self.run_tiles(x, &plan, &pass, &|t| self.encode(t), progress, cancel)
            }
            _ => {
                let z = self.encode(x)?;
                progress.update(pass.stage, 1, 1);
                Ok(z)
            }
        }
    }

    /// Decodes, in tiles when `spec` asks for more than one; progress and cancel as
    /// [`Self::encode_tiled`] (stage `"decode"`).
    ///
    /// # Shapes
    /// `[B, latent_channels, h, w] -> [B, 3, h*f, w*f]`
    pub fn decode_tiled(
        &self,
        z: Tensor<4>,
        spec: Option<TileSpec>,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<Tensor<4>> {
        self.check_latent(&z)?;
        cancel.check()?;
        let [b, _, h, w] = z.dims();
        let f = self.factor();
        self.check_memory("decoding", b, h * f, w * f, spec)?;
        let pass = Pass {
            stage: "decode",
            in_scale: 1,
            out_scale: f,
            out_channels: self.config.in_channels,
        };
        match spec.map(|s| TilePlan::new(h, w, f, s)) {
            Some(plan) if plan.len() > 1 => {
                self.run_tiles(z, &plan, &pass, &|t| self.decode(t), progress, cancel)
            }
            _ => {
                let y = self.decode(z)?;
                progress.update(pass.stage, 1, 1);
                Ok(y)
            }
        }
    }

    /// Runs `run` on every tile of `plan` and blends the outputs with the plan's weights.
    fn run_tiles(
        &self,
        x: Tensor<4>,
        plan: &TilePlan,
        pass: &Pass,
        run: &dyn Fn(Tensor<4>) -> Result<Tensor<4>>,
        progress: &mut dyn Progress,
        cancel: &Cancel,
    ) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let (si, so, oc) = (pass.in_scale, pass.out_scale, pass.out_channels);
        let mut acc = Tensor::<4>::zeros([b, oc, h / si * so, w / si * so], &self.device);
        let total = plan.len() as u64;
        let mut done = 0;
        for (ri, r) in plan.rows.iter().enumerate() {
            for (ci, col) in plan.cols.iter().enumerate() {
                let tile = x.clone().slice([
                    0..b,
                    0..c,
                    r.start * si..r.end() * si,
                    col.start * si..col.end() * si,
                ]);
                let y = run(tile)?;
                let mask = mask_tensor(plan, ri, ci, so, &self.device);
                let region = [
                    0..b,
                    0..oc,
                    r.start * so..r.end() * so,
                    col.start * so..col.end() * so,
                ];
                let cur = acc.clone().slice(region.clone());
                acc = acc.slice_assign(region, cur + y * mask);
                done += 1;
                progress.update(pass.stage, done, total);
                cancel.check()?;
            }
        }
        Ok(acc / weight_tensor(plan, so, &self.device))
    }
}

fn mask_tensor(plan: &TilePlan, ri: usize, ci: usize, scale: usize, device: &Device) -> Tensor<4> {
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

fn weight_tensor(plan: &TilePlan, scale: usize, device: &Device) -> Tensor<4> {
    let h = plan.rows.last().map_or(0, |s| s.end()) * scale;
    let w = plan.cols.last().map_or(0, |s| s.end()) * scale;
    Tensor::from_data(
        TensorData::new(plan.weight_sum(scale), [1, 1, h, w]),
        device,
    )
}
