//! [`Builder`]: creates every parameter of a model either from a [`WeightStore`] (strict: name
//! and shape checked) or randomly (PyTorch-default-style init, seeded), and records each
//! parameter's checkpoint key, so training and export can walk a model by name.

use burn::module::{Param, ParamId};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::WeightStore;
use crate::error::Result;

/// Compute precision of conv weights and activations. Norm parameters and statistics, the
/// shortcut channel averaging and the attention products and normaliser stay f32 whatever this
/// is (the references upcast the same places; eps 1e-15 underflows in f16). Keeping every
/// activation in f32 instead (autocast-style) was measured on the fixtures and was no more
/// accurate there, at twice the activation memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    /// The name the CLI and run files use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

serde_by_name!(Precision);

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Ok(Precision::F16),
            other => Err(format!("unknown precision `{other}` (f32, bf16, f16)")),
        }
    }
}

/// An error unless `device` can compute in `precision`.
pub fn check_precision(device: &Device, precision: Precision) -> Result<()> {
    if device.supports_dtype(precision.dtype()) {
        Ok(())
    } else {
        Err(crate::error::Error::Backend {
            backend: format!("{device:?}"),
            message: format!(
                "this device has no {:?} support; use --precision f32 (or another backend)",
                precision
            ),
        })
    }
}

/// How a parameter is initialised when no checkpoint is given.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for conv weights.
    Fan(usize),
    Zeros,
    Ones,
}

/// Which parameters (by checkpoint key) a rule applies to.
type KeyPredicate = Box<dyn Fn(&str) -> bool>;

/// The key of the seed store's tensor that initialises a parameter (`None`: none does).
pub type SeedKey = Box<dyn Fn(&str) -> Option<String>>;

/// Creates parameters either from a checkpoint (strict: name and shape checked) or randomly.
pub struct Builder<'a> {
    store: Option<&'a mut WeightStore>,
    rng: u64,
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    /// Checkpoint key of every parameter built, in build order (for training and export).
    pub(crate) names: Vec<(ParamId, String)>,
    /// Parameter bytes so far, and what memory allows ([`crate::limits`]).
    bytes: u64,
    budget: u64,
    /// Random init only: parameters that start at zero whatever their `Init` (the last layer
    /// of each residual branch, so a block starts as its shortcut).
    zero: Option<KeyPredicate>,
    /// Random init only: tensors taken from here where the key and shape match (a model
    /// whose stages the new one shares); how many were.
    seed: Option<&'a mut WeightStore>,
    /// Where a parameter's key is in `seed` (the same key when unset).
    seed_key: Option<SeedKey>,
    seeded: usize,
}

/// A parameter's id derived from its checkpoint key (FNV-1a), so that ids are the same in
/// every run: optimizer state and EMA saved by key map back onto a rebuilt model.
pub fn param_id(key: &str) -> ParamId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ParamId::from(h)
}

impl<'a> Builder<'a> {
    /// Parameters come from `store`; every key and shape is checked.
    pub fn from_store(store: &'a mut WeightStore, device: &Device, precision: Precision) -> Self {
        Self {
            store: Some(store),
            rng: 0,
            device: device.clone(),
            dtype: precision.dtype(),
            names: Vec::new(),
            bytes: 0,
            budget: crate::limits::budget(),
            zero: None,
            seed: None,
            seed_key: None,
            seeded: 0,
        }
    }

    /// Parameters are random (PyTorch-style default init), seeded.
    pub fn random(seed: u64, device: &Device, precision: Precision) -> Self {
        Self {
            store: None,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            device: device.clone(),
            dtype: precision.dtype(),
            names: Vec::new(),
            bytes: 0,
            budget: crate::limits::budget(),
            zero: None,
            seed: None,
            seed_key: None,
            seeded: 0,
        }
    }

    /// Random init: the parameters `zero` names start at zero.
    pub fn zero_where(mut self, zero: impl Fn(&str) -> bool + 'static) -> Self {
        self.zero = Some(Box::new(zero));
        self
    }

    /// Random init: every parameter whose key and shape `store` has is taken from it.
    pub fn seeded_from(mut self, store: &'a mut WeightStore) -> Self {
        self.seed = Some(store);
        self
    }

    /// Random init from a store: `key` maps a parameter's key to the store's (a larger model
    /// whose stage indices differ from the smaller one's, [`crate::train::grow`]).
    pub fn seed_keys(mut self, key: SeedKey) -> Self {
        self.seed_key = Some(key);
        self
    }

    /// How many parameters [`Self::seeded_from`]'s store supplied.
    pub fn seeded(&self) -> usize {
        self.seeded
    }

    fn next_uniform(&mut self) -> f32 {
        // splitmix64: tiny, portable, good enough for weight init.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A parameter in the compute dtype (conv weights and biases).
    pub fn param<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Param<Tensor<D>>> {
        let dtype = self.dtype;
        self.param_dtype(key, shape, init, dtype)
    }

    /// A parameter kept in f32 whatever the compute dtype (norm weights and statistics).
    pub fn param_f32<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Param<Tensor<D>>> {
        self.param_dtype(key, shape, init, DType::F32)
    }

    fn param_dtype<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: Init,
        dtype: DType,
    ) -> Result<Param<Tensor<D>>> {
        // A config with absurd sizes is refused before its first huge parameter exists.
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                crate::error::Error::Unsupported(format!("`{key}` {shape:?} is too large"))
            })?;
        // What the parameter holds on the device (bf16 weights take half of f32's).
        let elem = if dtype == DType::F32 { 4 } else { 2 };
        self.bytes = self.bytes.saturating_add(n as u64 * elem);
        if crate::limits::enforced() && self.bytes > self.budget {
            return Err(crate::error::Error::TooLarge {
                what: format!("the model's parameters (at `{key}`)"),
                need: crate::limits::human(self.bytes),
                limit: crate::limits::human(self.budget),
            });
        }
        let source = match &self.seed_key {
            Some(f) => f(key),
            None => Some(key.to_string()),
        };
        let seeded = match (self.store.is_none(), self.seed.as_deref_mut(), source) {
            (true, Some(seed), Some(src)) if seed.dtype(&src).is_some() => {
                seed.take(&src, &shape).ok()
            }
            _ => None,
        };
        let zero = self.zero.as_ref().is_some_and(|z| z(key));
        let data = match (self.store.as_deref_mut(), seeded) {
            (Some(store), _) => store.take(key, &shape)?.data,
            (None, Some(t)) => {
                self.seeded += 1;
                t.data
            }
            (None, None) if zero => vec![0.0; n],
            (None, None) => match init {
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
                Init::Fan(fan_in) => {
                    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                    (0..n)
                        .map(|_| (self.next_uniform() * 2.0 - 1.0) * bound)
                        .collect()
                }
            },
        };
        let t = Tensor::<D>::from_data(TensorData::new(data, shape), (&self.device, dtype));
        let mut p = Param::from_tensor(t);
        p.id = param_id(key);
        self.names.push((p.id, key.to_string()));
        Ok(p)
    }

    /// The checkpoint key of every parameter built, in build order.
    pub fn into_names(self) -> Vec<(ParamId, String)> {
        self.names
    }

    pub fn skip(&mut self, key: &str) {
        if let Some(store) = self.store.as_deref_mut() {
            store.skip_if_present(key);
        }
    }
}
