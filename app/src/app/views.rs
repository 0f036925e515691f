//! The central views (side by side, split, difference, latent) and their drawing helpers.
//! Zoom and pan are shared: every view reads and writes `Workbench::zoom`.

use super::*;

impl Workbench {
    pub(super) fn ensure_textures(&mut self, ctx: &egui::Context) {
        let max = ctx.input(|i| i.max_texture_side);
        let scale = self.settings.diff_scale;
        let cur = self.recon.current;
        let Some(img) = self.recon.images.get_mut(cur) else {
            return;
        };
        if img.texture.is_none() {
            img.texture = Some(texture(ctx, &format!("img{}", img.id), &img.rgb, max));
        }
        if let Some(b) = img.baseline.as_mut()
            && b.texture.is_none()
        {
            b.texture = Some(texture(ctx, &format!("bicubic{}", img.id), &b.rgb, max));
        }
        let (iid, orig) = (img.id, img.rgb.clone());
        for (_, t) in self.tasks.iter_mut() {
            if !matches!(t.kind, JobKind::Reconstruct { image, .. } if image == iid) {
                continue;
            }
            if let TaskState::Done(Output::Recon(d)) = &mut t.state {
                if d.texture.is_none() {
                    d.texture = Some(texture(ctx, "rec", &d.rec.image, max));
                }
                if d.diff.as_ref().is_none_or(|(s, _, _)| *s != scale) {
                    let diff = analysis::signed_difference(orig.as_raw(), d.rec.image.as_raw());
                    let mean_abs =
                        diff.iter().map(|v| v.abs()).sum::<f32>() / diff.len().max(1) as f32;
                    let heat = analysis::heatmap(&diff, scale);
                    let (w, h) = orig.dimensions();
                    if let Some(hi) = image::RgbImage::from_raw(w, h, heat) {
                        d.diff = Some((scale, texture(ctx, "diff", &hi, max), mean_abs));
                    }
                }
            }
        }
    }

    pub(super) fn central(&mut self, ui: &mut egui::Ui) {
        let Some(img) = self.recon.images.get(self.recon.current) else {
            ui.centered_and_justified(|ui| {
                ui.label(if self.pending.images > 0 {
                    "Decoding image…"
                } else {
                    "Open an image (Ctrl+O), drop one here, or paste one."
                });
            });
            return;
        };
        let size = {
            let (w, h) = img.rgb.dimensions();
            vec2(w as f32, h as f32)
        };
        match self.settings.view {
            ViewMode::Grid => self.grid_view(ui, size),
            ViewMode::Split => self.split_view(ui, size),
            ViewMode::Difference => self.diff_view(ui, size),
            ViewMode::Latent => self.latent_view(ui),
        }
    }

