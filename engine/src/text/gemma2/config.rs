//! `Gemma2Config` (transformers), as `text_encoder/config.json` of the Sana repos spells it;
//! every field defaults to Gemma-2-2B's value, so a partial config reads as transformers
//! reads it.

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Gemma2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// `gelu_pytorch_tanh` in every release (older configs call it `hidden_act`).
    pub hidden_activation: Option<String>,
    pub hidden_act: Option<String>,
    pub rms_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    pub bos_token_id: Option<i64>,
    /// The attention scale is `query_pre_attn_scalar^-0.5` (not `head_dim^-0.5`).
    pub query_pre_attn_scalar: f64,
    pub sliding_window: Option<usize>,
    /// `tanh(s / c) * c` on the attention logits, before the mask.
    pub attn_logit_softcapping: Option<f64>,
    pub rope_theta: Option<f64>,
    /// transformers 5 moves `rope_theta` here (`{"rope_type": "default", "rope_theta": ..}`).
    pub rope_parameters: Option<serde_json::Value>,
    /// `sliding_attention` / `full_attention` per layer; absent: even layers slide.
    pub layer_types: Option<Vec<String>>,
    pub attention_bias: bool,
}

impl Default for Gemma2Config {
    /// Gemma-2-2B(-it).
    fn default() -> Self {
        Self {
            vocab_size: 256_000,
            hidden_size: 2304,
            intermediate_size: 9216,
            num_hidden_layers: 26,
            num_attention_heads: 8,
            num_key_value_heads: 4,
            head_dim: 256,
            hidden_activation: None,
            hidden_act: None,
            rms_norm_eps: 1e-6,
            pad_token_id: Some(0),
            bos_token_id: Some(2),
            query_pre_attn_scalar: 256.0,
            sliding_window: Some(4096),
            attn_logit_softcapping: Some(50.0),
            rope_theta: None,
            rope_parameters: None,
            layer_types: None,
            attention_bias: false,
        }
    }
}

impl Gemma2Config {
    /// Reads `text_encoder/config.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        crate::io::read_config(path, Self::from_json_str)
    }

    pub fn from_json_str(text: &str) -> Result<Self> {
        let c: Self = serde_json::from_str(text)
            .map_err(|e| Error::Unsupported(format!("Gemma-2 config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// RoPE base: `rope_theta`, or `rope_parameters.rope_theta`, else 10000.
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|v| v.as_f64())
            })
            .unwrap_or(10_000.0)
    }

    /// Whether layer `i` uses the sliding window.
    pub fn sliding(&self, i: usize) -> bool {
        match &self.layer_types {
            Some(t) => t.get(i).is_some_and(|s| s == "sliding_attention"),
            None => i.is_multiple_of(2),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Unsupported(format!("Gemma-2 config: {m}")));
        for (name, v, hi) in [
            ("vocab_size", self.vocab_size, 1 << 22),
            ("hidden_size", self.hidden_size, 65536),
            ("intermediate_size", self.intermediate_size, 1 << 18),
            ("num_hidden_layers", self.num_hidden_layers, 1024),
            ("num_attention_heads", self.num_attention_heads, 1024),
            ("num_key_value_heads", self.num_key_value_heads, 1024),
            ("head_dim", self.head_dim, 4096),
        ] {
            if !(1..=hi).contains(&v) {
                return bad(format!("{name} = {v}: give 1..={hi}"));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head_dim {} must be even (rotary pairs)",
                self.head_dim
            ));
        }
        let act = self
            .hidden_activation
            .as_deref()
            .or(self.hidden_act.as_deref())
            .unwrap_or("gelu_pytorch_tanh");
        if act != "gelu_pytorch_tanh" {
            return bad(format!(
                "activation `{act}` (Gemma-2 uses gelu_pytorch_tanh)"
            ));
        }
        if let Some(t) = &self.layer_types {
            if t.len() != self.num_hidden_layers {
                return bad(format!(
                    "{} layer_types for {} layers",
                    t.len(),
                    self.num_hidden_layers
                ));
            }
            if let Some(o) = t
                .iter()
                .find(|s| *s != "sliding_attention" && *s != "full_attention")
            {
                return bad(format!("layer type `{o}`"));
            }
        }
        if !(self.query_pre_attn_scalar.is_finite() && self.query_pre_attn_scalar > 0.0) {
            return bad(format!(
                "query_pre_attn_scalar = {}",
                self.query_pre_attn_scalar
            ));
        }
        if let Some(c) = self.attn_logit_softcapping
            && !(c.is_finite() && c > 0.0)
        {
            return bad(format!("attn_logit_softcapping = {c}"));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!("rms_norm_eps = {}", self.rms_norm_eps));
        }
        if self.sliding_window == Some(0) {
            return bad("sliding_window = 0".into());
        }
        if self.attention_bias {
            return bad("attention_bias = true (no Gemma-2 release has attention biases)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_gemma_2_2b() {
        let c = Gemma2Config::from_json_str(r#"{"architectures": ["Gemma2Model"]}"#).unwrap();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.head_dim),
            (2304, 26, 256)
        );
        assert!(c.sliding(0) && !c.sliding(1) && c.sliding(24) && !c.sliding(25));
        assert_eq!(c.rope_theta(), 10_000.0);
        let c = Gemma2Config::from_json_str(
            r#"{"rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}}"#,
        )
        .unwrap();
        assert_eq!(c.rope_theta(), 5000.0);
        for bad in [
            r#"{"num_key_value_heads": 3}"#,
            r#"{"hidden_activation": "relu"}"#,
            r#"{"num_hidden_layers": 2, "layer_types": ["full_attention"]}"#,
            r#"{"head_dim": 0}"#,
        ] {
            assert!(Gemma2Config::from_json_str(bad).is_err(), "{bad}");
        }
    }
}
