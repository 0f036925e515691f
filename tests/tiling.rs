//! Tiled encode/decode against untiled, on fixture models and a real photo (CPU backend).
//!
//! Where one tile covers the image the tiled path must equal the untiled one exactly; where it
//! does not, the result differs (the attention is global, so no tiling is exact) and the PSNR
//! between the two is printed. Output shapes are checked for f32 and f128, where the diffusers
//! tiler's 448-px stride breaks.

use dcae::autoencoder::TileSpec;
use dcae::burn::tensor::{Tensor, TensorData};
use dcae::io::image::{RgbF32, load_image};
use dcae::metrics::psnr_u8;
use dcae::task::Silent;
use dcae::{Backend, Cancel, DcAe, Precision};
use dcae_conformance::fixture_root;

fn model(case: &str) -> DcAe {
    let dev = Backend::Cpu.device().unwrap();
    DcAe::load(
        &fixture_root("DCAE_FIXTURES", "dcae").join(case),
        &dev,
        Precision::F32,
    )
    .unwrap()
}

fn photo(size: usize) -> Tensor<4> {
    let p = fixture_root("DCAE_FIXTURES", "dcae").join("../../data/val/skimage_astronaut.png");
    let (img, _) = load_image(&p).unwrap();
    let img = img.crop(0, 0, size, size);
    Tensor::from_data(
        TensorData::new(img.data, [1, 3, size, size]),
        &Backend::Cpu.device().unwrap(),
    )
}

fn to_rgb(t: Tensor<4>) -> RgbF32 {
    let [_, _, h, w] = t.dims();
    RgbF32 {
        width: w,
        height: h,
        data: t.into_data().try_to_vec::<f32>().unwrap(),
    }
}

fn psnr(a: Tensor<4>, b: Tensor<4>) -> f64 {
    psnr_u8(to_rgb(a).to_rgb8().as_raw(), to_rgb(b).to_rgb8().as_raw())
}

fn max_abs(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn covering_tile_equals_untiled() {
    let m = model("f32c32-sana-96x128-b2");
    let x = photo(256);
    let whole = TileSpec {
        tile_px: 256,
        overlap_px: 32,
    };
    let z = m.encode(x.clone()).unwrap();
    let zt = m
        .encode_tiled(x, Some(whole), &mut Silent, &Cancel::new())
        .unwrap();
    assert_eq!(max_abs(z.clone(), zt), 0.0);
    let y = m.decode(z.clone()).unwrap();
    let yt = m
        .decode_tiled(z, Some(whole), &mut Silent, &Cancel::new())
        .unwrap();
    assert_eq!(max_abs(y, yt), 0.0);
}

#[test]
fn small_tiles_stay_close_to_untiled() {
    let m = model("f32c32-sana-96x128-b2");
    let x = photo(512);
    // 512 px image, 256-px tiles with 64 px overlap: 3x3 tiles of a 16x16 latent.
    let spec = TileSpec {
        tile_px: 256,
        overlap_px: 64,
    };
    let mut calls = 0;
    let z = m.encode(x.clone()).unwrap();
    let zt = m
        .encode_tiled(
            x,
            Some(spec),
            &mut |_: &str, _: u64, _: u64| calls += 1,
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!(calls, 9);
    assert_eq!(zt.dims(), z.dims());
    let rel = (zt.clone() - z.clone())
        .powi_scalar(2)
        .sum()
        .sqrt()
        .into_scalar::<f32>()
        / z.clone().powi_scalar(2).sum().sqrt().into_scalar::<f32>();
    let y = m.decode(z.clone()).unwrap();
    let yt = m
        .decode_tiled(z, Some(spec), &mut Silent, &Cancel::new())
        .unwrap();
    let p = psnr(y.clone(), yt.clone());
    println!(
        "tiled vs untiled: latent rel-L2 {rel:.4}, decode PSNR {p:.2} dB (512 px, 256-px tiles, 64 overlap)"
    );
    // A random-weight decoder is far more sensitive to context than a trained one; even so a
    // tiling bug (misplaced or unnormalised tiles) gives < 15 dB and rel-L2 ~1.
    assert!(rel < 0.5, "latent rel-L2 {rel}");
    assert!(p > 20.0, "decode PSNR {p}");
}

#[test]
fn f128_tiled_shapes_are_exact() {
    let m = model("f128c512-in-256x256-b1");
    let dev = Backend::Cpu.device().unwrap();
    // diffusers' tiler gives 1152x1152 for an 8x8 f128 latent and 7x7 for a 1024x1024 image.
    let z = Tensor::<4>::random(
        [1, 8, 8, 8],
        dcae::burn::tensor::Distribution::Normal(0.0, 1.0),
        &dev,
    );
    let y = m
        .decode_tiled(z, Some(TileSpec::DEFAULT), &mut Silent, &Cancel::new())
        .unwrap();
    assert_eq!(y.dims(), [1, 3, 1024, 1024]);
    let x = Tensor::<4>::random(
        [1, 3, 1024, 1024],
        dcae::burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &dev,
    );
    let z = m
        .encode_tiled(x, Some(TileSpec::DEFAULT), &mut Silent, &Cancel::new())
        .unwrap();
    assert_eq!(z.dims(), [1, 8, 8, 8]);
}
