//! Short training runs of every phase (tiny config, CPU), exact kill-and-resume, phase freezing,
//! and the diffusers export loading back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dcae::io::tensors::TensorFile;
use dcae::train::{Event, TrainConfig, first_step_gradients, train};
use dcae::{Cancel, DcAe, Precision};

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

fn lpips_weights() -> PathBuf {
    std::env::var("DCAE_LPIPS_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/lpips/stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth")
        })
}

/// A tiny run: default-small model, 64 px crops, batch 2, LPIPS + GAN on.
fn run_file(dir: &Path, phases: &str, steps: [u64; 3], extra: &str) -> PathBuf {
    let text = format!(
        r#"
out_dir = "{out}"
seed = 3
backend = "cpu"
[model]
preset = "default-small"
{extra}
[data]
train = "{train}"
val = "{val}"
val_count = 1
val_size = 64
workers = 2
[perceptual]
weights = ["{lp}"]
[schedule]
phases = {phases}
checkpoint_every = 2
val_every = 100
log_every = 1
[phase1]
steps = {s1}
resolution = 64
batch_size = 2
lr = 1e-3
warmup = 1
weight_decay = 0.01
grad_clip = 1.0
ema_decay = 0.5
perceptual_weight = 0.1
trainable = ["all"]
[phase2]
steps = {s2}
resolution = 64
batch_size = 1
lr = 1e-3
weight_decay = 0.0
grad_clip = 1.0
ema_decay = 0.5
perceptual_weight = 0.1
trainable = ["encoder.project_out", "decoder.project_in"]
[phase3]
steps = {s3}
resolution = 64
batch_size = 2
lr = 1e-3
weight_decay = 0.0
beta1 = 0.5
beta2 = 0.9
perceptual_weight = 0.1
trainable = ["decoder.project_out"]
gan_weight = 0.5
adaptive_gan_weight = true
disc_channels = 8
disc_layers = 2
"#,
        out = dir.join("run").display(),
        train = shared().join("train/sun_hays80").display(),
        val = shared().join("val").display(),
        lp = lpips_weights().display(),
        s1 = steps[0],
        s2 = steps[1],
        s3 = steps[2],
    );
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcae-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let f = TensorFile::open(path).unwrap();
    f.keys()
        .into_iter()
        .map(|k| {
            let t = f.tensor(&k).unwrap();
            (k, t.data)
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "tensors of different sizes");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn all_three_phases_run_freeze_and_export() {
    let dir = tmp("phases");
    let (cfg, text) = TrainConfig::from_file(&run_file(&dir, "[1, 2, 3]", [2, 2, 2], "")).unwrap();
    let stop = Cancel::new();
    let mut phases = Vec::new();
    let mut snapshots: BTreeMap<u64, BTreeMap<String, Vec<f32>>> = BTreeMap::new();
    let ckpt = cfg.out_dir.join("checkpoint.safetensors");
    let out = train(&cfg, &text, false, &stop, &mut |e| match e {
        Event::Phase {
            phase,
            trainable_params,
            total_params,
            ..
        } => phases.push((phase, trainable_params, total_params)),
        Event::Checkpoint { step, .. } => {
            snapshots.insert(step, tensors(&ckpt));
        }
        _ => {}
    })
    .unwrap();
    assert_eq!(out.step, 6);
    assert!(!out.interrupted);
    assert_eq!(
        phases.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(phases[0].1, phases[0].2, "phase 1 trains everything");
    assert!(
        phases[1].1 < phases[1].2 / 5,
        "phase 2 trains only the latent-adjacent layers: {phases:?}"
    );
    assert!(
        phases[2].1 < phases[2].2 / 5,
        "phase 3 trains only the decoder head: {phases:?}"
    );

    // Phase 2 (steps 2..4): only encoder.conv_out / decoder.conv_in change, and only they get
    // optimizer state. Phase 3 (4..6): only decoder.norm_out / conv_out.
    for (from, to, allowed) in [
        (
            2u64,
            4u64,
            &["model.encoder.conv_out.", "model.decoder.conv_in."][..],
        ),
        (
            4,
            6,
            &["model.decoder.norm_out.", "model.decoder.conv_out."][..],
        ),
    ] {
        let (a, b) = (&snapshots[&from], &snapshots[&to]);
        let mut changed = 0;
        for (k, va) in a.iter().filter(|(k, _)| k.starts_with("model.")) {
            let d = max_diff(va, &b[k]);
            let may = allowed.iter().any(|p| k.starts_with(p));
            if !may {
                assert_eq!(d, 0.0, "{k} is frozen in steps {from}..{to} but changed");
            } else if d > 0.0 {
                changed += 1;
            }
        }
        assert!(changed > 0, "nothing trained in steps {from}..{to}");
        for k in b.keys().filter(|k| k.starts_with("adam_m.")) {
            let name = k.trim_start_matches("adam_m.");
            assert!(
                allowed
                    .iter()
                    .any(|p| format!("model.{name}").starts_with(p)),
                "optimizer state for frozen {name}"
            );
        }
    }
    assert!(
        snapshots[&6].keys().any(|k| k.starts_with("disc.")),
        "phase 3 checkpoints the discriminator"
    );

    // Logs, validation, samples, run record.
    let log = std::fs::read_to_string(cfg.out_dir.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 6, "{log}");
    let gan_rows: Vec<&str> = log.lines().skip(5).collect();
    for r in gan_rows {
        let cols: Vec<f64> = r.split(',').map(|c| c.parse().unwrap()).collect();
        assert!(
            cols[5] != 0.0 && cols[6] > 0.0,
            "phase 3 logs GAN and disc losses: {r}"
        );
    }
    let val = std::fs::read_to_string(cfg.out_dir.join("val.csv")).unwrap();
    assert_eq!(
        val.lines().count(),
        1 + 1 + 3,
        "the starting point, then one validation per phase end: {val}"
    );
    assert!(
        val.lines().nth(1).is_some_and(|l| l.starts_with("0,1,")),
        "{val}"
    );
    let run = std::fs::read_to_string(cfg.out_dir.join("run.json")).unwrap();
    assert!(run.contains("shift-tolerant LPIPS VGG16"), "{run}");
    assert!(
        std::fs::read_dir(cfg.out_dir.join("samples"))
            .unwrap()
            .count()
            >= 3
    );

    // The export is a diffusers folder our loader takes strictly, and it holds the EMA/final
    // weights of the checkpoint.
    let export = out.exported.unwrap();
    let cfg_json = std::fs::read_to_string(export.join("config.json")).unwrap();
    assert!(cfg_json.contains("\"_class_name\": \"AutoencoderDC\""));
    let m = DcAe::load(&export, &dcae::burn::tensor::Device::flex(), Precision::F32).unwrap();
    assert_eq!(m.config, dcae::DcAeConfig::default_small());
    let exported = tensors(&export.join("diffusion_pytorch_model.safetensors"));
    assert!(
        exported.keys().any(|k| k.ends_with("attn.to_q.weight")),
        "qkv split into diffusers keys"
    );
    // diffusers' attention projections are nn.Linear: 2-D weights.
    let f = TensorFile::open(&export.join("diffusion_pytorch_model.safetensors")).unwrap();
    for k in f.keys().into_iter().filter(|k| k.contains(".attn.to_")) {
        assert_eq!(f.tensor(&k).unwrap().shape.len(), 2, "{k}");
    }
    let last = &snapshots[&6];
    let w = "decoder.conv_out.conv.weight";
    if let (Some(a), Some(b)) = (exported.get(w), last.get(&format!("model.{w}"))) {
        assert_eq!(max_diff(a, b), 0.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stopping after any step and resuming gives bit-for-bit the run that never stopped.
#[test]
fn kill_and_resume_continues_exactly() {
    let steps = [3, 2, 2];
    let full_dir = tmp("full");
    let (cfg, text) = TrainConfig::from_file(&run_file(&full_dir, "[1, 2, 3]", steps, "")).unwrap();
    let out = train(&cfg, &text, false, &Cancel::new(), &mut |_| {}).unwrap();
    let want = tensors(
        &out.exported
            .unwrap()
            .join("diffusion_pytorch_model.safetensors"),
    );

    // Stop inside phase 1 (after step 2) and inside phase 3 (after step 6).
    let dir = tmp("resumed");
    let (cfg, text) = TrainConfig::from_file(&run_file(&dir, "[1, 2, 3]", steps, "")).unwrap();
    for stop_at in [2u64, 6] {
        let stop = Cancel::new();
        let resume = cfg.out_dir.join("checkpoint.safetensors").exists();
        let out = train(&cfg, &text, resume, &stop, &mut |e| {
            if let Event::Step { step, .. } = e
                && step == stop_at
            {
                stop.cancel();
            }
        })
        .unwrap();
        assert!(out.interrupted);
        assert_eq!(out.step, stop_at);
    }
    // A mid-run checkpoint exports on its own.
    let snap = dcae::train::export_checkpoint(&cfg, &text).unwrap();
    DcAe::load(&snap, &dcae::burn::tensor::Device::flex(), Precision::F32).unwrap();
    // A fresh start over an existing run is refused; a resume finishes it.
    assert!(train(&cfg, &text, false, &Cancel::new(), &mut |_| {}).is_err());
    let out = train(&cfg, &text, true, &Cancel::new(), &mut |_| {}).unwrap();
    assert_eq!(out.step, 7);
    let got = tensors(
        &out.exported
            .unwrap()
            .join("diffusion_pytorch_model.safetensors"),
    );
    assert_eq!(got.len(), want.len());
    let worst = want
        .iter()
        .map(|(k, w)| max_diff(w, &got[k]))
        .fold(0.0, f32::max);
    println!("resumed vs uninterrupted: worst max|diff| {worst:e}");
    assert!(worst <= 1e-6, "resumed run differs by {worst}");

    // Resuming with a different run file is refused.
    let other = run_file(&dir, "[1, 2, 3]", [3, 2, 3], "");
    let (cfg2, text2) = TrainConfig::from_file(&other).unwrap();
    let e = train(&cfg2, &text2, true, &Cancel::new(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("different run file"), "{e}");
    let _ = std::fs::remove_dir_all(&full_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data parallelism over two replicas (on the one CPU device, the same code path as GPUs
/// 0 and 1): the batch split in two with the gradients summed gives the one-device run, and a
/// GAN phase (per-replica adaptive weight, summed discriminator gradients) runs.
/// [`run_file`] with `devices = N` (N replicas share the CPU).
fn on_devices(dir: &Path, phases: &str, steps: [u64; 3], devices: usize) -> (TrainConfig, String) {
    let p = run_file(dir, phases, steps, "");
    let t = std::fs::read_to_string(&p).unwrap().replacen(
        "backend = \"cpu\"\n",
        &format!("backend = \"cpu\"\ndevices = {devices}\n"),
        1,
    );
    std::fs::write(&p, t).unwrap();
    let parsed = TrainConfig::from_file(&p).unwrap();
    assert_eq!(parsed.0.devices, devices);
    parsed
}

/// The data-parallel step computes the one-device step's gradients up to float rounding.
/// Gradients are compared, not trained weights: Adam divides by sqrt(v), so a rounding-level
/// difference in a near-zero gradient becomes a learning-rate-sized weight step (a 1e-4 bound on
/// weights after 3 steps held on AVX2 and failed with 9.9e-4 on AVX-512, whose gemm kernels
/// round differently). The optimizer after the sum is the same code on either path.
///
/// Bound: splitting the batch only re-associates the sums over batch items and pixels inside
/// each gradient (n = batch x H x W terms, up to 2 x 64 x 64 here); f32 summation error is at
/// most about n * eps * sum|terms| and in practice sqrt(n) * eps * max|g| ~ 1e-5 relative. The
/// assertion allows 1e-3 of each tensor's largest gradient (plus 1e-4 of the largest gradient of
/// the model, for tensors whose gradients are all near zero), far below what a real fault gives
/// (a replica that drops its slice or mis-weights it is off by tens of percent).
#[test]
fn data_parallel_matches_one_device() {
    let grads = |name: &str, phases: &str, steps: [u64; 3], devices: usize| {
        let dir = tmp(&format!("dp-{name}-{devices}"));
        let (cfg, _) = on_devices(&dir, phases, steps, devices);
        let g = first_step_gradients(&cfg).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        g
    };
    // Phase 1 (batch 2: one crop per replica, LPIPS on) and phase 2 (batch 1: one replica idle).
    for (name, phases, steps) in [("p1", "[1]", [1, 0, 0]), ("p2", "[2]", [0, 1, 0])] {
        let one = grads(name, phases, steps, 1);
        let two = grads(name, phases, steps, 2);
        assert_eq!(
            one.grads.keys().collect::<Vec<_>>(),
            two.grads.keys().collect::<Vec<_>>(),
            "{name}: the replicas trained other parameters"
        );
        assert!(!one.grads.is_empty());
        let amax = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let global = one.grads.values().map(|g| amax(g)).fold(0.0, f32::max);
        assert!(global > 0.0, "{name}: all gradients are zero");
        let (mut worst, mut worst_key) = (0.0f32, String::new());
        for (k, g1) in &one.grads {
            let g2 = &two.grads[k];
            assert_eq!(g1.len(), g2.len(), "{k}");
            let d = max_diff(g1, g2);
            let bound = 1e-3 * amax(g1) + 1e-4 * global;
            assert!(
                d <= bound,
                "{name} {k}: max|diff| {d:e} > {bound:e} (max|g| {:e})",
                amax(g1)
            );
            let rel = d / global;
            if rel > worst {
                (worst, worst_key) = (rel, k.clone());
            }
        }
        let dl = (one.loss - two.loss).abs();
        assert!(
            dl <= 1e-5 * one.loss.abs().max(1e-3),
            "{name}: loss {} vs {}",
            one.loss,
            two.loss
        );
        println!(
            "{name}: 2 replicas vs 1 device: {} gradients, worst max|diff| {worst:e} of max|grad| {global:e} ({worst_key}); loss {} vs {}",
            one.grads.len(),
            one.loss,
            two.loss
        );
    }

    // The whole loop runs on 2 replicas: the weights move and stay finite, GAN phase included.
    let run = |name: &str, phases: &str, steps: [u64; 3], devices: usize| {
        let dir = tmp(name);
        let (cfg, text) = on_devices(&dir, phases, steps, devices);
        let out = train(&cfg, &text, false, &Cancel::new(), &mut |_| {}).unwrap();
        let t = tensors(
            &out.exported
                .unwrap()
                .join("diffusion_pytorch_model.safetensors"),
        );
        let _ = std::fs::remove_dir_all(&dir);
        t
    };
    let init = run("dp-zero", "[1]", [0, 0, 0], 1);
    let trained = run("dp-loop", "[1, 2]", [2, 1, 0], 2);
    let moved = trained
        .iter()
        .map(|(k, w)| max_diff(w, &init[k]))
        .fold(0.0, f32::max);
    assert!(
        moved > 1e-3,
        "training did not change the weights ({moved})"
    );
    assert!(trained.values().all(|v| v.iter().all(|x| x.is_finite())));
    let gan = run("dp-gan", "[3]", [0, 0, 2], 2);
    assert!(gan.values().all(|v| v.iter().all(|x| x.is_finite())));
}

#[test]
fn bad_run_files_are_clear_errors() {
    let dir = tmp("bad");
    let p = run_file(&dir, "[1]", [1, 1, 1], "");
    let text = std::fs::read_to_string(&p).unwrap();
    let cases = [
        (
            text.replace(
                "resolution = 64\nbatch_size = 2\nlr = 1e-3\nwarmup",
                "resolution = 48\nbatch_size = 2\nlr = 1e-3\nwarmup",
            ),
            "not a multiple",
        ),
        (
            text.replace("trainable = [\"all\"]", "trainable = [\"encoder.nope\"]"),
            "matches no parameter",
        ),
        (text.replace("phases = [1]", "phases = [4]"), "not a phase"),
        (text.replace("[schedule]", "typo = 1\n[schedule]"), "typo"),
        (
            text.replace("sun_hays80", "no_such_folder"),
            "does not exist",
        ),
        (
            text.replace("vgg_shift_tolerant.pth", "missing.pth"),
            "not found",
        ),
        // Every number a run file sets, with its range in the message.
        (
            text.replacen("warmup = 1\n", "warmup = 1\nlr_end = -10\n", 1),
            "lr_end = -10",
        ),
        (
            text.replacen("grad_clip = 1.0", "grad_clip = -1", 1),
            "grad_clip = -1",
        ),
        (text.replace("beta1 = 0.5", "beta1 = -5"), "beta1 = -5"),
        (text.replace("beta2 = 0.9", "beta2 = 7"), "[0, 1)"),
        (
            text.replacen("batch_size = 2", "batch_size = 100000", 1),
            "1..=4096",
        ),
        (
            text.replacen("resolution = 64", "resolution = 100000", 1),
            "1..=8192",
        ),
        (
            text.replace("workers = 2", "workers = 100000"),
            "data.workers = 100000",
        ),
        // Growing needs the smaller model, one stage smaller, and sane fit settings.
        (
            text.replace(
                "preset = \"default-small\"\n",
                "preset = \"default-small\"\ninit_match = \"grow\"\n",
            ),
            "needs model.init",
        ),
        (
            text.replace(
                "preset = \"default-small\"\n",
                &format!(
                    "preset = \"default-small\"\ninit_match = \"grow\"\ninit = \"{}\"\n",
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("../../shared/fixtures/dcae/f32c32-sana-96x128-b2")
                        .display()
                ),
            ),
            "one more stage",
        ),
        (
            text.replace("[data]", "[grow]\ncrops = 0\n[data]"),
            "grow.crops = 0",
        ),
        // A data path that is a file, not a folder.
        (
            text.replace("train/sun_hays80", "val/skimage_astronaut.png"),
            "is a file",
        ),
        // A crop and batch the machine cannot hold is refused before any step.
        (
            text.replacen(
                "resolution = 64\nbatch_size = 2",
                "resolution = 8192\nbatch_size = 4096",
                1,
            ),
            "needs about",
        ),
    ];
    for (i, (t, want)) in cases.iter().enumerate() {
        assert_ne!(t, &text, "case {i} changed nothing");
        let p = dir.join(format!("bad{i}.toml"));
        std::fs::write(&p, t).unwrap();
        let e = match TrainConfig::from_file(&p) {
            Err(e) => e.to_string(),
            Ok((cfg, text)) => {
                let cfg = TrainConfig {
                    out_dir: dir.join(format!("out{i}")),
                    ..cfg
                };
                train(&cfg, &text, false, &Cancel::new(), &mut |_| {})
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            }
        };
        assert!(e.contains(want), "case {i}: `{e}` lacks `{want}`");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// bf16 mixed precision: bf16 weights and activations, f32 master weights in the checkpoint.
#[test]
fn bf16_mixed_precision_trains_with_f32_masters() {
    let dir = tmp("bf16");
    let p = run_file(&dir, "[1]", [3, 1, 1], "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "backend = \"cpu\"",
        "backend = \"cpu\"\nprecision = \"bf16\"",
    );
    std::fs::write(&p, text).unwrap();
    let (cfg, text) = TrainConfig::from_file(&p).unwrap();
    assert_eq!(cfg.precision, "bf16");
    let mut losses = Vec::new();
    let out = train(&cfg, &text, false, &Cancel::new(), &mut |e| {
        if let Event::Step { loss, .. } = e {
            losses.push(loss)
        }
    })
    .unwrap();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let ckpt = tensors(&cfg.out_dir.join("checkpoint.safetensors"));
    let w = &ckpt["model.decoder.conv_in.weight"];
    // Masters are f32: some value is not exactly representable in bf16.
    assert!(
        w.iter().any(|v| half::bf16::from_f32(*v).to_f32() != *v),
        "checkpoint weights look bf16-rounded: masters were not kept"
    );
    let m = DcAe::load(
        &out.exported.unwrap(),
        &dcae::burn::tensor::Device::flex(),
        Precision::F32,
    )
    .unwrap();
    assert_eq!(m.config, dcae::DcAeConfig::default_small());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Backpropagation through the whole autoencoder matches PyTorch: the gradient of the phase-1
/// L1 loss for every parameter of the `f32c32-sana` fixture model (ResBlocks, EfficientViT
/// linear attention, both residual shortcuts) against diffusers' autograd
/// (`tests/tools/make_grad_reference.py`).
#[test]
fn gradients_match_pytorch() {
    use dcae::burn::tensor::Tensor;
    use dcae::train::optim::gradients;

    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/dcae/f32c32-sana-96x128-b2");
    let reference = tensors(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/grad_f32c32_sana_l1.safetensors"),
    );
    let device = dcae::Backend::Cpu.device().unwrap().autodiff();
    let ae = DcAe::load(&fixture, &device, Precision::F32).unwrap();
    let names = ae.names.iter().cloned().collect();
    let input = TensorFile::open(&fixture.join("input.safetensors"))
        .unwrap()
        .tensor("image")
        .unwrap();
    let x = Tensor::<4>::from_data(
        dcae::burn::tensor::TensorData::new(input.data.clone(), input.shape.clone()),
        &device,
    );
    let z = ae.model.encoder.forward(x.clone(), &mut dcae::Trace::off());
    let y = ae.model.decoder.forward(z, &mut dcae::Trace::off());
    let loss = (y - x).abs().mean();
    let loss_val: f32 = loss.clone().into_scalar();
    assert!(
        (loss_val - reference["loss"][0]).abs() < 1e-5,
        "loss {loss_val}"
    );
    let grads = gradients(&ae.model, &names, &loss.backward());
    // Our attention keeps q, k and v as one fused `qkv` projection (rows q, then k, then v).
    let mut want_by_key: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for (key, g) in &reference {
        let Some(key) = key.strip_prefix("grad.") else {
            continue;
        };
        if let Some(stem) = key.strip_suffix(".to_q.weight") {
            let part = |r: &str| reference[&format!("grad.{stem}.{r}.weight")].clone();
            let fused = [part("to_q"), part("to_k"), part("to_v")].concat();
            want_by_key.insert(format!("{stem}.qkv.weight"), fused);
        } else if !key.ends_with(".to_k.weight") && !key.ends_with(".to_v.weight") {
            want_by_key.insert(key.to_string(), g.clone());
        }
    }
    let (mut checked, mut worst) = (0, 0f32);
    for (key, want) in &want_by_key {
        let got: Vec<f32> = grads
            .get(key)
            .unwrap_or_else(|| panic!("no gradient for {key}"))
            .clone()
            .into_data()
            .try_to_vec()
            .unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let err = max_diff(&got, want);
        assert!(
            err <= 1e-3 * scale + 1e-7,
            "{key}: max error {err:e}, max |grad| {scale:e}"
        );
        worst = worst.max(err / scale);
        checked += 1;
    }
    println!("{checked} gradients, worst max|err| / max|grad| = {worst:e}");
    assert_eq!(
        checked,
        grads.len(),
        "parameters with a gradient but no reference"
    );
    assert!(checked > 300, "only {checked} gradients compared");
}

/// A training image that cannot be decoded is skipped (its crop taken from the next image),
/// reported once and counted in run.json; `fail_on_bad_image` makes it fatal instead.
#[test]
fn corrupt_training_images_are_skipped_and_reported() {
    let dir = tmp("badimg");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let good = std::fs::read_dir(shared().join("train/sun_hays80"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .unwrap();
    std::fs::copy(
        &good,
        data.join(format!("a.{}", good.extension().unwrap().to_string_lossy())),
    )
    .unwrap();
    for i in 0..5 {
        std::fs::write(
            data.join(format!("broken{i}.jpg")),
            b"\xff\xd8\xff not a jpeg",
        )
        .unwrap();
    }
    let p = run_file(&dir, "[1]", [2, 0, 0], "");
    let t = std::fs::read_to_string(&p).unwrap();
    let train_line = format!(
        "train = \"{}\"",
        shared().join("train/sun_hays80").display()
    );
    assert!(t.contains(&train_line));
    let t = t.replace(&train_line, &format!("train = \"{}\"", data.display()));
    std::fs::write(&p, &t).unwrap();
    let (cfg, text) = TrainConfig::from_file(&p).unwrap();
    let mut bad = Vec::new();
    let out = train(&cfg, &text, false, &Cancel::new(), &mut |e| {
        if let Event::BadImage { path, error } = e {
            assert!(!error.is_empty());
            bad.push(path);
        }
    })
    .unwrap();
    assert!(out.exported.is_some());
    assert!(!bad.is_empty(), "no broken image was drawn");
    let mut unique = bad.clone();
    unique.dedup();
    assert_eq!(unique.len(), bad.len(), "a bad image was reported twice");
    assert!(bad.iter().all(|p| p.to_string_lossy().contains("broken")));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.out_dir.join("run.json")).unwrap())
            .unwrap();
    let skipped = run["sessions"][0]["skipped_images"].as_array().unwrap();
    assert_eq!(skipped.len(), bad.len());

    // Fatal when the run file asks.
    let t = t
        .replace("workers = 2", "workers = 2\nfail_on_bad_image = true")
        .replace(
            &format!("out_dir = \"{}\"", dir.join("run").display()),
            &format!("out_dir = \"{}\"", dir.join("run2").display()),
        );
    std::fs::write(&p, &t).unwrap();
    let (cfg, text) = TrainConfig::from_file(&p).unwrap();
    assert!(cfg.data.fail_on_bad_image);
    let e = train(&cfg, &text, false, &Cancel::new(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `init_match = "grow"`: the tiny f32c32 fixture model grown by one stage. Every tensor of the
/// smaller model lands at its place (the deepest decoder stage one index up), the bridge fit
/// lowers its error, and nothing outside the bridge moves.
#[test]
fn grow_fits_the_new_stage_to_the_smaller_model() {
    use dcae::train::grow::{GrowProgress, in_bridge, source_key};
    let dir = tmp("grow");
    std::fs::create_dir_all(&dir).unwrap();
    let small = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/dcae/f32c32-sana-96x128-b2");
    // The fixture's architecture plus a stage of 64 channels; latent 8 -> 32 channels.
    let big = r#"{"attention_head_dim": 8, "decoder_act_fns": "silu",
        "decoder_block_out_channels": [4, 8, 16, 16, 32, 32, 64],
        "decoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock",
            "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"],
        "decoder_conv_act_fn": "relu", "decoder_in_shortcut": true,
        "decoder_layers_per_block": [3, 3, 3, 3, 3, 3, 1], "decoder_norm_types": "rms_norm",
        "decoder_qkv_multiscales": [[], [], [], [5], [5], [5], [5]],
        "downsample_block_type": "conv",
        "encoder_block_out_channels": [4, 8, 16, 16, 32, 32, 64],
        "encoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock",
            "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"],
        "encoder_layers_per_block": [2, 2, 2, 3, 3, 3, 1], "encoder_out_shortcut": true,
        "encoder_qkv_multiscales": [[], [], [], [5], [5], [5], [5]],
        "in_channels": 3, "latent_channels": 32, "upsample_block_type": "interpolate"}"#;
    std::fs::write(dir.join("big.json"), big).unwrap();
    let text = format!(
        r#"
out_dir = "{out}"
seed = 5
backend = "cpu"
[model]
config = "big.json"
init = "{small}"
init_match = "grow"
zero_init_residual = true
[grow]
steps = 300
lr = 3e-3
lr_end = 3e-4
batch_size = 4
crops = 16
resolution = 128
[data]
train = "{train}"
workers = 1
[schedule]
phases = [1]
checkpoint_every = 1
log_every = 1
[phase1]
steps = 1
resolution = 64
batch_size = 1
lr = 1e-3
weight_decay = 0.0
perceptual_weight = 0.0
trainable = ["decoder.conv_out"]
"#,
        out = dir.join("run").display(),
        small = small.display(),
        train = shared().join("train/sun_hays80").display(),
    );
    let run = dir.join("run.toml");
    std::fs::write(&run, &text).unwrap();
    let (cfg, text) = TrainConfig::from_file(&run).unwrap();
    let (mut fit, mut grown, mut features, mut ckpts) = (Vec::new(), None, 0, Vec::new());
    train(&cfg, &text, false, &Cancel::new(), &mut |e| match e {
        Event::Grow(GrowProgress::Step { loss, .. }) => fit.push(loss),
        Event::Checkpoint { step, .. } => ckpts.push(step),
        Event::Grow(GrowProgress::Features { done, .. }) => features = done,
        Event::Grown(r) => grown = Some(r),
        _ => {}
    })
    .expect("grow run");
    let r = grown.expect("the fit reports");
    assert_eq!(features, 16);
    // The grown weights are checkpointed before the first step (a resume keeps the fit).
    assert_eq!(ckpts, [0, 1]);
    assert_eq!(fit.len(), 3, "{fit:?}");
    assert!(fit.iter().all(|l| l.is_finite()), "{fit:?}");
    assert!(
        r.last_loss < 0.7 * r.first_loss,
        "the fit does not learn: {fit:?}"
    );

    let l = 5;
    let before = tensors(&small.join("model.safetensors"));
    let after = tensors(&dir.join("run/model/diffusion_pytorch_model.safetensors"));
    let (mut kept, mut fitted) = (0, 0);
    for (k, v) in &after {
        if k.starts_with("decoder.conv_out") {
            continue; // phase 1 trains it
        }
        let src = source_key(l, k).and_then(|s| before.get(&s));
        if in_bridge(l, k) {
            if src.is_some_and(|s| s.len() == v.len() && max_diff(s, v) > 0.0) {
                fitted += 1;
            }
        } else {
            let s = src.unwrap_or_else(|| panic!("{k}: not from the smaller model"));
            assert_eq!(max_diff(s, v), 0.0, "{k} moved outside the bridge");
            kept += 1;
        }
    }
    assert!(kept > 50 && fitted > 5, "kept {kept}, fitted {fitted}");

    // The fit keeps every crop's features in memory: a count that cannot fit is refused
    // after the first batch, not found out by the allocator.
    let huge = TrainConfig {
        out_dir: dir.join("huge"),
        grow: dcae::train::config::GrowSection {
            crops: 1_000_000,
            resolution: 1024,
            ..cfg.grow.clone()
        },
        ..cfg.clone()
    };
    let e = train(&huge, &text, false, &Cancel::new(), &mut |_| {})
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("the features of 1000000 crops"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
