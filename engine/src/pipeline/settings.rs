//! Generation settings as JSON in a PNG text chunk, so an image carries what made it and
//! `--from image.png` (CLI) or a drop on the window (app) replays it. Written as tEXt (ASCII
//! JSON, non-ASCII escaped); read from tEXt, zTXt or iTXt, whichever holds the keyword.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// tEXt keyword of the class-to-image settings chunk.
pub const SAMPLE_KEY: &str = "dcae-sample";

/// JSON with every non-ASCII character escaped, so it is valid Latin-1 for a tEXt chunk.
pub fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for ch in v.to_string().chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut buf = [0u16; 2];
            for u in ch.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// An 8-bit RGB PNG (`rgb`: `w * h * 3` bytes) with `text` under `keyword` in a tEXt chunk.
pub fn png_with_text(rgb: &[u8], w: usize, h: usize, keyword: &str, text: &str) -> Result<Vec<u8>> {
    let enc_err = |e: png::EncodingError| Error::Input(format!("encoding the PNG: {e}"));
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk(keyword.to_string(), text.to_string())
            .map_err(enc_err)?;
        let mut wr = enc.write_header().map_err(enc_err)?;
        wr.write_image_data(rgb).map_err(enc_err)?;
        wr.finish().map_err(enc_err)?;
    }
    Ok(bytes)
}

/// The text under `keyword` in a PNG file (tEXt, zTXt or iTXt).
pub fn read_png_text(path: &Path, keyword: &str) -> Result<String> {
    crate::io::check_regular_file(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    png_text(bytes, path, keyword)
}

/// [`read_png_text`] on bytes in memory; `path` names them in errors.
pub fn png_text(bytes: Vec<u8>, path: &Path, keyword: &str) -> Result<String> {
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = dec
        .read_info()
        .map_err(|_| Error::Input(format!("{} is not a readable PNG", path.display())))?;
    let info = reader.info();
    if let Some(t) = info
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == keyword)
    {
        return Ok(t.text.clone());
    }
    let compressed = info
        .compressed_latin1_text
        .iter()
        .find(|t| t.keyword == keyword)
        .map(|t| t.get_text());
    let utf8 = info
        .utf8_text
        .iter()
        .find(|t| t.keyword == keyword)
        .map(|t| t.get_text());
    match compressed.or(utf8) {
        Some(Ok(text)) => Ok(text),
        Some(Err(e)) => Err(Error::Input(format!(
            "{}: the `{keyword}` text chunk cannot be decompressed: {e}",
            path.display()
        ))),
        None => Err(Error::Input(format!(
            "{} has no `{keyword}` text chunk (not written by dcae)",
            path.display()
        ))),
    }
}

/// The JSON settings a PNG carries under `keyword`.
pub fn read_png_json(path: &Path, keyword: &str) -> Result<Value> {
    let text = read_png_text(path, keyword)?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Input(format!(
            "{}: settings are not valid JSON: {e}",
            path.display()
        ))
    })
}

/// An absolute form of `p` when it exists (else `p` as given).
pub fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_a_png_chunk() {
        let v = serde_json::json!({"model": "/m/\u{fc}", "seed": 3});
        let text = ascii_json(&v);
        assert!(text.is_ascii() && text.contains("\\u00fc"), "{text}");
        let png = png_with_text(&[0u8; 2 * 3 * 3], 2, 3, SAMPLE_KEY, &text).unwrap();
        let dir = std::env::temp_dir().join(format!("dcae-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.png");
        std::fs::write(&p, png).unwrap();
        assert_eq!(read_png_json(&p, SAMPLE_KEY).unwrap(), v);
        let e = read_png_text(&p, "other").unwrap_err().to_string();
        assert!(e.contains("no `other` text chunk"), "{e}");
        std::fs::write(&p, b"not a png").unwrap();
        let e = read_png_text(&p, SAMPLE_KEY).unwrap_err().to_string();
        assert!(e.contains("not a readable PNG"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
