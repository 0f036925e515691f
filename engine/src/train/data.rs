//! Training data: image folders (recursive; JPEG / PNG / WebP), random crops at the phase
//! resolution with horizontal flips, decoded on worker threads ahead of the training loop, and a
//! fixed validation subset.
//!
//! Every random choice of step `s` comes from `seed` and `s` alone ([`step_rng`]), so a resumed
//! run sees exactly the batches an uninterrupted one would, whatever the prefetch depth.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::io::image::{RgbF32, load_image};

const EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];

/// All images under `root` (recursive), sorted by path so the order is the same everywhere.
pub fn list_images(root: &Path) -> Result<Vec<PathBuf>> {
    if root.is_file() {
        return Err(Error::Input(format!(
            "{} is a file; the data path must be a folder of images",
            root.display()
        )));
    }
    if !root.is_dir() {
        return Err(Error::MissingFile(format!(
            "image folder {} does not exist",
            root.display()
        )));
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for e in entries {
            let p = e.map_err(|e| Error::io(&dir, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .map(|x| EXTENSIONS.contains(&x.to_string_lossy().to_lowercase().as_str()))
                .unwrap_or(false)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::Input(format!(
            "no images (jpg, png, webp) under {}",
            root.display()
        )));
    }
    Ok(out)
}

/// splitmix64 step.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG state for training step `step` of a run seeded `seed`.
pub fn step_rng(seed: u64, step: u64) -> u64 {
    let mut s = seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03);
    splitmix(&mut s)
}

/// One crop to cut: which image, where, and whether to flip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropJob {
    pub image: usize,
    /// Random fractions in [0, 1) placing the crop inside the (possibly downscaled) image.
    pub fx: u32,
    pub fy: u32,
    pub flip: bool,
    /// Downscale the image so its short side is between `size` and the original (a random
    /// fraction), so crops see several scales as DC-AE's multi-resolution data does.
    pub scale: u32,
    /// Channel order of the crop: an index into [`CHANNEL_ORDERS`] (0 = RGB as stored).
    pub channels: u8,
}

/// The six orders of the RGB channels, for `[data] channel_shuffle`.
pub const CHANNEL_ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// The crops of one batch, a pure function of (seed, step). With `channel_shuffle` each crop
/// also gets a random channel order (drawn from its own hash, so the crops themselves are the
/// same either way).
pub fn plan_batch(
    seed: u64,
    step: u64,
    n_images: usize,
    batch: usize,
    channel_shuffle: bool,
) -> Vec<CropJob> {
    let mut s = step_rng(seed, step);
    (0..batch)
        .map(|_| {
            let r = splitmix(&mut s);
            let mut t = r ^ 0xC0DE_C0DE_C0DE_C0DE;
            let channels = if channel_shuffle {
                (splitmix(&mut t) % CHANNEL_ORDERS.len() as u64) as u8
            } else {
                0
            };
            CropJob {
                channels,
                image: (r % n_images.max(1) as u64) as usize,
                fx: (splitmix(&mut s) >> 40) as u32,
                fy: (splitmix(&mut s) >> 40) as u32,
                flip: splitmix(&mut s) & 1 == 1,
                scale: (splitmix(&mut s) >> 40) as u32,
            }
        })
        .collect()
}

/// Crop rectangle `(x, y, scaled_w, scaled_h)` for an image of `w x h`: the image is first
/// scaled so its short side is `size + (short - size) * scale_frac`, then a `size` square is cut
/// at the given fractions. Images smaller than `size` are upscaled to it.
pub fn crop_rect(w: usize, h: usize, size: usize, job: &CropJob) -> (usize, usize, usize, usize) {
    let frac = |v: u32| f64::from(v) / f64::from(1u32 << 24);
    let short = w.min(h).max(1);
    let target_short = if short <= size {
        size as f64
    } else {
        size as f64 + (short - size) as f64 * frac(job.scale)
    };
    let k = target_short / short as f64;
    let sw = ((w as f64 * k).round() as usize).max(size);
    let sh = ((h as f64 * k).round() as usize).max(size);
    let x = ((sw - size) as f64 * frac(job.fx)) as usize;
    let y = ((sh - size) as f64 * frac(job.fy)) as usize;
    (x, y, sw, sh)
}

/// Cuts one training crop (planar RGB in [-1, 1], `3*size*size`).
pub fn load_crop(path: &Path, size: usize, job: &CropJob) -> Result<Vec<f32>> {
    let img = image::open(path)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (x, y, sw, sh) = crop_rect(w, h, size, job);
    let img = if (sw, sh) != (w, h) {
        image::imageops::resize(
            &img,
            sw as u32,
            sh as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    let plane = size * size;
    let order = CHANNEL_ORDERS[usize::from(job.channels) % CHANNEL_ORDERS.len()];
    let mut out = vec![0f32; 3 * plane];
    for yy in 0..size {
        for xx in 0..size {
            let sx = if job.flip { size - 1 - xx } else { xx };
            let p = img.get_pixel((x + sx) as u32, (y + yy) as u32);
            for c in 0..3 {
                out[c * plane + yy * size + xx] = f32::from(p[order[c]]) / 127.5 - 1.0;
            }
        }
    }
    Ok(out)
}

/// One batch ready for the device: `[B, 3, size, size]` values in [-1, 1].
pub struct Batch {
    pub step: u64,
    pub size: usize,
    pub data: Vec<f32>,
    pub len: usize,
}

impl Batch {
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.len, 3, self.size, self.size]),
            device,
        )
    }
}

