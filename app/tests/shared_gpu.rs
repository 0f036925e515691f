//! The models' wgpu backend on the window's own device (`dcae_app::gpu`): a reconstruction on
//! the shared device gives the CPU backend's pixels. Without a GPU the window's device is
//! lavapipe, which the app shares only when told to (`DCAE_SHARE_WGPU=1`; see `gpu.rs` for
//! why), so this binary sets that first and holds this one test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dcae_app::app::SaveKind;
use dcae_app::settings::BackendChoice;
use dcae_app::{Startup, Workbench};
use egui_kittest::Harness;

fn reconstruct(backend: BackendChoice, image: &Path, out: &Path) {
    let startup = Startup {
        images: vec![image.to_path_buf()],
        models: vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/dcae/f32c32-sana-96x128-b2"),
        ],
        no_default_model: true,
        no_samples: true,
        backend: Some(backend),
        fresh_settings: true,
        hide_timings: true,
        ..Startup::default()
    };
    let mut h: Harness<'static, Workbench> = Harness::builder()
        .with_size(egui::vec2(1000.0, 700.0))
        .with_max_steps(1000)
        .wgpu_setup(dcae_app::gpu::window_setup())
        .build_eframe(move |cc| Workbench::new(cc, startup).expect("app starts"));
    let t0 = Instant::now();
    let mut idle = 0;
    // Idle twice in a row: the image is decoded on its own thread before the model job starts.
    while idle < 2 {
        h.step();
        idle = if h.state().busy() { 0 } else { idle + 1 };
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "reconstruction did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let errors: Vec<String> = h
        .state()
        .messages
        .iter()
        .filter(|m| m.error)
        .map(|m| m.text.clone())
        .collect();
    assert!(errors.is_empty(), "{backend:?}: {errors:?}");
    h.state_mut()
        .export(SaveKind::Reconstruction, out.to_path_buf())
        .expect("export");
}

#[test]
fn models_on_the_windows_wgpu_device_match_the_cpu() {
    // SAFETY: set before any other thread of this process exists (one test in this binary).
    unsafe { std::env::set_var("DCAE_SHARE_WGPU", "1") };
    let dir = std::env::temp_dir().join(format!("dcae-app-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/val/skimage_astronaut.png");
    let img = image::open(&src).expect("astronaut").to_rgb8();
    let crop = image::imageops::crop_imm(&img, 180, 60, 96, 64).to_image();
    let input = dir.join("crop.png");
    crop.save(&input).expect("write crop");

    let (gpu, cpu) = (dir.join("wgpu.png"), dir.join("cpu.png"));
    reconstruct(BackendChoice::Wgpu, &input, &gpu);
    assert!(
        dcae::backend::wgpu_is_shared(),
        "the wgpu backend did not run on the window's device"
    );
    reconstruct(BackendChoice::Cpu, &input, &cpu);
    let (a, b) = (
        image::open(&gpu).expect("wgpu result").to_rgb8(),
        image::open(&cpu).expect("cpu result").to_rgb8(),
    );
    assert_eq!(a.dimensions(), b.dimensions());
    // The two backends agree to ~1e-4 of the value range (tests/dcae_fixtures.rs), far below
    // one 8-bit level: at most a rounding flip per pixel.
    let worst = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    assert!(
        worst <= 1,
        "wgpu and cpu reconstructions differ by {worst} levels"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
