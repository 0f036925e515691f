//! `dcae bench --text-to-image`: one Sana transformer step (random weights) at 1024² (32x32x32
//! latent, batch 2 = CFG's two rows, 300 caption tokens) for Sana 600M and 1.6B, and one
//! Gemma-2-2B encode of 300 tokens; `bench/compare_text_to_image.sh` runs the same through
//! diffusers / transformers and prints ours / theirs.

use std::time::Instant;

use anyhow::Result;
use dcae::burn::tensor::{Device, Distribution, Tensor, TensorData};
use dcae::diffusion::Taps;
use dcae::diffusion::sana::{SanaInput, SanaModel, preset};
use dcae::text::{Gemma2, Gemma2Config};
use dcae::{Backend, Precision};
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sync(d: &Device) -> Result<()> {
    d.sync().map_err(|e| anyhow::anyhow!("device sync: {e:?}"))
}

/// `runs` timed calls of `f` after one warm-up; median ms.
fn time(device: &Device, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut ms = Vec::new();
    for i in 0..=runs {
        sync(device)?;
        let t0 = Instant::now();
        f()?;
        sync(device)?;
        if i > 0 {
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(ms))
}

pub fn run(backend: Backend, precision: Precision, runs: usize, as_json: bool) -> Result<()> {
    let device: Device = backend.device()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !as_json {
        println!(
            "text-to-image, random weights, backend {backend}, {precision:?}, median of {runs} run(s) after a warm-up, {threads} threads"
        );
        println!("| model | input | params (M) | ms |");
        println!("|---|---|---:|---:|");
    }
    let (rows, tokens) = (2usize, 300usize);
    for (name, repo) in [
        ("Sana 600M", "Sana_600M_1024px"),
        ("Sana 1.6B", "Sana_1600M_1024px"),
    ] {
        let cfg = preset(repo).expect("preset").config;
        let model = SanaModel::random(cfg.clone(), 0, &device, precision)?;
        let x = Tensor::<4>::random([rows, 32, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let ctx = Tensor::<3>::random(
            [rows, tokens, cfg.caption_channels],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // 20 valid caption tokens, the rest padding (a short prompt after selection).
        let mask: Vec<f32> = (0..rows * tokens)
            .map(|i| if i % tokens < 20 { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [rows, tokens]), &device);
        let ts = vec![999.0f32; rows];
        let ms = time(&device, runs, || {
            let input = SanaInput {
                timestep: &ts,
                guidance: None,
                caption: ctx.clone(),
                mask: mask.clone(),
                pag: None,
            };
            let y = model.forward(x.clone(), input, None, &mut Taps::off())?;
            drop(y);
            Ok(())
        })?;
        report(
            as_json,
            name,
            "1024² step, batch 2 (CFG)",
            model.num_params(),
            ms,
            &backend,
            threads,
        );
    }
    let g = Gemma2::random(Gemma2Config::default(), 0, &device, precision)?;
    let ids: Vec<i64> = (0..tokens as i64)
        .map(|i| 2 + (i * 7919) % 255_000)
        .collect();
    let mask = vec![1i64; tokens];
    let ms = time(&device, runs, || {
        let y = g.forward(&ids, &mask, 1, tokens, &mut Taps::off())?;
        drop(y);
        Ok(())
    })?;
    report(
        as_json,
        "Gemma-2-2B",
        "encode 300 tokens",
        g.num_params(),
        ms,
        &backend,
        threads,
    );
    Ok(())
}

fn report(
    as_json: bool,
    name: &str,
    input: &str,
    params: usize,
    ms: f64,
    backend: &Backend,
    threads: usize,
) {
    if as_json {
        println!(
            "{}",
            json!({"model": name, "input": input, "params": params, "ms": ms,
                   "backend": backend.to_string(), "threads": threads})
        );
    } else {
        println!(
            "| {name} | {input} | {:.1} | {ms:.0} |",
            params as f64 / 1e6
        );
    }
}