    /// Cells to draw: (title, texture, tiles) for the original and each model.
    pub(super) fn cells(&self) -> Vec<Cell<'_>> {
        let Some(img) = self.recon.images.get(self.recon.current) else {
            return Vec::new();
        };
        let tiles = self
            .models
            .iter()
            .filter_map(|m| self.done(m.id).and_then(|d| d.rec.tiles.as_ref()))
            .next();
        let mut v = vec![(
            format!("Original · {}", img.name),
            img.texture.as_ref().map(|t| t.id()),
            tiles,
        )];
        if !self.ready_models().is_empty() {
            v.push(match &img.baseline {
                Some(b) => (
                    format!(
                        "bicubic, {BASELINE_RATIO}x fewer values · {:.2} dB · SSIM {}",
                        b.psnr,
                        b.ssim.map_or("n/a".into(), |s| format!("{s:.3}"))
                    ),
                    b.texture.as_ref().map(|t| t.id()),
                    None,
                ),
                None => (
                    format!("bicubic, {BASELINE_RATIO}x fewer values"),
                    None,
                    None,
                ),
            });
        }
        for m in &self.models {
            if let ModelState::Ready(info) = &m.state {
                let (tex, tiles, title) = match self.recon_task(img.id, m.id).map(|r| &r.state) {
                    Some(TaskState::Done(Output::Recon(d))) => (
                        d.texture.as_ref().map(|t| t.id()),
                        d.rec.tiles.as_ref(),
                        format!(
                            "{} · {:.2} dB · SSIM {}",
                            info.name,
                            d.rec.psnr,
                            d.rec.ssim.map_or("n/a".into(), |s| format!("{s:.3}"))
                        ),
                    ),
                    Some(TaskState::Running { stage, done, total }) => (
                        None,
                        None,
                        format!("{} · {stage} {done}/{total}", info.name),
                    ),
                    Some(TaskState::Failed(e)) => {
                        (None, None, format!("{} · failed: {e}", info.name))
                    }
                    _ => (None, None, format!("{} · queued", info.name)),
                };
                v.push((title, tex, tiles));
            }
        }
        v
    }

    pub(super) fn grid_view(&mut self, ui: &mut egui::Ui, size: Vec2) {
        let n = self.cells().len();
        let area = ui.available_rect_before_wrap();
        let (rows, cols) = grid_shape(n, area.size(), size.x / size.y.max(1.0));
        let cell_size = vec2(area.width() / cols as f32, area.height() / rows as f32);
        let title_h = 20.0;
        let image_cell = vec2(cell_size.x - 4.0, cell_size.y - title_h - 4.0);
        if self.recon.zoom.fit {
            self.recon.zoom.fit_to(image_cell, size);
            self.recon.zoom.fit = true;
        }
        let mut zoom = self.recon.zoom;
        let show_tiles = self.settings.show_tiles;
        let cells = self.cells();
        for (i, (title, tex, tiles)) in cells.iter().enumerate() {
            let (r, c) = (i / cols, i % cols);
            let min = area.min + vec2(c as f32 * cell_size.x, r as f32 * cell_size.y);
            let cell = Rect::from_min_size(min, cell_size).shrink(2.0);
            let title_rect = Rect::from_min_size(cell.min, vec2(cell.width(), title_h));
            let img_rect = Rect::from_min_max(pos2(cell.min.x, cell.min.y + title_h), cell.max);
            ui.painter().text(
                title_rect.left_center(),
                Align2::LEFT_CENTER,
                title,
                FontId::proportional(14.0),
                ui.visuals().text_color(),
            );
            let resp = ui.interact(
                img_rect,
                ui.scope_id().with(("cell", i)),
                Sense::click_and_drag(),
            );
            interact_zoom(ui, &resp, img_rect, &mut zoom);
            let painter = ui.painter_at(img_rect);
            painter.rect_filled(img_rect, 0.0, ui.visuals().extreme_bg_color);
            if let Some(t) = tex {
                painter.image(
                    *t,
                    zoom.image_rect(img_rect, size),
                    Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
                    Color32::WHITE,
                );
            } else {
                painter.text(
                    img_rect.center(),
                    Align2::CENTER_CENTER,
                    "…",
                    FontId::proportional(24.0),
                    ui.visuals().weak_text_color(),
                );
            }
            if show_tiles && let Some(tiles) = tiles {
                draw_tiles(&painter, &zoom, img_rect, tiles);
            }
            if let Some(p) = resp.hover_pos() {
                let ip = zoom.to_image(img_rect, p);
                resp.on_hover_text_at_pointer(format!(
                    "x {:.0}, y {:.0}",
                    ip.x.floor(),
                    ip.y.floor()
                ));
            }
        }
        drop(cells);
        self.recon.zoom = zoom;
        ui.allocate_rect(area, Sense::hover());
    }

    pub(super) fn slot_texture(&self, s: Slot) -> Option<egui::TextureId> {
        match s {
            Slot::Original => self
                .recon
                .images
                .get(self.recon.current)
                .and_then(|i| i.texture.as_ref().map(|t| t.id())),
            Slot::Model(m) => self
                .done(m)
                .and_then(|d| d.texture.as_ref().map(|t| t.id())),
        }
    }

    pub(super) fn slot_name(&self, s: Slot) -> String {
        match s {
            Slot::Original => "Original".into(),
            Slot::Model(m) => self
                .models
                .iter()
                .find(|x| x.id == m)
                .map(|x| x.source.label())
                .unwrap_or_else(|| "?".into()),
        }
    }

    pub(super) fn split_view(&mut self, ui: &mut egui::Ui, size: Vec2) {
        let ready = self.ready_models();
        if self.recon.split.1 == Slot::Original
            && let Some((id, _)) = ready.first()
        {
            self.recon.split.1 = Slot::Model(*id);
        }
        let mut slots = vec![Slot::Original];
        slots.extend(ready.iter().map(|(id, _)| Slot::Model(*id)));
        ui.horizontal(|ui| {
            for (label, which) in [("Left", 0), ("Right", 1)] {
                let cur = if which == 0 {
                    self.recon.split.0
                } else {
                    self.recon.split.1
                };
                let mut sel = cur;
                egui::ComboBox::new(("split", which), label)
                    .selected_text(self.slot_name(cur))
                    .show_ui(ui, |ui| {
                        for s in &slots {
                            ui.selectable_value(&mut sel, *s, self.slot_name(*s));
                        }
                    });
                if which == 0 {
                    self.recon.split.0 = sel;
                } else {
                    self.recon.split.1 = sel;
                }
            }
            ui.label("Drag the divider; scroll to zoom.");
        });
        let area = ui.available_rect_before_wrap();
        if self.recon.zoom.fit {
            self.recon.zoom.fit_to(area.size(), size);
            self.recon.zoom.fit = true;
        }
        let mut zoom = self.recon.zoom;
        let resp = ui.interact(area, ui.scope_id().with("split"), Sense::click_and_drag());
        let divider_x = area.left() + self.recon.split.2 * area.width();
        let near_divider = resp
            .interact_pointer_pos()
            .or(resp.hover_pos())
            .is_some_and(|p| (p.x - divider_x).abs() < 12.0);
        if resp.dragged() && (near_divider || ui.input(|i| i.modifiers.shift)) {
            if let Some(p) = resp.interact_pointer_pos() {
                self.recon.split.2 = ((p.x - area.left()) / area.width()).clamp(0.0, 1.0);
            }
        } else {
            interact_zoom(ui, &resp, area, &mut zoom);
        }
        if near_divider {
            ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
        }
        let full = zoom.image_rect(area, size);
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        let divider_x = area.left() + self.recon.split.2 * area.width();
        let left = Rect::from_min_max(area.min, pos2(divider_x, area.max.y));
        let right = Rect::from_min_max(pos2(divider_x, area.min.y), area.max);
        ui.painter_at(area)
            .rect_filled(area, 0.0, ui.visuals().extreme_bg_color);
        for (slot, clip) in [(self.recon.split.0, left), (self.recon.split.1, right)] {
            if let Some(t) = self.slot_texture(slot) {
                ui.painter_at(clip).image(t, full, uv, Color32::WHITE);
            }
        }
        let p = ui.painter_at(area);
        p.line_segment(
            [pos2(divider_x, area.top()), pos2(divider_x, area.bottom())],
            Stroke::new(2.0, Color32::YELLOW),
        );
        for (text, anchor, pos) in [
            (
                self.slot_name(self.recon.split.0),
                Align2::LEFT_TOP,
                area.left_top() + vec2(6.0, 6.0),
            ),
            (
                self.slot_name(self.recon.split.1),
                Align2::RIGHT_TOP,
                area.right_top() + vec2(-6.0, 6.0),
            ),
        ] {
            let r = p.text(
                pos,
                anchor,
                &text,
                FontId::proportional(15.0),
                Color32::WHITE,
            );
            p.rect_filled(r.expand(3.0), 3.0, Color32::from_black_alpha(160));
            p.text(
                pos,
                anchor,
                &text,
                FontId::proportional(15.0),
                Color32::WHITE,
            );
        }
        self.recon.zoom = zoom;
        ui.allocate_rect(area, Sense::hover());
    }

    pub(super) fn diff_view(&mut self, ui: &mut egui::Ui, size: Vec2) {
        let Some(mid) = self.focus_model() else {
            ui.label("No model loaded.");
            return;
        };
        let name = self.slot_name(Slot::Model(mid));
        let scale = self.settings.diff_scale;
        let full = ui.available_rect_before_wrap();
        let bar_w = 70.0;
        let area = Rect::from_min_max(
            pos2(full.min.x, full.min.y + 24.0),
            pos2(full.max.x - bar_w, full.max.y),
        );
        if self.recon.zoom.fit {
            self.recon.zoom.fit_to(area.size(), size);
            self.recon.zoom.fit = true;
        }
        let Some(d) = self.done(mid) else {
            ui.label(format!("{name}: reconstruction not finished yet."));
            return;
        };
        let tex = d.diff.as_ref().map(|(_, t, _)| t.id());
        let mean_abs = d.diff.as_ref().map_or(0.0, |(_, _, m)| *m);
        ui.horizontal(|ui| {
            ui.label(format!(
                "{name}: reconstruction - original, mean |diff| {mean_abs:.2} levels (M: next model)"
            ));
        });
        let mut zoom = self.recon.zoom;
        let resp = ui.interact(area, ui.scope_id().with("diff"), Sense::click_and_drag());
        interact_zoom(ui, &resp, area, &mut zoom);
        let p = ui.painter_at(area);
        p.rect_filled(area, 0.0, ui.visuals().extreme_bg_color);
        if let Some(t) = tex {
            p.image(
                t,
                zoom.image_rect(area, size),
                Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        if let Some(pos) = resp.hover_pos() {
            let ip = zoom.to_image(area, pos);
            let (x, y) = (ip.x.floor(), ip.y.floor());
            if x >= 0.0 && y >= 0.0 && x < size.x && y < size.y {
                let orig = &self.recon.images[self.recon.current].rgb;
                let (a, b) = (
                    orig.get_pixel(x as u32, y as u32),
                    d.rec.image.get_pixel(x as u32, y as u32),
                );
                let diff: f32 = (0..3)
                    .map(|c| f32::from(b[c]) - f32::from(a[c]))
                    .sum::<f32>()
                    / 3.0;
                resp.on_hover_text_at_pointer(format!(
                    "x {x}, y {y}: original {:?}, reconstruction {:?}, diff {diff:+.1}",
                    a.0, b.0
                ));
            }
        }
        // Colour bar.
        let bar = Rect::from_min_max(
            pos2(full.max.x - bar_w + 10.0, full.min.y + 20.0),
            pos2(full.max.x - bar_w + 30.0, full.max.y - 20.0),
        );
        let p = ui.painter();
        let steps = 64;
        for k in 0..steps {
            let t0 = k as f32 / steps as f32;
            let y0 = bar.top() + t0 * bar.height();
            let v = 1.0 - 2.0 * (k as f32 + 0.5) / steps as f32;
            let [r, g, b] = analysis::diverging(v);
            p.rect_filled(
                Rect::from_min_max(
                    pos2(bar.left(), y0),
                    pos2(bar.right(), y0 + bar.height() / steps as f32 + 1.0),
                ),
                0.0,
                Color32::from_rgb(r, g, b),
            );
        }
        for (t, label) in [
            (0.0, format!("+{scale:.0}")),
            (0.5, "0".into()),
            (1.0, format!("-{scale:.0}")),
        ] {
            p.text(
                pos2(bar.right() + 4.0, bar.top() + t * bar.height()),
                Align2::LEFT_CENTER,
                label,
                FontId::proportional(12.0),
                ui.visuals().text_color(),
            );
        }
        self.recon.zoom = zoom;
        ui.allocate_rect(full, Sense::hover());
    }

    pub(super) fn latent_view(&mut self, ui: &mut egui::Ui) {
        let Some(mid) = self.focus_model() else {
            ui.label("No model loaded.");
            return;
        };
        let name = self.slot_name(Slot::Model(mid));
        let mut channel = self.recon.latent_channel;
        let cur = self.recon.current;
        let Some(iid) = self.recon.images.get(cur).map(|i| i.id) else {
            return;
        };
        let Some(TaskState::Done(Output::Recon(d))) =
            self.recon_task_mut(iid, mid).map(|r| &mut r.state)
        else {
            ui.label(format!("{name}: reconstruction not finished yet."));
            return;
        };
        let l = d.rec.latent.clone();
        // The texture cache lives with the reconstruction; the channel is window state.
        let mut tex = d.latent_tex.take();
        draw_latent(ui, &name, &l, &mut tex, &mut channel);
        if let Some(TaskState::Done(Output::Recon(d))) =
            self.recon_task_mut(iid, mid).map(|r| &mut r.state)
        {
            d.latent_tex = tex;
        }
        self.recon.latent_channel = channel;
    }

    pub(super) fn help_window(&mut self, ctx: &egui::Context) {
        let mut open = self.chrome.show_help;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                egui::Grid::new("help").striped(true).show(ui, |ui| {
                    for c in Command::ALL {
                        ui.label(c.label());
                        ui.monospace(c.key_hint(ctx));
                        ui.end_row();
                    }
                    ui.label("Help");
                    ui.monospace("F1");
                    ui.end_row();
                    ui.label("Zoom / pan");
                    ui.monospace("scroll / drag, double-click fits");
                    ui.end_row();
                });
            });
        self.chrome.show_help = open;
    }
}

