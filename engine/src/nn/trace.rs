//! Optional capture of intermediate activations, named like the reference fixtures
//! (`encoder.down_blocks.3.0.attn`, `inter.x_embedder`, ...), for any tensor rank (4-D feature
//! maps of the autoencoder, 3-D token sequences of the transformers). Off by default and free
//! when off.

use burn::tensor::Tensor;

/// Collected activations in execution order.
pub struct Trace<const D: usize = 4> {
    entries: Option<Vec<(String, Tensor<D>)>>,
}

impl<const D: usize> Default for Trace<D> {
    fn default() -> Self {
        Self::off()
    }
}

impl<const D: usize> Trace<D> {
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

    /// Whether activations are being recorded (to skip building a view nobody keeps).
    pub(crate) fn is_on(&self) -> bool {
        self.entries.is_some()
    }

    /// Records `t` under the name `name()` builds (only called when the trace is on).
    pub(crate) fn record(&mut self, name: impl FnOnce() -> String, t: &Tensor<D>) {
        if let Some(e) = self.entries.as_mut() {
            e.push((name(), t.clone()));
        }
    }

    /// The recorded (name, activation) pairs in execution order.
    pub fn into_entries(self) -> Vec<(String, Tensor<D>)> {
        self.entries.unwrap_or_default()
    }
}
