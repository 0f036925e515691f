//! The embedded default models (`assets/models/<name>`) load in the CLI and `dcae eval` on the
//! validation photos prints their tables; and the bar they have to clear: ahead of the bicubic
//! baseline that holds the same number of values.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mean_after(text: &str, prefix: &str, key: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with `{prefix}` in:\n{text}"));
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{line}")) + key.len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    num.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The shipped defaults, by folder name under `assets/models/` (the app's `Embedded::ALL`).
const MODELS: [&str; 3] = ["f32c32", "f64c128", "f128c512"];

/// `dcae eval --max-side 512` of a shipped default on the validation photos: its stdout.
fn eval_default(name: &str) -> String {
    let val = root().join("../shared/data/val");
    assert!(
        val.is_dir(),
        "{} is missing (the shared data folder)",
        val.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dcae"))
        .args(["eval", "--backend", "cpu", "--max-side", "512", "--model"])
        .arg(root().join("assets/models").join(name))
        .arg(&val)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Each shipped default loads, `dcae eval` prints a row per validation photo and the means,
/// and the model is ahead of bicubic with the same number of values: the bar of the training
/// issue (README, Training: Measured).
#[test]
fn default_models_load_and_beat_bicubic_on_the_validation_photos() {
    let photos = std::fs::read_dir(root().join("../shared/data/val"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_lowercase();
            n.ends_with(".png") || n.ends_with(".jpg")
        })
        .count();
    for name in MODELS {
        let text = eval_default(name);
        let rows = text
            .lines()
            .filter(|l| l.contains(".png") || l.contains(".jpg"))
            .count();
        assert_eq!(
            rows, photos,
            "{name}: one row per validation photo:\n{text}"
        );
        let last = text.lines().last().unwrap_or_default();
        assert!(last.starts_with("mean psnr="), "{name}: {text}");
        let model = mean_after(&text, "mean psnr=", "mean psnr=");
        let bicubic = mean_after(&text, "bicubic baseline", "mean psnr=");
        let ssim = mean_after(&text, "mean psnr=", "ssim=");
        let bicubic_ssim = mean_after(&text, "bicubic baseline", "ssim=");
        println!(
            "{name}: {model:.2} dB / SSIM {ssim:.4}, bicubic {bicubic:.2} dB / SSIM {bicubic_ssim:.4}"
        );
        assert!((0.0..=1.0).contains(&ssim) && (0.0..=1.0).contains(&bicubic_ssim));
        assert!(
            model > bicubic,
            "{name}: {model:.2} dB does not beat bicubic {bicubic:.2} dB:\n{text}"
        );
    }
}
