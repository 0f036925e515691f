//! Downloading an official-style checkpoint from the UI's code path, against the local hub
//! stand-in of the conformance tests (the real hub is unreachable here): the model lands in the
//! HF cache, loads, and reconstructs the open image. One test per binary: it sets env vars.

#[path = "../../tests/hub_server.rs"]
mod hub_server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dcae_app::settings::BackendChoice;
use dcae_app::{Startup, Workbench};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

#[test]
fn download_adds_a_model_that_reconstructs() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/dcae/f32c32-sana-96x128-b2");
    let server = hub_server::start(hub_server::fixture_files(&fixture));
    let cache = std::env::temp_dir().join(format!("dcae-app-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &server.endpoint);
        std::env::set_var("HF_HUB_CACHE", &cache);
        std::env::remove_var("HF_TOKEN");
    }
    let startup = Startup {
        no_default_model: true,
        backend: Some(BackendChoice::Cpu),
        fresh_settings: true,
        ..Startup::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_eframe(move |cc| Workbench::new(cc, startup).expect("app starts"));
    h.state_mut().start_download(hub_server::REPO.to_string());
    let t0 = Instant::now();
    loop {
        h.step();
        if !h.state().downloading() && !h.state().busy() && !h.state().model_ids().is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "download did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(3);
    let errors: Vec<&str> = h
        .state()
        .messages
        .iter()
        .filter(|m| m.error)
        .map(|m| m.text.as_str())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let id = h.state().model_ids()[0];
    let line = h
        .state()
        .metrics_text(id)
        .expect("reconstruction of the sample");
    assert!(line.contains("latent 8x16x16 = 2048 values"), "{line}");
    // Named by repo (its folder is the commit's snapshot in the standard cache layout).
    assert!(h.query_all_by_label_contains(hub_server::REPO).count() >= 1);
    assert!(
        cache
            .join("models--test-org--dcae-tiny-diffusers/snapshots")
            .is_dir()
    );
    assert!(server.requests() > 0);
    let _ = std::fs::remove_dir_all(&cache);
}
