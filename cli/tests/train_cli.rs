//! `dcae train` (Ctrl-C, kill -9 and --resume through the real binary) and `dcae eval`
//! (table, bicubic baseline, last line) end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcae-cli-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_file(dir: &Path) -> PathBuf {
    let text = format!(
        r#"
out_dir = "out"
seed = 1
backend = "cpu"
[model]
preset = "default-small"
[data]
train = "{train}"
workers = 1
[schedule]
phases = [1, 2]
checkpoint_every = 1
log_every = 1
[phase1]
steps = 40
resolution = 64
batch_size = 1
lr = 1e-3
weight_decay = 0.0
perceptual_weight = 0.0
trainable = ["all"]
[phase2]
steps = 2
resolution = 64
batch_size = 1
lr = 1e-3
weight_decay = 0.0
perceptual_weight = 0.0
trainable = ["encoder.conv_out", "decoder.conv_in"]
"#,
        train = shared().join("data/train/bsds500/val").display()
    );
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn wait_for_checkpoint(dir: &Path, child: &mut std::process::Child) {
    let ckpt = dir.join("out/checkpoint.safetensors");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "dcae train exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn logged_steps(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("out/log.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn sigkill_and_ctrl_c_then_resume_finish_the_run() {
    let dir = tmp("resume");
    let cfg = run_file(&dir);
    let bin = env!("CARGO_BIN_EXE_dcae");
    let spawn = |resume: bool| {
        let mut c = Command::new(bin);
        c.args(["train", "--config", cfg.to_str().unwrap()]);
        if resume {
            c.arg("--resume");
        }
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // kill -9 mid-run: the last checkpoint is intact (atomic writes).
    let mut child = spawn(false);
    wait_for_checkpoint(&dir, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();

    // Resume from what kill -9 left, then Ctrl-C (SIGINT) once it has made progress: it
    // finishes the step, checkpoints and exits 130 with a hint.
    let killed_at = logged_steps(&dir).len();
    let mut child = spawn(true);
    let t0 = Instant::now();
    while logged_steps(&dir).len() < killed_at + 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "resumed run makes no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "resumed run exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("--resume"), "{stdout}");
    let stopped_at = *logged_steps(&dir).last().unwrap();
    assert!(stopped_at < 42, "stopped at {stopped_at}");

    let out = spawn(true).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("exported"), "{stdout}");
    let steps = logged_steps(&dir);
    let after: Vec<u64> = steps.iter().copied().filter(|&s| s > stopped_at).collect();
    assert_eq!(
        after,
        ((stopped_at + 1)..=42).collect::<Vec<_>>(),
        "{steps:?}"
    );
    assert!(dir.join("out/model/config.json").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_prints_a_table_with_baseline_and_the_mean_last() {
    let model = shared().join("fixtures/dcae/f32c32-in-64x64-b1");
    let out = Command::new(env!("CARGO_BIN_EXE_dcae"))
        .args(["eval", "--model", model.to_str().unwrap()])
        .arg(shared().join("data/val"))
        .args(["--max-side", "128"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let n_images = std::fs::read_dir(shared().join("data/val"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            matches!(p.extension().and_then(|x| x.to_str()), Some("png" | "jpg"))
        })
        .count();
    assert_eq!(lines.len(), 1 + n_images + 2, "{stdout}");
    assert!(lines[0].contains("psnr") && lines[0].contains("bicubic"));
    let last = lines.last().unwrap();
    assert!(last.starts_with("mean psnr="), "{last}");
    let psnr: f64 = last["mean psnr=".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ssim: f64 = last.split("ssim=").nth(1).unwrap().parse().unwrap();
    assert!(psnr.is_finite() && (0.0..=1.0).contains(&ssim.abs()));
}

#[test]
fn eval_and_train_bad_inputs_fail_cleanly() {
    let bin = env!("CARGO_BIN_EXE_dcae");
    let dir = tmp("bad");
    let o = Command::new(bin)
        .args(["train", "--config"])
        .arg(dir.join("nope.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("nope.toml") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::write(dir.join("bad.toml"), "out_dir = 3").unwrap();
    let o = Command::new(bin)
        .args(["train", "--config"])
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("invalid config") && !err.contains("panicked"),
        "{err}"
    );
    let o = Command::new(bin)
        .args(["eval", "--model"])
        .arg(dir.join("missing-model"))
        .arg(shared().join("data/val"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("missing-model") && !err.contains("panicked"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
