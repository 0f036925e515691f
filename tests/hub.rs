//! `dcae::hub` against a local stand-in for the Hugging Face hub (`hub_server.rs`): the
//! standard cache layout, cache hits without requests, checksum failures, cancellation and
//! network errors. The real hub is not reachable from the sandbox.

mod hub_server;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use dcae::burn::tensor::{Tensor, TensorData};
use dcae::hub::{self, HubOptions, git_blob_sha1, sha256_hex};
use dcae::io::tensors::read_tensor;
use dcae::{Backend, Cancel, DcAe, Error, Precision};
use dcae_conformance::fixture_root;
use hub_server::{COMMIT, REPO, WEIGHTS};

fn fixture_model() -> PathBuf {
    fixture_root("DCAE_FIXTURES", "dcae").join("f32c32-sana-96x128-b2")
}

fn temp_cache(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcae-hub-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(endpoint: &str, cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: endpoint.to_string(),
        cache_dir: cache.to_path_buf(),
        revision: "main".into(),
        token: None,
    }
}

/// A stand-in serving the fixture model, an empty cache and options pointing at both.
fn setup(name: &str) -> (hub_server::StandIn, PathBuf, HubOptions) {
    let server = hub_server::start(hub_server::fixture_files(&fixture_model()));
    let cache = temp_cache(name);
    let opts = options(&server.endpoint, &cache);
    (server, cache, opts)
}

fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// Every file (not folder) under `dir`, relative, sorted; empty if `dir` does not exist.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// One progress report of a download, as the sink heard it.
#[derive(Debug, Clone, PartialEq)]
struct DownloadProgress {
    file: String,
    done_bytes: u64,
    total_bytes: u64,
}

fn download(
    repo: &str,
    opts: &HubOptions,
    mut on_progress: impl FnMut(&DownloadProgress, &Cancel),
) -> (dcae::Result<PathBuf>, Vec<DownloadProgress>) {
    let cancel = Cancel::new();
    let mut seen = Vec::new();
    let r = hub::download_model(
        repo,
        opts,
        &mut |file: &str, done_bytes: u64, total_bytes: u64| {
            let p = DownloadProgress {
                file: file.to_string(),
                done_bytes,
                total_bytes,
            };
            on_progress(&p, &cancel);
            seen.push(p);
        },
        &cancel,
    );
    (r, seen)
}

