//! Mutation fuzzing of every parser that reads user files: safetensors headers and the strict
//! weight loader, model config.json (DC-AE and diffusion), the settings a PNG carries (the PNG
//! itself and its JSON), latent files and TOML run files; and the text-to-image side: Sana and
//! Gemma-2 configs, generation settings, `tokenizer.json` and the pipeline folder loader. A small mutator of our own (bit flips,
//! interesting bytes and numbers, cuts, splices, duplicated spans) runs over valid seed files;
//! every input must give `Ok` or a clean error: a panic fails the test and leaves the input in
//! the temp folder to reproduce it.
//!
//! CI runs `DCAE_FUZZ_ITERS` (default 1 000 000) parser inputs in all, a few seconds, plus a
//! thousandth of that as whole model loads; the soak is
//! `DCAE_FUZZ_ITERS=20000000 cargo test --release --workspace --test fuzz -- --nocapture`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use dcae::DcAeConfig;
use dcae::diffusion::DiffusionConfig;
use dcae::io::tensors::{HostTensor, TensorFile};
use dcae::pipeline::class_to_image::ClassToImage;
use dcae::pipeline::settings::{SAMPLE_KEY, png_text, png_with_text};
use dcae::train::TrainConfig;
use dcae::weights::{KeyLayout, WeightStore};

/// splitmix64: a portable, seeded stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Numbers and bytes that break parsers more often than random ones.
const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "NaN",
    "1e-320",
    "0.5",
    "null",
    "\"\"",
    "[]",
    "{}",
];
const BYTES: [u8; 10] = [0, 0xFF, 0x7F, 0x80, b'"', b'{', b'}', b'[', b',', b'\\'];

/// One mutation of `seed`: 1-4 edits, biased to the first `hot` bytes (a header).
fn mutate(rng: &mut Rng, seed: &[u8], hot: usize) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len().max(1);
        let span = if rng.below(4) > 0 {
            hot.clamp(1, len)
        } else {
            len
        };
        let at = rng.below(span).min(v.len());
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = BYTES[rng.below(BYTES.len())];
            }
            2 => v.truncate(at),
            3 => {
                // Replace the next number-looking run with an interesting number.
                let end = (at..v.len())
                    .find(|&i| !v[i].is_ascii_digit() && v[i] != b'.' && v[i] != b'-')
                    .unwrap_or(v.len());
                let n = NUMBERS[rng.below(NUMBERS.len())].as_bytes();
                v.splice(at..end, n.iter().copied());
            }
            4 => {
                let n = rng.below(16);
                let end = (at + n).min(v.len());
                v.drain(at..end);
            }
            5 if !v.is_empty() => {
                // Duplicate a span (a repeated key, a doubled entry).
                let n = 1 + rng.below(32);
                let end = (at + n).min(v.len());
                let copy: Vec<u8> = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, copy);
            }
            6 => {
                let b = (rng.next() & 0xFF) as u8;
                v.insert(at, b);
            }
            _ => {
                // Splice in bytes from elsewhere in the seed.
                if !seed.is_empty() {
                    let from = rng.below(seed.len());
                    let n = (1 + rng.below(64)).min(seed.len() - from);
                    let end = (at + n).min(v.len());
                    v.splice(at..end, seed[from..from + n].iter().copied());
                }
            }
        }
    }
    v
}

/// Runs `target` on `n` mutations of the seeds (it returns whether the input was accepted);
/// a panic fails with the input saved.
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    hot: usize,
    n: usize,
    target: &dyn Fn(&[u8]) -> bool,
) -> usize {
    let mut rng = Rng(0xF022 ^ (name.len() as u64).wrapping_mul(0x1000_0001));
    let t0 = Instant::now();
    let (mut done, mut accepted) = (0, 0);
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, seed, hot);
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => {
                let p = std::env::temp_dir().join(format!("dcae-fuzz-{name}-{i}.bin"));
                std::fs::write(&p, &input).unwrap();
                panic!("{name}: input {i} panicked; it is saved at {}", p.display());
            }
        }
        done += 1;
    }
    println!(
        "fuzz {name}: {done} inputs, {accepted} accepted, no panic, {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    // Some mutants stay valid, so the parsers' later stages are reached too.
    assert!(accepted > 0, "{name}: no mutated input was accepted");
    done
}