fn nearest() -> TextureOptions {
    // Pixel-exact when magnified, smooth when shrunk.
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::default()
    }
}

/// Uploads an RGB image, downscaled when a side exceeds the GPU's texture limit.
pub(super) fn texture(
    ctx: &egui::Context,
    name: &str,
    img: &image::RgbImage,
    max_side: usize,
) -> TextureHandle {
    let (w, h) = img.dimensions();
    let big = w.max(h) as usize;
    let shown;
    let src = if big > max_side {
        let s = max_side as f32 / big as f32;
        shown = image::imageops::resize(
            img,
            ((w as f32 * s) as u32).max(1),
            ((h as f32 * s) as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        &shown
    } else {
        img
    };
    let ci = ColorImage::from_rgb([src.width() as usize, src.height() as usize], src.as_raw());
    ctx.load_texture(name, ci, nearest())
}

fn interact_zoom(ui: &egui::Ui, resp: &egui::Response, cell: Rect, zoom: &mut ZoomPan) {
    if resp.dragged() {
        zoom.pan(resp.drag_delta());
    }
    if resp.double_clicked() {
        zoom.fit = true;
    }
    if resp.hovered() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
        let factor = pinch * (scroll / 200.0).exp();
        if (factor - 1.0).abs() > 1e-4
            && let Some(p) = resp.hover_pos()
        {
            zoom.zoom_about(cell, p, factor);
        }
    }
}

fn draw_tiles(painter: &egui::Painter, zoom: &ZoomPan, cell: Rect, tiles: &[[usize; 4]]) {
    for (k, t) in tiles.iter().enumerate() {
        let a = zoom.to_screen(cell, pos2(t[0] as f32, t[1] as f32));
        let b = zoom.to_screen(cell, pos2((t[0] + t[2]) as f32, (t[1] + t[3]) as f32));
        let color = if k % 2 == 0 {
            Color32::from_rgb(255, 220, 0)
        } else {
            Color32::from_rgb(0, 220, 255)
        };
        painter.rect_stroke(
            Rect::from_min_max(a, b),
            0.0,
            Stroke::new(1.5, color),
            egui::StrokeKind::Inside,
        );
    }
}

fn draw_histogram(ui: &egui::Ui, rect: Rect, h: &analysis::Histogram) {
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let top = h.counts.iter().copied().max().unwrap_or(1).max(1) as f32;
    let inner = rect.shrink2(vec2(6.0, 18.0));
    let bw = inner.width() / h.counts.len().max(1) as f32;
    for (i, &c) in h.counts.iter().enumerate() {
        let hgt = inner.height() * c as f32 / top;
        let x = inner.left() + i as f32 * bw;
        p.rect_filled(
            Rect::from_min_max(
                pos2(x, inner.bottom() - hgt),
                pos2(x + bw - 1.0, inner.bottom()),
            ),
            0.0,
            ui.visuals().selection.bg_fill,
        );
    }
    let font = FontId::proportional(12.0);
    let col = ui.visuals().text_color();
    p.text(
        rect.left_top() + vec2(6.0, 2.0),
        Align2::LEFT_TOP,
        "histogram of all latent values",
        font.clone(),
        col,
    );
    p.text(
        rect.left_bottom() + vec2(6.0, -2.0),
        Align2::LEFT_BOTTOM,
        format!("{:.3}", h.min),
        font.clone(),
        col,
    );
    p.text(
        rect.right_bottom() + vec2(-6.0, -2.0),
        Align2::RIGHT_BOTTOM,
        format!("{:.3}", h.max),
        font,
        col,
    );
}

/// The latent inspector: channel grid, PCA as RGB, histogram and per-channel statistics of
/// `l`; `tex` caches its textures, `channel` is the highlighted channel (hover picks it).
pub(super) fn draw_latent(
    ui: &mut egui::Ui,
    name: &str,
    l: &Latent,
    tex: &mut Option<(TextureHandle, TextureHandle, usize)>,
    channel: &mut usize,
) {
    let cols = (l.channels as f32).sqrt().ceil() as usize;
    if tex.as_ref().is_none_or(|(_, _, c)| *c != cols) {
        let (gw, gh, grey) = l.channel_grid(cols);
        let grid = ColorImage::from_gray([gw, gh], &grey);
        let pca: Vec<u8> = l.pca_rgb().into_iter().flatten().collect();
        let pca = ColorImage::from_rgb([l.width, l.height], &pca);
        let opts = nearest();
        *tex = Some((
            ui.ctx().load_texture("latent-grid", grid, opts),
            ui.ctx().load_texture("latent-pca", pca, opts),
            cols,
        ));
    }
    let Some((grid_tex, pca_tex, _)) = tex.clone() else {
        return;
    };
    ui.label(format!(
        "{name}: latent {}x{}x{} = {} values · channels scaled to their own range · PCA: first 3 components as RGB",
        l.channels, l.height, l.width, l.len()
    ));
    let area = ui.available_rect_before_wrap();
    let half = area.width() * 0.5;
    let left = Rect::from_min_size(area.min, vec2(half - 8.0, area.height() * 0.62));
    let right = Rect::from_min_size(area.min + vec2(half, 0.0), vec2(half, area.height() * 0.62));
    // Channel grid.
    let gsize = grid_tex.size_vec2();
    let gscale = (left.width() / gsize.x).min(left.height() / gsize.y);
    let grect = Rect::from_center_size(left.center(), gsize * gscale);
    ui.painter().image(
        grid_tex.id(),
        grect,
        Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
        Color32::WHITE,
    );
    let resp = ui.interact(grect, ui.scope_id().with("latent-grid"), Sense::hover());
    if let Some(p) = resp.hover_pos() {
        let g = (p - grect.min) / gscale;
        if let Some((c, y, x)) = l.grid_cell(cols, g.x as usize, g.y as usize) {
            *channel = c;
            let v = l.at(c, y, x).unwrap_or(f32::NAN);
            resp.on_hover_text_at_pointer(format!("channel {c}, y {y}, x {x}: {v:.4}"));
        }
    }
    // PCA view.
    let psize = pca_tex.size_vec2();
    let pscale = (right.width() / psize.x).min(right.height() / psize.y);
    let prect = Rect::from_center_size(right.center(), psize * pscale);
    ui.painter().image(
        pca_tex.id(),
        prect,
        Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
        Color32::WHITE,
    );
    let presp = ui.interact(prect, ui.scope_id().with("latent-pca"), Sense::hover());
    if let Some(p) = presp.hover_pos() {
        let q = (p - prect.min) / pscale;
        let (x, y) = (q.x as usize, q.y as usize);
        let c = (*channel).min(l.channels.saturating_sub(1));
        if let Some(v) = l.at(c, y, x) {
            presp.on_hover_text_at_pointer(format!("y {y}, x {x}: channel {c} = {v:.4}"));
        }
    }
    // Histogram and per-channel statistics.
    let below = Rect::from_min_max(pos2(area.min.x, left.max.y + 8.0), area.max);
    let hist_rect = Rect::from_min_size(below.min, vec2(half - 8.0, below.height()));
    draw_histogram(ui, hist_rect, &l.histogram(64));
    let stats_rect = Rect::from_min_max(pos2(below.min.x + half, below.min.y), below.max);
    let stats = l.channel_stats();
    ui.scope_builder(egui::UiBuilder::new().max_rect(stats_rect), |ui| {
        egui::ScrollArea::vertical()
            .id_salt("latent-stats")
            .show(ui, |ui| {
                egui::Grid::new("latent-stats-grid")
                    .striped(true)
                    .show(ui, |ui| {
                        for t in ["ch", "mean", "std", "min", "max"] {
                            ui.strong(t);
                        }
                        ui.end_row();
                        for (c, s) in stats.iter().enumerate() {
                            let label = if c == *channel {
                                egui::RichText::new(c.to_string()).strong()
                            } else {
                                egui::RichText::new(c.to_string())
                            };
                            ui.label(label);
                            ui.label(format!("{:.3}", s.mean));
                            ui.label(format!("{:.3}", s.std));
                            ui.label(format!("{:.3}", s.min));
                            ui.label(format!("{:.3}", s.max));
                            ui.end_row();
                        }
                    });
            });
    });
    ui.allocate_rect(area, Sense::hover());
}
