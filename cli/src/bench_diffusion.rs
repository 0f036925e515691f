//! `dcae bench --diffusion`: the paper's headline (Table: UViT-H on DC-AE-f64 vs SD-VAE-f8,
//! 19.1x on H100 with TensorRT) measured here: one UViT-H denoising step (random weights) on an
//! 8x8x128 latent with patch 1 and on a 64x64x4 latent with patch 2, same backend.

use std::time::Instant;

use anyhow::Result;
use dcae::burn::tensor::{Device, Distribution, Tensor};
use dcae::diffusion::{DiffusionConfig, DiffusionModel, Taps};
use dcae::{Backend, Precision};
use serde_json::json;

struct Case {
    name: &'static str,
    channels: usize,
    side: usize,
    patch: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "DC-AE-f64c128 (8x8x128)",
        channels: 128,
        side: 8,
        patch: 1,
    },
    Case {
        name: "SD-VAE-f8 (64x64x4)",
        channels: 4,
        side: 64,
        patch: 2,
    },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One denoising step = one network evaluation on the CFG-doubled batch (2 x `batch` rows).
pub fn run(
    backend: Backend,
    precision: Precision,
    runs: usize,
    batch: usize,
    as_json: bool,
) -> Result<()> {
    let device: Device = backend.device()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !as_json {
        println!(
            "UViT-H (depth 28, hidden 1152, 16 heads, random weights), one denoising step = one forward of {} rows (batch {batch} x CFG 2); backend {backend}, {precision:?}, median of {runs} runs, {threads} threads",
            2 * batch
        );
        println!("| latent | patch | tokens | params (M) | ms / step |");
        println!("|---|---:|---:|---:|---:|");
    }
    let mut times = Vec::new();
    for c in &CASES {
        let cfg = DiffusionConfig::explicit(
            "uvit",
            json!({"input_size": c.side, "patch_size": c.patch, "in_channels": c.channels,
                   "hidden_size": 1152, "depth": 28, "num_heads": 16}),
        )?;
        let model = DiffusionModel::random(cfg, 0, &device, precision)?;
        let rows = 2 * batch;
        let x = Tensor::<4>::random(
            [rows, c.channels, c.side, c.side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let tau = vec![500.0f32; rows];
        let labels: Vec<i64> = (0..rows as i64)
            .map(|i| if i < batch as i64 { 207 } else { 1000 })
            .collect();
        let mut ms = Vec::new();
        for i in 0..=runs {
            device
                .sync()
                .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
            let t0 = Instant::now();
            let y = model.forward(x.clone(), &tau, &labels, &mut Taps::off())?;
            device
                .sync()
                .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
            drop(y);
            if i > 0 {
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        let m = median(ms);
        let tokens = (c.side / c.patch).pow(2) + 2;
        if as_json {
            println!(
                "{}",
                json!({"latent": c.name, "patch": c.patch, "tokens": tokens,
                       "params": model.num_params(), "ms_per_step": m, "backend": backend.to_string(),
                       "rows": rows, "threads": threads})
            );
        } else {
            println!(
                "| {} | {} | {tokens} | {:.2} | {m:.1} |",
                c.name,
                c.patch,
                model.num_params() as f64 / 1e6
            );
        }
        times.push(m);
    }
    let ratio = times[1] / times[0];
    if as_json {
        println!("{}", json!({"speedup_f64_vs_sdvae": ratio}));
    } else {
        println!(
            "speed-up of DC-AE-f64 p1 over SD-VAE-f8 p2: {ratio:.1}x (paper: 19.1x on H100, TensorRT)"
        );
    }
    Ok(())
}