/// What a [`Loader`] draws: batches of `batch` square crops of `size` px, planned from `seed`
/// (see [`plan_batch`]), with random RGB orders when `channel_shuffle`. An image that cannot be
/// decoded is replaced by the next one in the list (and reported) unless `fail_on_bad_image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropPlan {
    pub seed: u64,
    pub batch: usize,
    pub size: usize,
    pub channel_shuffle: bool,
    pub fail_on_bad_image: bool,
}

/// A training image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadImage {
    pub path: PathBuf,
    pub error: String,
}

/// A decoded crop and the images that failed on the way to it.
type Crop = (Vec<f32>, Vec<BadImage>);

/// One crop, or (when `skip_bad`) the same crop of the next images in the list until one
/// decodes; the images that failed come back with it. Deterministic: which image replaces a bad
/// one depends only on the list.
fn load_crop_or_next(
    files: &[PathBuf],
    size: usize,
    job: &CropJob,
    skip_bad: bool,
) -> Result<Crop> {
    let mut bad = Vec::new();
    for k in 0..files.len() {
        let job = CropJob {
            image: (job.image + k) % files.len(),
            ..*job
        };
        let path = &files[job.image];
        match load_crop(path, size, &job) {
            Ok(v) => return Ok((v, bad)),
            Err(e) if skip_bad => bad.push(BadImage {
                path: path.clone(),
                error: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    Err(Error::Input(format!(
        "none of the {} training images could be decoded (first: {})",
        files.len(),
        bad.first().map_or(String::new(), |b| b.error.clone())
    )))
}

/// Prefetching loader: `workers` threads decode the crops of upcoming steps while the model
/// trains; batches arrive in step order.
pub struct Loader {
    jobs: Vec<SyncSender<Option<(u64, usize, CropJob)>>>,
    results: Receiver<(u64, usize, Result<Crop>)>,
    handles: Vec<JoinHandle<()>>,
    seed: u64,
    channel_shuffle: bool,
    n_images: usize,
    batch: usize,
    size: usize,
    next_planned: u64,
    end: u64,
    pending: VecDeque<u64>,
    partial: std::collections::HashMap<u64, Vec<Option<Vec<f32>>>>,
    rr: usize,
    /// Images that failed since the last [`Loader::take_bad`].
    bad: Vec<BadImage>,
}

impl Loader {
    /// Loads steps `start..end` of a run; two batches are decoded ahead.
    pub fn new(
        files: Vec<PathBuf>,
        plan: CropPlan,
        (start, end): (u64, u64),
        workers: usize,
    ) -> Self {
        let CropPlan {
            seed,
            batch,
            size,
            channel_shuffle,
            fail_on_bad_image,
        } = plan;
        let workers = workers.max(1);
        let n_images = files.len();
        let (res_tx, results) = sync_channel(batch * 4);
        let files = std::sync::Arc::new(files);
        let mut jobs = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<Option<(u64, usize, CropJob)>>(batch * 2);
            let res_tx = res_tx.clone();
            let files = files.clone();
            handles.push(std::thread::spawn(move || {
                while let Ok(Some((step, slot, job))) = rx.recv() {
                    let r = load_crop_or_next(&files, size, &job, !fail_on_bad_image);
                    if res_tx.send((step, slot, r)).is_err() {
                        break;
                    }
                }
            }));
            jobs.push(tx);
        }
        let mut loader = Self {
            jobs,
            results,
            handles,
            seed,
            channel_shuffle,
            n_images,
            batch,
            size,
            next_planned: start,
            end,
            pending: VecDeque::new(),
            partial: Default::default(),
            rr: 0,
            bad: Vec::new(),
        };
        for _ in 0..2 {
            loader.plan_next();
        }
        loader
    }

    fn plan_next(&mut self) {
        if self.next_planned >= self.end {
            return;
        }
        let step = self.next_planned;
        self.next_planned += 1;
        self.partial.insert(step, vec![None; self.batch]);
        self.pending.push_back(step);
        for (slot, job) in plan_batch(
            self.seed,
            step,
            self.n_images,
            self.batch,
            self.channel_shuffle,
        )
        .into_iter()
        .enumerate()
        {
            let w = self.rr % self.jobs.len();
            self.rr += 1;
            // A closed worker shows up as a missing result below.
            let _ = self.jobs[w].send(Some((step, slot, job)));
        }
    }

    /// The images that failed to decode (and were replaced) since the last call.
    pub fn take_bad(&mut self) -> Vec<BadImage> {
        std::mem::take(&mut self.bad)
    }

    /// The next batch in step order, or `None` after the last step.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        let Some(step) = self.pending.pop_front() else {
            return Ok(None);
        };
        self.plan_next();
        loop {
            if let Some(slots) = self.partial.get(&step)
                && slots.iter().all(Option::is_some)
            {
                break;
            }
            let (s, slot, r) = self
                .results
                .recv()
                .map_err(|_| Error::Input("data loader workers stopped".into()))?;
            let (data, bad) = r?;
            self.bad.extend(bad);
            if let Some(slots) = self.partial.get_mut(&s) {
                slots[slot] = Some(data);
            }
        }
        let slots = self.partial.remove(&step).unwrap_or_default();
        let mut data = Vec::with_capacity(self.batch * 3 * self.size * self.size);
        for s in slots.into_iter().flatten() {
            data.extend(s);
        }
        Ok(Some(Batch {
            step,
            size: self.size,
            data,
            len: self.batch,
        }))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        for tx in &self.jobs {
            let _ = tx.try_send(None);
        }
        self.jobs.clear();
        // Drain so blocked workers can exit, then join.
        while self.results.try_recv().is_ok() {}
        for h in self.handles.drain(..) {
            while !h.is_finished() {
                while self.results.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = h.join();
        }
    }
}

/// The fixed validation set: the first `count` images of `root` (sorted), each centre-cropped
/// to the largest square multiple of `multiple` no larger than `size`.
pub fn validation_set(
    root: &Path,
    count: usize,
    size: usize,
    multiple: usize,
) -> Result<Vec<(PathBuf, RgbF32)>> {
    let files = list_images(root)?;
    let mut out = Vec::new();
    for p in files.into_iter().take(count) {
        let (img, _notes) = load_image(&p)?;
        let side = (img.width.min(img.height).min(size) / multiple) * multiple;
        if side == 0 {
            return Err(Error::Input(format!(
                "validation image {} is smaller than {multiple} px",
                p.display()
            )));
        }
        let x0 = (img.width - side) / 2;
        let y0 = (img.height - side) / 2;
        out.push((p, img.crop(x0, y0, side, side)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_depend_only_on_seed_and_step() {
        assert_eq!(
            plan_batch(7, 42, 100, 4, false),
            plan_batch(7, 42, 100, 4, false)
        );
        assert_ne!(
            plan_batch(7, 42, 100, 4, false),
            plan_batch(7, 43, 100, 4, false)
        );
        assert_ne!(
            plan_batch(7, 42, 100, 4, false),
            plan_batch(8, 42, 100, 4, false)
        );
        assert!(plan_batch(1, 5, 3, 64, false).iter().all(|j| j.image < 3));
    }

    #[test]
    fn channel_shuffle_permutes_colours_without_moving_crops() {
        let plain = plan_batch(5, 9, 50, 64, false);
        let shuffled = plan_batch(5, 9, 50, 64, true);
        assert!(plain.iter().all(|j| j.channels == 0));
        for (a, b) in plain.iter().zip(&shuffled) {
            assert_eq!(
                (a.image, a.fx, a.fy, a.flip, a.scale),
                (b.image, b.fx, b.fy, b.flip, b.scale)
            );
        }
        let mut seen = [false; 6];
        for j in &shuffled {
            seen[usize::from(j.channels)] = true;
        }
        assert!(seen.iter().all(|&s| s), "all six orders drawn: {seen:?}");
        // The crop's channels are the image's, reordered.
        let dir = std::env::temp_dir().join(format!("dcae-chan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.png");
        image::RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 127]))
            .save(&path)
            .unwrap();
        let job = CropJob {
            image: 0,
            fx: 0,
            fy: 0,
            flip: false,
            scale: 0,
            channels: 3, // [1, 2, 0]: G, B, R
        };
        let v = load_crop(&path, 8, &job).unwrap();
        let px = |c: usize| v[c * 64];
        assert_eq!((px(0), px(1), px(2)), (-1.0, 127.0 / 127.5 - 1.0, 1.0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crops_stay_inside_the_scaled_image() {
        for step in 0..200 {
            for job in plan_batch(3, step, 10, 4, false) {
                for (w, h) in [(481, 321), (128, 128), (100, 60), (4000, 3000)] {
                    let (x, y, sw, sh) = crop_rect(w, h, 128, &job);
                    assert!(
                        x + 128 <= sw && y + 128 <= sh,
                        "{w}x{h} -> {x},{y} in {sw}x{sh}"
                    );
                    assert!(sw.min(sh) >= 128);
                    if w.min(h) > 128 {
                        assert!(sw <= w + 1 && sh <= h + 1);
                    }
                }
            }
        }
    }
}
