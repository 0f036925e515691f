//! The Generate tab's hub section against the local hub stand-in (the real hub is unreachable
//! here): a class-conditional checkpoint in the official single-file layout shows its size
//! before anything is fetched, downloads into the Hugging Face cache, loads, samples, and then
//! reads as "in the cache". One test per binary: it sets env vars.

#[path = "../../tests/hub_server.rs"]
mod hub_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dcae::diffusion::class_cond::DiffusionModel;
use dcae::io::tensors::{HostTensor, TensorFile, write_tensors};
use dcae_app::settings::{BackendChoice, Tab};
use dcae_app::{Startup, Workbench};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use hub_server::Served;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// A random UViT on the fixture DC-AE, its weights under `diffusion_model.` as the official
/// single files hold them: `config.json` and `model.safetensors`.
fn checkpoint(dir: &Path) -> HashMap<String, Served> {
    let cfg = serde_json::json!({
        "kind": "uvit",
        "model_config": {"input_size": 4, "patch_size": 1, "in_channels": 8,
                          "hidden_size": 32, "depth": 2, "num_heads": 2},
        "scaling_factor": 0.5,
        "autoencoder": shared().join("fixtures/dcae/f32c32-sana-96x128-b2").to_string_lossy(),
    });
    DiffusionModel::write_random_folder(&cfg.to_string(), 3, dir).expect("random UViT");
    let f = TensorFile::open(&dir.join("model.safetensors")).unwrap();
    let tensors: Vec<(String, HostTensor)> = f
        .keys()
        .into_iter()
        .map(|k| (format!("diffusion_model.{k}"), f.tensor(&k).unwrap()))
        .collect();
    let refs: Vec<(&str, &HostTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let out = dir.join("prefixed.safetensors");
    write_tensors(&out, &refs, None).unwrap();
    HashMap::from([
        (
            "config.json".to_string(),
            Served {
                bytes: std::fs::read(dir.join("config.json")).unwrap(),
                lfs: false,
            },
        ),
        (
            "model.safetensors".to_string(),
            Served {
                bytes: std::fs::read(&out).unwrap(),
                lfs: true,
            },
        ),
    ])
}

fn wait_for(h: &mut Harness<'static, Workbench>, what: &str, done: impl Fn(&Workbench) -> bool) {
    let t0 = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

fn errors(w: &Workbench) -> Vec<String> {
    w.messages
        .iter()
        .filter(|m| m.error)
        .map(|m| m.text.clone())
        .collect()
}

#[test]
fn hub_section_sizes_downloads_loads_and_samples() {
    let root = std::env::temp_dir().join(format!("dcae-app-gen-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let files = checkpoint(&root.join("src"));
    let bytes: u64 = files.values().map(|s| s.bytes.len() as u64).sum();
    let server = hub_server::start(files);
    let cache = root.join("hub");
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &server.endpoint);
        std::env::set_var("HF_HUB_CACHE", &cache);
        std::env::remove_var("HF_TOKEN");
    }
    let startup = Startup {
        no_default_model: true,
        no_samples: true,
        backend: Some(BackendChoice::Cpu),
        fresh_settings: true,
        hide_timings: true,
        gallery: Some(root.join("gallery")),
        tab: Some(Tab::Generate),
        ..Startup::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 900.0))
        .wgpu()
        .build_eframe(move |cc| Workbench::new(cc, startup).expect("app starts"));
    h.run_steps(2);
    // Closed, the section asks nothing of the network.
    assert_eq!(server.requests(), 0);
    h.state_mut().gen_tab.hub.custom = hub_server::REPO.into();
    h.get_by_label("From Hugging Face").click();
    wait_for(&mut h, "the size", |w| {
        matches!(
            w.gen_tab.hub.plans.get(hub_server::REPO),
            Some(dcae_app::app::gen_tab::HubPlan::Remote(_))
        )
    });
    let want = format!(
        "model, 2 files: {} to download",
        dcae_app::app::gen_tab::human_bytes(bytes)
    );
    h.get_by_label_contains(&want);
    h.snapshot("generate-hub");
    // Sizing fetched no weights.
    assert!(
        server.log().iter().all(|l| l.starts_with("HEAD ")),
        "{:?}",
        server.log()
    );
    assert!(!cache.join("models--test-org--dcae-tiny-diffusers").exists());

    h.get_by_role_and_label(egui::accesskit::Role::Button, "Download")
        .click();
    wait_for(&mut h, "download and load", |w| {
        !w.downloading() && !w.busy() && w.gen_tab.models.iter().any(|m| m.info().is_some())
    });
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));
    let dir = h.state().gen_tab.models[0].dir.clone();
    assert!(
        dir.starts_with(cache.join("models--test-org--dcae-tiny-diffusers/snapshots")),
        "{}",
        dir.display()
    );
    h.get_by_label_contains("class-conditional uvit");
    h.get_by_label_contains("latent 8x4x4");

    // It samples like a local folder.
    h.state_mut().gen_tab.form.steps = 2;
    h.state_mut().start_generation();
    wait_for(&mut h, "generation", |w| {
        !w.busy() && w.gen_tab.gallery.len() == 1
    });
    assert!(errors(h.state()).is_empty(), "{:?}", errors(h.state()));

    // Checked again, it is in the cache, with its size on disk.
    h.state_mut().gen_tab.hub.plans.clear();
    wait_for(&mut h, "the cache check", |w| {
        matches!(
            w.gen_tab.hub.plans.get(hub_server::REPO),
            Some(dcae_app::app::gen_tab::HubPlan::Cached(..))
        )
    });
    h.get_by_label_contains(&format!(
        "in the cache: {} on disk",
        dcae_app::app::gen_tab::human_bytes(bytes)
    ));
    let _ = std::fs::remove_dir_all(&root);
}
