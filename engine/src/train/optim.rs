//! AdamW, gradient clipping, learning-rate warm-up and EMA over *named* parameters.
//!
//! State lives in maps keyed by checkpoint key (not Burn's per-run parameter ids), so it saves
//! to and restores from a safetensors checkpoint exactly, and frozen parameters never get any:
//! only keys that received a gradient are touched.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Gradients;
use burn::tensor::{Device, Tensor};

/// Parameter id -> checkpoint key.
pub type Names = HashMap<ParamId, String>;

struct Values<'a> {
    names: &'a Names,
    grads: Option<&'a Gradients>,
    out: BTreeMap<String, Tensor<1>>,
}

impl ModuleVisitor for Values<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(name) = self.names.get(&param.id) else {
            return;
        };
        let t = match self.grads {
            Some(g) => match param.val().grad(g) {
                Some(t) => t,
                None => return,
            },
            None => param.val().inner(),
        };
        let n = t.shape().num_elements();
        self.out.insert(name.clone(), t.reshape([n]));
    }
}

/// Every named parameter's value (detached, flattened).
pub fn values<M: Module>(model: &M, names: &Names) -> BTreeMap<String, Tensor<1>> {
    let mut v = Values {
        names,
        grads: None,
        out: BTreeMap::new(),
    };
    model.visit(&mut v);
    v.out
}

/// The gradient of every named parameter that has one (flattened, on the inner device).
pub fn gradients<M: Module>(
    model: &M,
    names: &Names,
    grads: &Gradients,
) -> BTreeMap<String, Tensor<1>> {
    let mut v = Values {
        names,
        grads: Some(grads),
        out: BTreeMap::new(),
    };
    model.visit(&mut v);
    v.out
}

struct Replace<'a> {
    names: &'a Names,
    new: BTreeMap<String, Tensor<1>>,
    trainable: &'a dyn Fn(&str) -> bool,
    device: Device,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(name) = self.names.get(&param.id) else {
            return param;
        };
        let train = (self.trainable)(name);
        let param = match self.new.remove(name) {
            Some(v) => {
                let device = self.device.clone();
                param.map(|old| {
                    let t = v.reshape(old.dims()).cast(old.dtype()).to_device(&device);
                    if device.is_autodiff() {
                        t.autodiff()
                    } else {
                        t
                    }
                })
            }
            None => param,
        };
        param.set_require_grad(train)
    }
}

/// Replaces named parameter values (others unchanged) and sets each one's trainability.
pub fn replace<M: Module>(
    model: M,
    names: &Names,
    new: BTreeMap<String, Tensor<1>>,
    device: &Device,
    trainable: &dyn Fn(&str) -> bool,
) -> M {
    model.map(&mut Replace {
        names,
        new,
        trainable,
        device: device.clone(),
    })
}

/// Marks parameters trainable or frozen by key. Frozen ones are detached from autodiff, so
/// no gradient, no optimizer state and no activations kept for them.
pub fn set_trainable<M: Module>(
    model: M,
    names: &Names,
    device: &Device,
    trainable: &dyn Fn(&str) -> bool,
) -> M {
    model.map(&mut Replace {
        names,
        new: BTreeMap::new(),
        trainable,
        device: device.clone(),
    })
}

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// AdamW moments per key plus the step count (bias correction), and f32 master copies of
/// parameters stored in a lower precision (mixed-precision training).
#[derive(Debug, Default, Clone)]
pub struct AdamState {
    pub t: u64,
    pub m: BTreeMap<String, Tensor<1>>,
    pub v: BTreeMap<String, Tensor<1>>,
    pub master: BTreeMap<String, Tensor<1>>,
}

impl AdamW {
    /// One AdamW update (decoupled weight decay, PyTorch's formula). Returns the new values
    /// of the keys in `grads`, in f32 (the caller casts them to each parameter's dtype).
    pub fn step(
        &self,
        lr: f64,
        params: &BTreeMap<String, Tensor<1>>,
        grads: BTreeMap<String, Tensor<1>>,
        state: &mut AdamState,
    ) -> BTreeMap<String, Tensor<1>> {
        state.t += 1;
        let t = state.t as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let mut out = BTreeMap::new();
        for (k, g) in grads {
            let Some(p) = params.get(&k) else { continue };
            let g = g.cast(burn::tensor::DType::F32);
            let m = match state.m.remove(&k) {
                Some(m) => m * self.beta1 + g.clone() * (1.0 - self.beta1),
                None => g.clone() * (1.0 - self.beta1),
            };
            let v = match state.v.remove(&k) {
                Some(v) => v * self.beta2 + g.clone() * g * (1.0 - self.beta2),
                None => g.clone() * g * (1.0 - self.beta2),
            };
            let low = p.dtype() != burn::tensor::DType::F32;
            let p32 = match state.master.remove(&k) {
                Some(m) if low => m,
                _ => p.clone().cast(burn::tensor::DType::F32),
            };
            let update = (m.clone() / bc1) / ((v.clone() / bc2).sqrt() + self.eps);
            let new = p32 * (1.0 - lr * self.weight_decay) - update * lr;
            if low {
                state.master.insert(k.clone(), new.clone());
            }
            out.insert(k.clone(), new);
            state.m.insert(k.clone(), m);
            state.v.insert(k, v);
        }
        out
    }
}

