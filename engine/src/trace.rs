//! Optional capture of intermediate activations, named like the reference fixtures
//! (`encoder.down_blocks.3.0.attn`, `decoder.norm_out`, ...). Off by default and free when off.

use burn::tensor::Tensor;

/// Collected activations in execution order.
#[derive(Default)]
pub struct Trace {
    entries: Option<Vec<(String, Tensor<4>)>>,
}

impl Trace {
    /// A trace that records nothing.
    pub fn off() -> Self {
        Self { entries: None }
    }

    /// A trace that records every named activation.
    pub fn on() -> Self {
        Self {
            entries: Some(Vec::new()),
        }
    }

    pub(crate) fn record(&mut self, name: impl FnOnce() -> String, t: &Tensor<4>) {
        if let Some(e) = self.entries.as_mut() {
            e.push((name(), t.clone()));
        }
    }

    /// The recorded (name, activation) pairs in execution order.
    pub fn into_entries(self) -> Vec<(String, Tensor<4>)> {
        self.entries.unwrap_or_default()
    }
}