fn total() -> usize {
    std::env::var("DCAE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn safetensors_bytes(tensors: &[(&str, Vec<usize>)], meta: bool) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("dcae-fuzz-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("s{}-{meta}.safetensors", tensors.len()));
    let hosts: Vec<(String, HostTensor)> = tensors
        .iter()
        .map(|(k, s)| {
            let n = s.iter().product::<usize>();
            let data = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            (
                k.to_string(),
                HostTensor {
                    shape: s.clone(),
                    data,
                },
            )
        })
        .collect();
    let refs: Vec<(&str, &HostTensor)> = hosts.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let m = meta.then(|| {
        std::collections::HashMap::from([("dcae.scaled".to_string(), "false".to_string())])
    });
    dcae::io::tensors::write_tensors(&p, &refs, m).unwrap();
    std::fs::read(&p).unwrap()
}

/// Header length of a safetensors file (what mutations should mostly hit).
fn header_len(b: &[u8]) -> usize {
    8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize
}

/// A test binary of its own (`harness = false`), so CI shows the counts it prints.
fn main() {
    fuzz_seeds_are_valid();
    parsers_never_panic_on_mutated_files();
}

fn parsers_never_panic_on_mutated_files() {
    let n = total();
    let per = n / 6;
    let mut count = 0;

    // 1. Safetensors headers through the strict weight store: every canonical tensor taken
    //    with the shape the seed has, then `finish`.
    let weights = safetensors_bytes(
        &[
            ("encoder.conv_in.weight", vec![8, 3, 3, 3]),
            ("encoder.conv_in.bias", vec![8]),
            ("decoder.up_blocks.0.0.attn.to_q.weight", vec![4, 8]),
            ("decoder.up_blocks.0.0.attn.to_k.weight", vec![4, 8]),
            ("decoder.up_blocks.0.0.attn.to_v.weight", vec![4, 8]),
        ],
        false,
    );
    let hot = header_len(&weights);
    count += fuzz("weights", &[weights], hot, per, &|b| {
        let Ok(mut store) = WeightStore::from_bytes("fuzz.safetensors", b.to_vec()) else {
            return false;
        };
        let mut ok = true;
        for (k, s) in [
            ("encoder.conv_in.weight", &[8usize, 3, 3, 3][..]),
            ("encoder.conv_in.bias", &[8]),
            ("decoder.up_blocks.0.0.attn.qkv.weight", &[12, 8, 1, 1]),
        ] {
            ok &= store.take(k, s).is_ok();
        }
        ok && store.finish().is_ok()
    });

    // 2. Latent files: open, read `latent` and the metadata.
    let latent = safetensors_bytes(&[("latent", vec![1, 4, 2, 3])], true);
    let hot = header_len(&latent);
    count += fuzz("latent", &[latent], hot, per, &|b| {
        let path = Path::new("fuzz.safetensors");
        let Ok(f) = TensorFile::from_bytes(path, b.to_vec(), "latent file") else {
            return false;
        };
        let _ = (f.metadata(), f.keys());
        f.tensor("latent").is_ok()
    });

    // 3. DC-AE config.json (the fixtures' and an official layout as seeds), parsed, validated.
    let configs: Vec<Vec<u8>> = std::fs::read_dir(shared().join("fixtures/dcae"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("config.json"))
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .chain([DcAeConfig::f32c32_in_1_0()
            .to_diffusers_json()
            .to_string()
            .into_bytes()])
        .collect();
    assert!(configs.len() >= 2);
    count += fuzz(
        "dcae-config",
        &configs,
        usize::MAX,
        per,
        &|b| match std::str::from_utf8(b).map(DcAeConfig::from_json_str) {
            Ok(Ok(c)) => c.validate().is_ok() && c.spatial_compression() > 0,
            _ => false,
        },
    );

    // 4. Diffusion config.json (the fixtures' explicit configs and a registered name).
    let diff: Vec<Vec<u8>> = ["uvit-tiny", "dit-tiny"]
        .iter()
        .map(|c| {
            std::fs::read(shared().join(format!("fixtures/diffusion/{c}/config.json"))).unwrap()
        })
        .chain([br#"{"model_name": "dc-ae-f64c128-in-1.0-uvit-h-in-512px"}"#.to_vec()])
        .collect();
    count += fuzz("diffusion-config", &diff, usize::MAX, per, &|b| {
        let Ok(t) = std::str::from_utf8(b) else {
            return false;
        };
        DiffusionConfig::from_json_str(t, Path::new("config.json"))
            .is_ok_and(|c| c.latent_chw()[0] > 0)
    });

    // 5. The settings a PNG carries: the PNG container (mutated bytes) and its JSON.
    let settings = serde_json::json!({
        "model": "/m", "autoencoder": null, "classes": [207, 281], "seed": 3, "steps": 4,
        "cfg": 3.0, "sampler": "dpm-solver", "cols": 2, "backend": "cpu", "precision": "f32",
        "dcae_version": "0.1.0"
    })
    .to_string();
    let png = png_with_text(&[40u8; 4 * 4 * 3], 4, 4, SAMPLE_KEY, &settings).unwrap();
    let seeds = [png, settings.into_bytes()];
    count += fuzz("png-settings", &seeds, usize::MAX, per, &|b| {
        let json = if b.starts_with(b"\x89PNG") {
            png_text(b.to_vec(), Path::new("fuzz.png"), SAMPLE_KEY).ok()
        } else {
            std::str::from_utf8(b).ok().map(str::to_string)
        };
        json.and_then(|t| serde_json::from_str(&t).ok())
            .and_then(|v| ClassToImage::from_json(v).ok())
            .is_some_and(|s| s.validate().is_ok())
    });

    // 6. TOML run files.
    count += fuzz(
        "run-file",
        &[run_file_seed()],
        usize::MAX,
        n - 5 * per,
        &|b| {
            let Ok(t) = std::str::from_utf8(b) else {
                return false;
            };
            TrainConfig::from_toml(t, Path::new("run.toml")).is_ok_and(|c| {
                let _ = c.phase_at(u64::MAX);
                c.total_steps() < u64::MAX
            })
        },
    );

    // 7. The whole strict loader: a tiny DC-AE built from a mutated checkpoint (slower per
    //    input, so a thousandth as many).
    let cfg = r#"{"encoder_block_out_channels": [8, 16], "decoder_block_out_channels": [8, 16],
        "encoder_layers_per_block": [1, 1], "decoder_layers_per_block": [1, 1],
        "encoder_block_types": ["ResBlock", "EfficientViTBlock"],
        "decoder_block_types": ["ResBlock", "EfficientViTBlock"],
        "encoder_qkv_multiscales": [[], [5]], "decoder_qkv_multiscales": [[], [5]],
        "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu", "latent_channels": 4,
        "attention_head_dim": 8}"#;
    let config = DcAeConfig::from_json_str(cfg).unwrap();
    let device = dcae::Backend::Cpu.device().unwrap();
    let model = dcae::DcAe::random(config.clone(), 5, &device, dcae::Precision::F32).unwrap();
    let dir = std::env::temp_dir().join(format!("dcae-fuzz-model-{}", std::process::id()));
    let names = model.names.iter().cloned().collect();
    dcae::train::trainer::export(&model.model, &names, &config, &dir, "f32", "none", 0).unwrap();
    let seed = std::fs::read(dir.join("diffusion_pytorch_model.safetensors")).unwrap();
    let hot = header_len(&seed);
    let loads = (n / 1000).max(50);
    fuzz("model", &[seed], hot, loads, &|b| {
        dcae::DcAe::from_bytes(
            config.clone(),
            "fuzz",
            b.to_vec(),
            &device,
            dcae::Precision::F32,
        )
        .is_ok()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let text = text_to_image_inputs(n);
    println!(
        "fuzz: {count} parser inputs + {text} text-to-image inputs + {loads} model loads in all"
    );
    assert_eq!(count, n);
}

/// The text-to-image side: transformer and text-encoder configs, the settings a generated PNG
/// carries, the tokenizer file (slower: a 22 KB JSON each) and the pipeline folder loader.
fn text_to_image_inputs(n: usize) -> usize {
    use dcae::diffusion::sana::SanaConfig;
    use dcae::pipeline::text_to_image::{GENERATE_KEY, SanaFolder, TextToImage};
    use dcae::text::{Gemma2Config, TextTokenizer};
    let model_config = |c: &str| -> Vec<u8> {
        let t =
            std::fs::read_to_string(shared().join(format!("fixtures/diffusion/{c}/config.json")))
                .unwrap();
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        v["model_config"].to_string().into_bytes()
    };
    let per = (n / 20).max(100);
    let mut count = 0;
    let sana = vec![
        model_config("sana-tiny"),
        model_config("sana-sprint-tiny"),
        dcae::diffusion::sana::preset("Sana_1600M_4Kpx_BF16")
            .unwrap()
            .config
            .to_diffusers_json()
            .to_string()
            .into_bytes(),
    ];
    count += fuzz("sana-config", &sana, usize::MAX, per, &|b| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|t| SanaConfig::from_json_str(t).ok())
            .is_some_and(|c| c.inner_dim() > 0 && c.ff_hidden() > 0)
    });
    count += fuzz(
        "gemma-config",
        &[model_config("gemma2-tiny")],
        usize::MAX,
        per,
        &|b| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|t| Gemma2Config::from_json_str(t).ok())
                .is_some_and(|c| c.rope_theta() > 0.0)
        },
    );
    let settings = serde_json::json!({
        "model": "/m", "revision": null, "variant": "bf16", "prompt": "a cat", "negative": "",
        "steps": 20, "cfg": 4.5, "pag": 3.0, "pag_blocks": [0], "sampler": "flow-dpm",
        "flow_shift": 3.0, "width": 1024, "height": 768, "binning": true, "seed": 1, "batch": 1,
        "prompt_options": {"chi": true, "keep_case": false, "max_sequence_length": 300},
        "backend": "cpu", "precision": "bf16", "dcae_version": "0.1.0"
    })
    .to_string();
    assert!(TextToImage::from_json(serde_json::from_str(&settings).unwrap()).is_ok());
    let png = png_with_text(&[40u8; 4 * 4 * 3], 4, 4, GENERATE_KEY, &settings).unwrap();
    count += fuzz(
        "t2i-settings",
        &[png, settings.into_bytes()],
        usize::MAX,
        per,
        &|b| {
            let json = if b.starts_with(b"\x89PNG") {
                png_text(b.to_vec(), Path::new("fuzz.png"), GENERATE_KEY).ok()
            } else {
                std::str::from_utf8(b).ok().map(str::to_string)
            };
            json.and_then(|t| serde_json::from_str(&t).ok())
                .and_then(|v| TextToImage::from_json(v).ok())
                .is_some_and(|s| s.validate().is_ok())
        },
    );
    let tok = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tokenizer/tokenizer.json"),
    )
    .unwrap();
    count += fuzz("tokenizer", &[tok], usize::MAX, (n / 500).max(100), &|b| {
        TextTokenizer::from_bytes(b)
            .and_then(|t| t.encode("A cat 🐱, naïve"))
            .is_ok()
    });
    // The pipeline folder: a mutated model_index.json / scheduler config in a folder that has
    // every component.
    let dir = std::env::temp_dir().join(format!("dcae-fuzz-pipe-{}", std::process::id()));
    for c in [
        "text_encoder",
        "tokenizer",
        "transformer",
        "vae",
        "scheduler",
    ] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    let index = br#"{"_class_name": "SanaPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]}"#
        .to_vec();
    let sched = br#"{"_class_name": "DPMSolverMultistepScheduler", "flow_shift": 3.0}"#.to_vec();
    std::fs::write(dir.join("scheduler/scheduler_config.json"), &sched).unwrap();
    let d = dir.clone();
    count += fuzz(
        "pipeline-folder",
        &[index, sched],
        usize::MAX,
        (n / 1000).max(100),
        &|b| {
            let (a, bb) = if b.starts_with(br#"{"_class_name": "Sana"#) || b.contains(&b'P') {
                (
                    b,
                    &b"{\"_class_name\": \"DPMSolverMultistepScheduler\"}"[..],
                )
            } else {
                (&b"{\"_class_name\": \"SanaPipeline\"}"[..], b)
            };
            std::fs::write(d.join("model_index.json"), a).unwrap();
            std::fs::write(d.join("scheduler/scheduler_config.json"), bb).unwrap();
            SanaFolder::open(&d, None).is_ok()
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    count
}

/// The seeds themselves are accepted (so the fuzzing starts from valid files).
fn fuzz_seeds_are_valid() {
    let latent = safetensors_bytes(&[("latent", vec![1, 4, 2, 3])], true);
    let f = TensorFile::from_bytes(Path::new("x"), latent, "latent file").unwrap();
    assert_eq!(f.tensor("latent").unwrap().shape, vec![1, 4, 2, 3]);
    let w = safetensors_bytes(&[("encoder.conv_in.weight", vec![8, 3, 3, 3])], false);
    let mut s = WeightStore::from_bytes("x", w).unwrap();
    assert_eq!(s.layout(), KeyLayout::Diffusers);
    s.take("encoder.conv_in.weight", &[8, 3, 3, 3]).unwrap();
    s.finish().unwrap();
    let run = run_file_seed();
    TrainConfig::from_toml(std::str::from_utf8(&run).unwrap(), Path::new("run.toml")).unwrap();
}

/// A run file with every section: the f64c128 default's (shared init from a smaller model),
/// plus a phase 3 with perceptual and GAN losses.
fn run_file_seed() -> Vec<u8> {
    let mut run = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/trio-f64c128.toml"),
    )
    .unwrap();
    run.extend_from_slice(
        br#"
[phase3]
steps = 100
resolution = 128
batch_size = 4
lr = 2e-4
warmup = 20
weight_decay = 0.0
beta1 = 0.5
beta2 = 0.9
grad_clip = 1.0
ema_decay = 0.99
perceptual_weight = 0.05
perceptual_every = 4
trainable = ["decoder.norm_out", "decoder.conv_out"]
gan_weight = 0.05
adaptive_gan_weight = true
disc_lr = 2e-4
"#,
    );
    run
}