/// Global L2 norm of all gradients; scales them to `max_norm` when above it (PyTorch's
/// `clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut BTreeMap<String, Tensor<1>>, max_norm: Option<f64>) -> f64 {
    let mut total: Option<Tensor<1>> = None;
    for g in grads.values() {
        let s = g
            .clone()
            .cast(burn::tensor::DType::F32)
            .powf_scalar(2.0)
            .sum();
        total = Some(match total {
            None => s,
            Some(t) => t + s,
        });
    }
    let norm = total
        .and_then(|t| t.into_data().convert::<f32>().try_into_vec::<f32>().ok())
        .and_then(|v| v.first().copied())
        .map(|v| f64::from(v).sqrt())
        .unwrap_or(0.0);
    if let Some(max) = max_norm
        && norm > max
        && norm.is_finite()
    {
        let k = max / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = g.clone() * k;
        }
    }
    norm
}

/// Linear warm-up from 0 to `lr` over `warmup` steps, then constant.
pub fn warmup_lr(lr: f64, warmup: u64, step: u64) -> f64 {
    if warmup == 0 || step >= warmup {
        lr
    } else {
        lr * (step + 1) as f64 / warmup as f64
    }
}

/// The learning rate of step `step` (0-based) of a phase of `steps`: linear warm-up to `lr`,
/// then constant, or a linear decay reaching `lr_end` at the last step.
pub fn phase_lr(lr: f64, warmup: u64, lr_end: Option<f64>, steps: u64, step: u64) -> f64 {
    match lr_end {
        Some(end) if step >= warmup => {
            let span = steps.saturating_sub(warmup + 1).max(1) as f64;
            let t = ((step - warmup) as f64 / span).min(1.0);
            lr + (end - lr) * t
        }
        _ => warmup_lr(lr, warmup, step),
    }
}

/// `ema = decay * ema + (1 - decay) * value` for every key of `values` (keys new to the EMA
/// start at the value).
pub fn ema_update(
    ema: &mut BTreeMap<String, Tensor<1>>,
    values: &BTreeMap<String, Tensor<1>>,
    decay: f64,
) {
    for (k, v) in values {
        let new = match ema.remove(k) {
            Some(e) => e * decay + v.clone() * (1.0 - decay),
            None => v.clone(),
        };
        ema.insert(k.clone(), new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }
    fn host(x: &Tensor<1>) -> Vec<f32> {
        x.clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn warmup_is_linear_then_flat() {
        assert_eq!(warmup_lr(1.0, 4, 0), 0.25);
        assert_eq!(warmup_lr(1.0, 4, 3), 1.0);
        assert_eq!(warmup_lr(1.0, 4, 100), 1.0);
        assert_eq!(warmup_lr(0.5, 0, 0), 0.5);
    }

    #[test]
    fn decay_reaches_lr_end_on_the_last_step() {
        // 2 warm-up steps, then 0.8 -> 0.2 linearly over steps 2..=5 of 6.
        let lr = |s| phase_lr(0.8, 2, Some(0.2), 6, s);
        assert_eq!(lr(0), 0.4);
        assert_eq!(lr(1), 0.8);
        assert_eq!(lr(2), 0.8);
        assert!((lr(3) - 0.6).abs() < 1e-12);
        assert!((lr(5) - 0.2).abs() < 1e-12);
        assert!((lr(50) - 0.2).abs() < 1e-12);
        assert_eq!(phase_lr(0.8, 2, None, 6, 5), 0.8);
    }

    /// Two AdamW steps against the closed form of torch.optim.AdamW (hand-derived: with
    /// constant gradient g the first update is lr * sign(g) and the moments stay g, g^2).
    #[test]
    fn adamw_matches_closed_form() {
        let opt = AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 0.0,
            weight_decay: 0.1,
        };
        let mut st = AdamState::default();
        let mut p = BTreeMap::from([("w".to_string(), t(&[1.0, -2.0]))]);
        for step in 0..2 {
            let g = BTreeMap::from([("w".to_string(), t(&[0.5, -0.25]))]);
            let new = opt.step(0.01, &p, g, &mut st);
            let got = host(&new["w"]);
            let prev = host(&p["w"]);
            for i in 0..2 {
                let sign = if i == 0 { 1.0 } else { -1.0 };
                let want = prev[i] * (1.0 - 0.01 * 0.1) - 0.01 * sign;
                assert!((got[i] - want).abs() < 1e-6, "step {step}: {got:?}");
            }
            p = new;
        }
        assert_eq!(st.t, 2);
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let mut g = BTreeMap::from([("a".to_string(), t(&[3.0])), ("b".to_string(), t(&[4.0]))]);
        let n = clip_grad_norm(&mut g, Some(1.0));
        assert!((n - 5.0).abs() < 1e-6);
        assert!((host(&g["a"])[0] - 0.6).abs() < 1e-5);
        let n2 = clip_grad_norm(&mut g, Some(1.0));
        assert!((n2 - 1.0).abs() < 1e-4);
    }

    #[test]
    fn ema_moves_towards_values() {
        let mut e = BTreeMap::new();
        ema_update(&mut e, &BTreeMap::from([("a".to_string(), t(&[1.0]))]), 0.9);
        ema_update(&mut e, &BTreeMap::from([("a".to_string(), t(&[2.0]))]), 0.9);
        assert!((host(&e["a"])[0] - 1.1).abs() < 1e-6);
    }
}
