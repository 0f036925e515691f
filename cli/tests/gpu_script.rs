//! `tools/gpu/run.sh`, the script a borrowed GPU machine runs, on its CPU fallback (no NVIDIA
//! GPU here): conformance in f32 and bf16, a time-limited training run that stops at its
//! checkpoint, the export, and the summary line with steps/s. A second call resumes the run.

mod common;

use common::{s, shared, tmp};

#[test]
fn gpu_script_runs_its_cpu_fallback_end_to_end() {
    let dir = tmp("gpu-script", "t");
    let cfg = dir.join("tiny.toml");
    let data = shared().join("data");
    std::fs::write(
        &cfg,
        format!(
            r#"out_dir = "replaced by the script"
seed = 0
backend = "cpu"
[model]
preset = "default-small"
zero_init_residual = true
[data]
train = "{}"
val = "{}"
val_count = 1
val_size = 64
workers = 1
[schedule]
phases = [1]
checkpoint_every = 10
val_every = 20
log_every = 5
[phase1]
steps = 100000
resolution = 64
batch_size = 2
lr = 1e-3
warmup = 5
weight_decay = 0.01
perceptual_weight = 0.0
trainable = ["all"]
"#,
            data.join("train").display(),
            data.join("val").display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let case = common::fixture("f32c32-sana-96x128-b2");
    let fixtures = case.parent().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/gpu/run.sh");
    let run = || {
        std::process::Command::new("bash")
            .arg(&script)
            .arg(&out)
            .args(["--minutes", "0.2", "--bin", env!("CARGO_BIN_EXE_dcae")])
            .args(["--config", s(&cfg)])
            .args(["--fixtures", s(fixtures)])
            .env_remove("CUDA_PATH")
            .output()
            .unwrap()
    };
    let o = run();
    let log = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(log.contains("CPU fallback") || log.contains("cpu"), "{log}");
    for p in ["f32", "bf16"] {
        let c = std::fs::read_to_string(out.join(format!("conformance-{p}.txt"))).unwrap();
        assert!(c.contains("cases pass on cpu/"), "{c}");
    }
    let run_dir = out.join("runs/tiny");
    for f in [
        "checkpoint.safetensors",
        "log.csv",
        "val.csv",
        "run.json",
        "model/config.json",
        "model/diffusion_pytorch_model.safetensors",
    ] {
        assert!(run_dir.join(f).is_file(), "missing {f}\n{log}");
    }
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.starts_with("tiny: ") && summary.contains(" steps/s on cpu/f32"),
        "{summary}"
    );
    let steps = |t: &str| -> u64 {
        t.split("now at step ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let first = steps(&summary);
    assert!(first > 0, "{summary}");
    // The next machine goes on from the checkpoint.
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        steps(&summary) > first,
        "resumed run did not advance: {summary}"
    );
    assert!(
        !dir.join(".gpu-tiny.toml").exists(),
        "the script left its run file copy behind"
    );
}