fn encode_input(model: &DcAe) -> Vec<f32> {
    let x = read_tensor(&fixture_model().join("input.safetensors"), "image").unwrap();
    let s = &x.shape;
    let t = Tensor::<4>::from_data(
        TensorData::new(x.data.clone(), [s[0], s[1], s[2], s[3]]),
        &model.device,
    );
    model
        .encode(t)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn download_gives_the_hf_cache_layout_and_a_loadable_model() {
    let (server, cache, mut opts) = setup("layout");
    opts.token = Some("hf_test_token".into());
    let (r, seen) = download(REPO, &opts, |_, _| {});
    let snapshot = r.unwrap_or_else(|e| panic!("{e}"));

    let repo = repo_dir(&cache, REPO);
    assert_eq!(snapshot, repo.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let config = std::fs::read(fixture_model().join("config.json")).unwrap();
    let weights = std::fs::read(fixture_model().join("model.safetensors")).unwrap();
    let (cfg_etag, w_etag) = (git_blob_sha1(&config), sha256_hex(&weights));
    let mut expected = vec![
        format!("blobs/{cfg_etag}"),
        format!("blobs/{w_etag}"),
        "refs/main".to_string(),
        format!("snapshots/{COMMIT}/config.json"),
        format!("snapshots/{COMMIT}/{WEIGHTS}"),
    ];
    expected.sort();
    assert_eq!(files_under(&repo), expected);
    // Snapshot entries are relative symlinks into blobs/, as huggingface_hub makes them.
    #[cfg(unix)]
    for (file, etag) in [("config.json", &cfg_etag), (WEIGHTS, &w_etag)] {
        let link = std::fs::read_link(snapshot.join(file)).unwrap();
        assert_eq!(link, Path::new("../../blobs").join(etag), "{file}");
    }
    assert_eq!(std::fs::read(snapshot.join(WEIGHTS)).unwrap(), weights);
    assert_eq!(std::fs::read(snapshot.join("config.json")).unwrap(), config);

    // Progress: from 0 to the full size for each file, the weights in several chunks.
    let w: Vec<_> = seen.iter().filter(|p| p.file == WEIGHTS).collect();
    assert!(w.len() > 3, "{} progress reports", w.len());
    assert_eq!(w[0].done_bytes, 0);
    assert!(w.iter().all(|p| p.total_bytes == weights.len() as u64));
    assert_eq!(w.last().unwrap().done_bytes, weights.len() as u64);

    // The weights after the config are requested at the config's commit, not the branch.
    let log = server.log();
    assert!(
        log.contains(&format!("HEAD /{REPO}/resolve/main/config.json")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("GET /{REPO}/resolve/{COMMIT}/{WEIGHTS}")),
        "{log:?}"
    );
    assert!(log.contains(&format!("GET /blob/{w_etag}")), "{log:?}");
    // The token goes to the hub's resolve URLs.
    let auth = server.auth.lock().unwrap().clone();
    assert!(auth.iter().all(|a| a == "Bearer hf_test_token"), "{auth:?}");

    // The downloaded folder loads and holds the fixture's weights.
    let device = Backend::Cpu.device().unwrap();
    let got = DcAe::load(&snapshot, &device, Precision::F32).unwrap();
    let want = DcAe::load(&fixture_model(), &device, Precision::F32).unwrap();
    assert_eq!(got.num_params(), want.num_params());
    assert_eq!(encode_input(&got), encode_input(&want));

    // A second call is answered from the cache: no request at all.
    let before = server.requests();
    let (again, seen) = download(REPO, &opts, |_, _| {});
    assert_eq!(again.unwrap(), snapshot);
    assert_eq!(server.requests(), before, "{:?}", server.log());
    assert!(seen.is_empty());
    assert_eq!(
        hub::cached_model(REPO, &opts).unwrap(),
        Some(snapshot.clone())
    );
    // A commit hash as revision finds its snapshot directly (no refs/<commit> needed).
    let mut pinned = opts.clone();
    pinned.revision = COMMIT.into();
    assert!(!repo.join("refs").join(COMMIT).exists());
    assert_eq!(download(REPO, &pinned, |_, _| {}).0.unwrap(), snapshot);
    assert_eq!(server.requests(), before);
    // Short official names resolve to their repo before the lookup (none is cached here).
    assert_eq!(
        hub::cached_model("dc-ae-f32c32-sana-1.1", &opts).unwrap(),
        None
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn corrupted_bytes_are_a_checksum_error_and_cache_nothing() {
    let (server, cache, opts) = setup("corrupt");
    server.behaviour.corrupt_lfs.store(true, Ordering::SeqCst);
    let (r, _) = download(REPO, &opts, |_, _| {});
    let weights = std::fs::read(fixture_model().join("model.safetensors")).unwrap();
    match r {
        Err(Error::Checksum {
            file,
            expected,
            found,
        }) => {
            assert_eq!(file, format!("{REPO}/{WEIGHTS}"));
            assert_eq!(expected, sha256_hex(&weights));
            assert_ne!(found, expected);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // Nothing in blobs/ (not even the verified config), snapshots/ or refs/.
    assert_eq!(files_under(&repo_dir(&cache, REPO)), Vec::<String>::new());
    assert_eq!(hub::cached_model(REPO, &opts).unwrap(), None);

    // Once the bytes arrive intact, the same cache works.
    server.behaviour.corrupt_lfs.store(false, Ordering::SeqCst);
    let (r, _) = download(REPO, &opts, |_, _| {});
    assert!(r.unwrap().join(WEIGHTS).is_file());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn cancel_mid_file_leaves_no_partial_file() {
    let (server, cache, opts) = setup("cancel");
    let (r, seen) = download(REPO, &opts, |p, cancel| {
        if p.file == WEIGHTS && p.done_bytes > 0 {
            cancel.cancel();
        }
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    let last = seen.last().unwrap();
    assert!(
        last.done_bytes > 0 && last.done_bytes < last.total_bytes,
        "{last:?}"
    );
    assert_eq!(files_under(&repo_dir(&cache, REPO)), Vec::<String>::new());
    // A flag set before the call stops it before any request.
    let before = server.requests();
    let cancel = Cancel::new();
    cancel.cancel();
    let r = hub::download_model(REPO, &opts, &mut dcae::task::Silent, &cancel);
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert_eq!(server.requests(), before);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn unreachable_server_and_missing_repo_name_the_url() {
    let cache = temp_cache("errors");
    let dead = hub_server::dead_endpoint();
    let (r, _) = download(REPO, &options(&dead, &cache), |_, _| {});
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Download { .. }), "{e:?}");
    assert!(
        msg.contains(&format!("{dead}/{REPO}/resolve/main/config.json")),
        "{msg}"
    );
    assert!(msg.contains("cannot reach"), "{msg}");

    let server = hub_server::start(hub_server::fixture_files(&fixture_model()));
    let opts = options(&server.endpoint, &cache);
    let (r, _) = download("nobody/nothing", &opts, |_, _| {});
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "{}/nobody/nothing/resolve/main/config.json",
            server.endpoint
        )) && msg.contains("HTTP 404")
            && msg.contains("Repository not found"),
        "{msg}"
    );

    let mut bad_rev = opts.clone();
    bad_rev.revision = "v9".into();
    let (r, _) = download(REPO, &bad_rev, |_, _| {});
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("/resolve/v9/config.json") && msg.contains("Invalid rev id"),
        "{msg}"
    );

    // A repo without the weights file: 404 on both names.
    let mut files = hub_server::fixture_files(&fixture_model());
    files.remove(WEIGHTS);
    let server = hub_server::start(files);
    let (r, _) = download(REPO, &options(&server.endpoint, &cache), |_, _| {});
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("has no diffusion_pytorch_model.safetensors or model.safetensors"),
        "{msg}"
    );
    assert!(
        server
            .log()
            .contains(&format!("HEAD /{REPO}/resolve/{COMMIT}/model.safetensors")),
        "{:?}",
        server.log()
    );
    assert_eq!(files_under(&cache), Vec::<String>::new());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn renamed_repo_follows_the_relative_redirect() {
    let (server, cache, opts) = setup("renamed");
    let (r, _) = download("old-org/old-name", &opts, |_, _| {});
    let snapshot = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        snapshot,
        repo_dir(&cache, "old-org/old-name")
            .join("snapshots")
            .join(COMMIT)
    );
    assert!(snapshot.join(WEIGHTS).is_file());
    let log = server.log();
    assert!(
        log.contains(&"HEAD /old-org/old-name/resolve/main/config.json".to_string())
            && log.contains(&format!("HEAD /{REPO}/resolve/main/config.json")),
        "{log:?}"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A pipeline-style repo: a root json, a component config in a subfolder and a text encoder
/// sharded over two safetensors files behind an index json (the fixture weights split in two).
fn multi_file_repo(tag: &str) -> (std::collections::HashMap<String, hub_server::Served>, usize) {
    use dcae::io::tensors::{HostTensor, TensorFile, write_tensors};
    use hub_server::Served;
    let f = TensorFile::open(&fixture_model().join("model.safetensors")).unwrap();
    let keys = f.keys();
    let dir = temp_cache(&format!("shards-src-{tag}"));
    let mut map = serde_json::Map::new();
    let mut files = std::collections::HashMap::new();
    let halves = keys.chunks(keys.len().div_ceil(2));
    for (i, part) in halves.enumerate() {
        let name = format!("model-0000{}-of-00002.safetensors", i + 1);
        let tensors: Vec<(String, HostTensor)> = part
            .iter()
            .map(|k| (k.clone(), f.tensor(k).unwrap()))
            .collect();
        let refs: Vec<(&str, &HostTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let p = dir.join(&name);
        write_tensors(&p, &refs, None).unwrap();
        for k in part {
            map.insert(k.clone(), serde_json::Value::String(name.clone()));
        }
        let bytes = std::fs::read(&p).unwrap();
        files.insert(format!("text_encoder/{name}"), Served { bytes, lfs: true });
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    let small = |b: &str| Served {
        bytes: b.as_bytes().to_vec(),
        lfs: false,
    };
    files.insert(
        "text_encoder/model.safetensors.index.json".into(),
        small(&index.to_string()),
    );
    files.insert(
        "model_index.json".into(),
        small(r#"{"_class_name": "Test"}"#),
    );
    files.insert("transformer/config.json".into(), small(r#"{"a": 1}"#));
    let _ = std::fs::remove_dir_all(&dir);
    (files, keys.len())
}

#[test]
fn download_files_fetches_subfolders_and_follows_an_index() {
    let (files, n_keys) = multi_file_repo("ok");
    let server = hub_server::start(files);
    let cache = temp_cache("multi");
    let opts = options(&server.endpoint, &cache);
    let want = [
        "model_index.json",
        "transformer/config.json",
        "text_encoder/model.safetensors.index.json",
    ];
    let mut seen = Vec::new();
    let snapshot = hub::download_files(
        REPO,
        &opts,
        &want,
        &mut |f: &str, _: u64, _: u64| {
            if !seen.iter().any(|s: &String| s == f) {
                seen.push(f.to_string());
            }
        },
        &Cancel::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        snapshot,
        repo_dir(&cache, REPO).join("snapshots").join(COMMIT)
    );
    // The shards came with the index, into the index's subfolder.
    for shard in ["model-00001-of-00002", "model-00002-of-00002"] {
        let rel = format!("text_encoder/{shard}.safetensors");
        assert!(seen.contains(&rel), "{seen:?}");
        let p = snapshot.join(&rel);
        assert!(p.is_file(), "{}", p.display());
        // One `..` per folder between the link and the repo folder.
        #[cfg(unix)]
        assert!(
            std::fs::read_link(&p)
                .unwrap()
                .starts_with("../../../blobs/"),
            "{:?}",
            std::fs::read_link(&p)
        );
    }
    let store = dcae::weights::WeightStore::from_weights(
        &snapshot.join("text_encoder/model.safetensors.index.json"),
        Some(dcae::weights::KeyLayout::Diffusers),
    )
    .unwrap();
    assert_eq!(store.len(), n_keys);
    // Everything is pinned to the commit the first file came from.
    let log = server.log();
    assert!(
        log.contains(&format!("HEAD /{REPO}/resolve/main/model_index.json")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!(
            "HEAD /{REPO}/resolve/{COMMIT}/text_encoder/model-00002-of-00002.safetensors"
        )),
        "{log:?}"
    );
    // Cached: a second call makes no request.
    let before = server.requests();
    let again =
        hub::download_files(REPO, &opts, &want, &mut dcae::task::Silent, &Cancel::new()).unwrap();
    assert_eq!(again, snapshot);
    assert_eq!(server.requests(), before);
    assert_eq!(
        hub::cached_files(REPO, &opts, &want).unwrap(),
        Some(snapshot)
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn download_files_errors_name_the_file_and_cache_nothing() {
    let (mut files, _) = multi_file_repo("missing");
    files.remove("text_encoder/model-00002-of-00002.safetensors");
    let server = hub_server::start(files);
    let cache = temp_cache("multi-missing");
    let opts = options(&server.endpoint, &cache);
    let e = hub::download_files(
        REPO,
        &opts,
        &["text_encoder/model.safetensors.index.json"],
        &mut dcae::task::Silent,
        &Cancel::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
    assert_eq!(files_under(&repo_dir(&cache, REPO)), Vec::<String>::new());
    for bad in ["../escape.json", "/abs.json", "a//b.json"] {
        let e = hub::download_files(REPO, &opts, &[bad], &mut dcae::task::Silent, &Cancel::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a file path inside a repo"), "{bad}: {e}");
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A ref or a snapshot link that points outside the cache is not followed.
#[test]
fn hostile_refs_and_links_are_not_followed() {
    let (server, cache, opts) = setup("hostile");
    let snapshot = download(REPO, &opts, |_, _| {}).0.unwrap();
    let repo = repo_dir(&cache, REPO);
    std::fs::write(repo.join("refs/main"), "../../../..").unwrap();
    assert_eq!(hub::cached_model(REPO, &opts).unwrap(), None);
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    assert_eq!(
        hub::cached_model(REPO, &opts).unwrap(),
        Some(snapshot.clone())
    );
    #[cfg(unix)]
    {
        let outside = std::env::temp_dir().join(format!("dcae-outside-{}", std::process::id()));
        std::fs::write(&outside, "{}").unwrap();
        std::fs::remove_file(snapshot.join("config.json")).unwrap();
        std::os::unix::fs::symlink(&outside, snapshot.join("config.json")).unwrap();
        assert_eq!(hub::cached_model(REPO, &opts).unwrap(), None);
        let _ = std::fs::remove_file(&outside);
    }
    drop(server);
    std::fs::remove_dir_all(&cache).unwrap();
}

/// `download_model` also takes a class-conditional diffusion repo (one config naming a
/// registered model + one file of `diffusion_model.` weights), and refuses a config that is
/// neither a DC-AE nor a diffusion model.
#[test]
fn diffusion_single_files_download_and_other_configs_are_refused() {
    use dcae::io::tensors::{HostTensor, write_tensors};
    use hub_server::Served;
    let cache = temp_cache("diffusion");
    let src = cache.join("src.safetensors");
    let t = HostTensor {
        shape: vec![2],
        data: vec![0.5, -0.5],
    };
    write_tensors(&src, &[("diffusion_model.pos_embed", &t)], None).unwrap();
    let weights = std::fs::read(&src).unwrap();
    let serve = |config: &str| {
        hub_server::start(std::collections::HashMap::from([
            (
                "config.json".to_string(),
                Served {
                    bytes: config.as_bytes().to_vec(),
                    lfs: false,
                },
            ),
            (
                "model.safetensors".to_string(),
                Served {
                    bytes: weights.clone(),
                    lfs: true,
                },
            ),
        ]))
    };
    let server = serve(r#"{"model_name": "dc-ae-f64c128-in-1.0-uvit-h-in-512px"}"#);
    let (r, _) = download(REPO, &options(&server.endpoint, &cache), |_, _| {});
    let dir = r.unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.join("model.safetensors").is_file());
    let other = temp_cache("diffusion-other");
    let server = serve(r#"{"model_name": "no-such-model"}"#);
    let (r, _) = download(REPO, &options(&server.endpoint, &other), |_, _| {});
    let e = r.unwrap_err().to_string();
    assert!(e.contains("no-such-model"), "{e}");
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn a_plan_lists_every_file_with_its_size_before_any_weights_are_fetched() {
    let (server, cache, opts) = setup("plan-model");
    let plan =
        hub::plan_download(REPO, &opts, None, &Cancel::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.kind, hub::RepoKind::Model);
    assert_eq!(plan.commit, COMMIT);
    let sizes: Vec<(&str, Option<u64>, bool)> = plan
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.size, f.cached))
        .collect();
    let len = |f: &str| std::fs::metadata(fixture_model().join(f)).unwrap().len();
    assert_eq!(
        sizes,
        vec![
            ("config.json", Some(len("config.json")), false),
            (WEIGHTS, Some(len("model.safetensors")), false),
        ]
    );
    assert_eq!(plan.missing_bytes(), plan.total_bytes());
    // HEADs only: no body was sent.
    assert!(
        server.log().iter().all(|l| l.starts_with("HEAD ")),
        "{:?}",
        server.log()
    );
    assert_eq!(server.body_bytes_sent.load(Ordering::Relaxed), 0);
    let (r, _) = download(REPO, &opts, |_, _| {});
    r.unwrap();
    let again = hub::plan_download(REPO, &opts, None, &Cancel::new()).unwrap();
    assert!(again.files.iter().all(|f| f.cached), "{again:?}");
    assert_eq!(again.missing_bytes(), 0);
    assert_eq!(again.total_bytes(), plan.total_bytes());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_pipeline_plan_reads_the_index_and_sizes_every_shard() {
    use hub_server::Served;
    let (mut files, _) = multi_file_repo("plan");
    let small = |b: &str| Served {
        bytes: b.as_bytes().to_vec(),
        lfs: false,
    };
    let weights = std::fs::read(fixture_model().join("model.safetensors")).unwrap();
    for (p, s) in [
        ("scheduler/scheduler_config.json", small("{}")),
        ("tokenizer/tokenizer.json", small("{}")),
        ("text_encoder/config.json", small("{}")),
        ("vae/config.json", small("{}")),
        (
            "transformer/diffusion_pytorch_model.safetensors",
            Served {
                bytes: weights.clone(),
                lfs: true,
            },
        ),
        (
            "vae/diffusion_pytorch_model.safetensors",
            Served {
                bytes: weights[..weights.len() / 2].to_vec(),
                lfs: true,
            },
        ),
    ] {
        files.insert(p.to_string(), s);
    }
    let expected: u64 = files.values().map(|s| s.bytes.len() as u64).sum();
    let n_files = files.len();
    let server = hub_server::start(files);
    let cache = temp_cache("plan-pipeline");
    let opts = options(&server.endpoint, &cache);
    let plan =
        hub::plan_download(REPO, &opts, None, &Cancel::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.kind, hub::RepoKind::Pipeline);
    assert_eq!(plan.files.len(), n_files, "{plan:?}");
    assert_eq!(plan.unknown_sizes(), 0);
    assert_eq!(plan.total_bytes(), expected);
    assert!(
        plan.files
            .iter()
            .any(|f| f.path == "text_encoder/model-00002-of-00002.safetensors")
    );
    // The index is the only body fetched.
    let gets: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.starts_with("GET "))
        .collect();
    assert_eq!(
        gets,
        vec![format!(
            "GET /{REPO}/resolve/{COMMIT}/text_encoder/model.safetensors.index.json"
        )]
    );
    // A variant the repo lacks names the component.
    let e = hub::plan_download(REPO, &opts, Some("bf16"), &Cancel::new()).unwrap_err();
    assert!(e.to_string().contains("bf16"), "{e}");
    assert!(hub::plan_download(REPO, &opts, Some("../x"), &Cancel::new()).is_err());
    std::fs::remove_dir_all(&cache).unwrap();
}
