//! The memory plan of one text-to-image run (tensor-free): stages run one after the other and
//! each frees its model before the next loads (encode the prompt, free Gemma; denoise, free
//! the transformer; decode), so the peak is the largest stage, not the sum.

use crate::error::{Error, Result};
use crate::limits::human;

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: &'static str,
    /// Model weights resident during the stage.
    pub weights: u64,
    /// Activations and buffers (an estimate, rounded up).
    pub work: u64,
}

impl Stage {
    pub fn total(&self) -> u64 {
        self.weights.saturating_add(self.work)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    pub stages: Vec<Stage>,
}

/// Sizes the plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput {
    /// Bytes per weight in the compute precision.
    pub elem: u64,
    pub text_params: u64,
    /// Rows the text encoder runs (the prompt, plus the negative prompt with CFG), tokens each.
    pub text_rows: u64,
    pub text_tokens: u64,
    pub text_hidden: u64,
    pub text_intermediate: u64,
    pub text_heads: u64,
    /// Cached embeddings: the text encoder is not loaded at all.
    pub text_cached: bool,
    pub transformer_params: u64,
    /// Rows of one transformer call (batch x CFG/PAG branches), latent tokens, width.
    pub rows: u64,
    pub tokens: u64,
    pub dim: u64,
    pub ff_hidden: u64,
    pub caption_tokens: u64,
    pub cross_heads: u64,
    pub vae_params: u64,
    /// What the decoder pass needs besides its weights ([`crate::limits::autoencoder_pass`]).
    pub decode_work: u64,
}

/// The three stages' weights and (conservative) activation sizes.
pub fn plan(p: &PlanInput) -> MemoryPlan {
    let f = 4u64; // activations run in f32 where it matters (norms, attention)
    let text_work = p.text_rows * p.text_tokens * (p.text_hidden * 8 + p.text_intermediate * 3) * f
        + p.text_rows * p.text_heads * p.text_tokens * p.text_tokens * f * 3;
    let tr_work = p.rows * p.tokens * (p.dim * 12 + p.ff_hidden * 6) * f
        + p.rows * p.cross_heads * p.tokens * p.caption_tokens * f * 3;
    let mut stages = Vec::new();
    if !p.text_cached {
        stages.push(Stage {
            name: "encode prompt (text encoder)",
            weights: p.text_params * p.elem,
            work: text_work,
        });
    }
    stages.push(Stage {
        name: "denoise (transformer)",
        weights: p.transformer_params * p.elem,
        work: tr_work,
    });
    stages.push(Stage {
        name: "decode (DC-AE)",
        weights: p.vae_params * p.elem,
        work: p.decode_work,
    });
    MemoryPlan { stages }
}

impl MemoryPlan {
    pub fn peak(&self) -> u64 {
        self.stages.iter().map(Stage::total).max().unwrap_or(0)
    }

    /// One line per stage: `name: weights + work = total`.
    pub fn lines(&self) -> Vec<String> {
        self.stages
            .iter()
            .map(|s| {
                format!(
                    "{:<30} {:>9} weights + {:>9} work = {:>9}",
                    s.name,
                    human(s.weights),
                    human(s.work),
                    human(s.total())
                )
            })
            .collect()
    }

    /// Refuses a plan whose largest stage does not fit `budget`.
    pub fn check(&self, budget: u64) -> Result<()> {
        if let Some(s) = self.stages.iter().find(|s| s.total() > budget) {
            return Err(Error::TooLarge {
                what: format!(
                    "stage `{}` ({} weights + {} work); use bf16, a smaller size or batch",
                    s.name,
                    human(s.weights),
                    human(s.work)
                ),
                need: human(s.total()),
                limit: human(budget),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlanInput {
        PlanInput {
            elem: 2,
            text_params: 2_614_341_888,
            text_rows: 2,
            text_tokens: 660,
            text_hidden: 2304,
            text_intermediate: 9216,
            text_heads: 8,
            text_cached: false,
            transformer_params: 1_604_000_000,
            rows: 2,
            tokens: 1024,
            dim: 2240,
            ff_hidden: 5600,
            caption_tokens: 300,
            cross_heads: 20,
            vae_params: 312_000_000,
            decode_work: 3 << 30,
        }
    }

    /// Sana 1600M at 1024 px in bf16: the text encoder stage (5.2 GB of weights) is the peak,
    /// and a cached prompt drops it.
    #[test]
    fn peak_is_the_largest_stage() {
        let p = plan(&input());
        assert_eq!(p.stages.len(), 3);
        assert_eq!(p.peak(), p.stages[0].total());
        assert!(p.stages[0].weights > 5_000_000_000);
        assert!(p.check(4 << 30).is_err());
        assert!(p.check(64 << 30).is_ok());
        let cached = plan(&PlanInput {
            text_cached: true,
            ..input()
        });
        assert_eq!(cached.stages.len(), 2);
        assert!(cached.peak() < p.peak());
    }
}
