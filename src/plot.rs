//! `bertfit plot`: a training run's metrics.jsonl drawn as a PNG, one panel per quantity against
//! the training step: training loss (with its moving average), the learning rate when the log has
//! one, and validation loss and accuracy at the last step of each epoch.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (plotters' `ab_glyph` backend), so the
//! axis labels render on a machine without fontconfig, freetype or any system font.
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde_json::Value;

use crate::error::{Error, Result};

/// One `{"kind":"step"}` record.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPoint {
    pub epoch: u64,
    pub step: u64,
    pub loss: f64,
    pub lr: Option<f64>,
}

/// One `{"kind":"epoch"}` record.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochPoint {
    pub epoch: u64,
    pub loss: f64,
    /// Percent, as the trainer logs it.
    pub val_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub steps: Vec<StepPoint>,
    pub epochs: Vec<EpochPoint>,
}

impl Metrics {
    /// The last step of `epoch`, where its validation is drawn.
    pub fn last_step_of(&self, epoch: u64) -> Option<u64> {
        self.steps.iter().filter(|s| s.epoch == epoch).map(|s| s.step).max()
    }
}

/// Reads metrics.jsonl. Records of other kinds are skipped (later versions may add some); a line
/// that is not JSON, or a step or epoch record without its numbers, is an error naming the line.
pub fn read_metrics(path: &Path) -> Result<Metrics> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut m = Metrics::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| Error::data(path, format!("line {}: {msg}", i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON ({e})")))?;
        let number =
            |key: &str| v.get(key).and_then(Value::as_f64).ok_or_else(|| at(format!("no number '{key}'")));
        let count =
            |key: &str| v.get(key).and_then(Value::as_u64).ok_or_else(|| at(format!("no count '{key}'")));
        let optional = |key: &str| match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| at(format!("'{key}' is not a number"))),
        };
        match v.get("kind").and_then(Value::as_str) {
            Some("step") => m.steps.push(StepPoint {
                epoch: count("epoch")?,
                step: count("step")?,
                loss: number("loss")?,
                lr: optional("lr")?,
            }),
            Some("epoch") => m.epochs.push(EpochPoint {
                epoch: count("epoch")?,
                loss: number("loss")?,
                val_accuracy: optional("val_accuracy")?,
                val_loss: optional("val_loss")?,
            }),
            Some(_) => {}
            None => return Err(at("no \"kind\" (expected a step or epoch record)".into())),
        }
    }
    if m.steps.is_empty() {
        return Err(Error::data(path, "no step records: nothing to plot"));
    }
    Ok(m)
}

/// Trailing mean over `window` values (fewer at the start). Each value enters the running sum
/// divided by the window, so values near f64's limit (a diverged run logs 1e308) cannot overflow it.
pub fn moving_average(xs: &[f64], window: usize) -> Vec<f64> {
    let w = window.max(1);
    let mut out = Vec::with_capacity(xs.len());
    let mut sum = 0.0;
    for (i, &x) in xs.iter().enumerate() {
        sum += x / w as f64;
        if i >= w {
            sum -= xs[i - w] / w as f64;
        }
        out.push(sum * (w as f64 / (i + 1).min(w) as f64));
    }
    out
}

/// One line of a panel: its name, its (x, y) points and its colour.
type Series = (String, Vec<(f64, f64)>, RGBColor);

/// One panel: a title, a y-axis name, and its series.
struct Panel {
    title: &'static str,
    y_desc: &'static str,
    series: Vec<Series>,
}

const FONT: &str = "sans-serif";
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 320;

/// The image formats `--output` may name, by extension (the image encoders plotters is built with).
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp"];

/// Checks `--output` before anything is drawn, so the message names the path in words instead of
/// the image library's `ImageError(Unsupported(...))` or `IoError(NotFound)` after the drawing.
pub fn check_output(output: &Path) -> Result<()> {
    let refuse = |msg: String| Error::usage("--output", format!("{}: {msg}", output.display()));
    if output.is_dir() {
        return Err(refuse(format!(
            "is a folder; name the image file to write, e.g. {}",
            default_output(output).display()
        )));
    }
    let ext = output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !ext.as_deref().is_some_and(|e| EXTENSIONS.contains(&e)) {
        let allowed = EXTENSIONS.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ");
        let got = ext.map_or("no extension".to_string(), |e| format!("the extension .{e}"));
        return Err(refuse(format!("has {got}; the plot is written as {allowed} (by extension)")));
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(refuse(format!("{} is a file, not a folder", parent.display()))),
        Err(_) => Err(refuse(format!("the folder {} does not exist; create it first", parent.display()))),
    }
}

/// Draws `metrics` (the lines of metrics.jsonl) into the image `output` (PNG, JPEG or BMP).
pub fn plot(metrics: &Metrics, output: &Path) -> Result<()> {
    check_output(output)?;
    // The one font every text uses; registering again replaces it with the same bytes.
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| Error::Runtime("the embedded DejaVu Sans font cannot be read".into()))?;
    let panels = panels(metrics);
    let draw_err = |e: &dyn std::fmt::Display| Error::data(output, format!("cannot draw the plot: {e}"));
    let root = BitMapBackend::new(output, (WIDTH, PANEL_HEIGHT * panels.len() as u32)).into_drawing_area();
    draw(metrics, &panels, &root).map_err(|e| draw_err(&e))?;
    root.present().map_err(|e| draw_err(&e))
}

/// The plot of `metrics` drawn into memory (RGB, [`WIDTH`] wide), nothing written: what
/// [`plot`] draws, for the fuzz target (`fuzz/fuzz_targets/metrics.rs`) and tests.
pub fn render(metrics: &Metrics) -> Result<Vec<u8>> {
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| Error::Runtime("the embedded DejaVu Sans font cannot be read".into()))?;
    let panels = panels(metrics);
    let height = PANEL_HEIGHT * panels.len() as u32;
    let mut buffer = vec![0u8; (WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, height)).into_drawing_area();
        let draw_err = |e: &dyn std::fmt::Display| Error::Runtime(format!("cannot draw the plot: {e}"));
        draw(metrics, &panels, &root).map_err(|e| draw_err(&e))?;
        root.present().map_err(|e| draw_err(&e))?;
    }
    Ok(buffer)
}

fn draw<DB: DrawingBackend>(
    metrics: &Metrics,
    panels: &[Panel],
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    // Every panel shares the step axis of the training loss, so epochs line up across panels.
    let steps = span(metrics.steps.iter().map(|s| s.step as f64));
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, panel, steps)?;
    }
    Ok(())
}

fn panels(m: &Metrics) -> Vec<Panel> {
    let steps: Vec<f64> = m.steps.iter().map(|s| s.step as f64).collect();
    let losses: Vec<f64> = m.steps.iter().map(|s| s.loss).collect();
    let mut loss =
        vec![("loss".to_string(), steps.iter().copied().zip(losses.iter().copied()).collect(), BLUE)];
    let window = (losses.len() / 20).clamp(2, 200);
    if losses.len() >= 2 * window {
        let avg = moving_average(&losses, window);
        loss.push((
            format!("moving average ({window} steps)"),
            steps.iter().copied().zip(avg).collect(),
            RED,
        ));
    }
    let mut out = vec![Panel { title: "training loss", y_desc: "loss", series: loss }];
    let lr: Vec<(f64, f64)> = m.steps.iter().filter_map(|s| s.lr.map(|lr| (s.step as f64, lr))).collect();
    if !lr.is_empty() {
        out.push(Panel {
            title: "learning rate",
            y_desc: "learning rate",
            series: vec![("learning rate".into(), lr, GREEN)],
        });
    }
    let at_epoch_end = |f: fn(&EpochPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        m.epochs.iter().filter_map(|e| Some((m.last_step_of(e.epoch)? as f64, f(e)?))).collect()
    };
    let val_loss = at_epoch_end(|e| e.val_loss);
    if !val_loss.is_empty() {
        let epoch_loss = at_epoch_end(|e| Some(e.loss));
        out.push(Panel {
            title: "loss per epoch",
            y_desc: "loss",
            series: vec![
                ("validation loss".into(), val_loss, MAGENTA),
                ("mean training loss".into(), epoch_loss, BLUE),
            ],
        });
    }
    let accuracy = at_epoch_end(|e| e.val_accuracy);
    if !accuracy.is_empty() {
        out.push(Panel {
            title: "validation accuracy",
            y_desc: "accuracy (%)",
            series: vec![("validation accuracy".into(), accuracy, BLACK)],
        });
    }
    out
}

/// The largest magnitude an axis shows. A diverged run logs losses up to f64's limit (1e308);
/// an axis spanning -1e308..1e308 has an infinite width, and plotters' tick search never ends on
/// it. Values beyond this are drawn at the axis's edge.
pub const AXIS_LIMIT: f64 = 1e300;

/// A value as the axis draws it: clamped to +-[`AXIS_LIMIT`]; `None` for NaN.
fn on_axis(v: f64) -> Option<f64> {
    (!v.is_nan()).then(|| v.clamp(-AXIS_LIMIT, AXIS_LIMIT))
}

/// (min, max) of the values, widened when they are all equal so the axis has a span. Always
/// finite, with a finite, positive width.
pub fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter_map(on_axis)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    // Both within +-1e300: the width and the padding are finite.
    let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1e-12) * 0.1 };
    (lo - pad, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    (x0, x1): (f64, f64),
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (y0, y1) = span(panel.series.iter().flat_map(|s| s.1.iter()).map(|p| p.1));
    // Enough decimals to tell the ticks apart (about 10 over the span), no more.
    let decimals = (2.0 - (y1 - y0).log10().floor()).clamp(0.0, 6.0) as usize;
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let y_format = |v: &f64| {
        if *v == 0.0 {
            "0".to_string()
        } else if v.abs() < 1e-2 || v.abs() >= 1e4 {
            format!("{v:.1e}")
        } else {
            format!("{v:.decimals$}")
        }
    };
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(panel.y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&y_format)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (name, pts, color) in &panel.series {
        let color = *color;
        let pts: Vec<(f64, f64)> = pts.iter().filter_map(|&(x, y)| Some((x, on_axis(y)?))).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        if pts.len() <= 200 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// `DIR/training.png` unless told otherwise.
pub fn default_output(dir: &Path) -> PathBuf {
    dir.join("training.png")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_is_trailing() {
        assert_eq!(moving_average(&[2.0, 4.0, 6.0, 8.0], 2), [2.0, 3.0, 5.0, 7.0]);
    }

    #[test]
    fn axes_stay_finite_at_f64s_limit() {
        for values in [vec![1e308, -1e308], vec![f64::MAX, f64::MIN], vec![1e308], vec![f64::NAN, 1.0]] {
            let (lo, hi) = span(values.iter().copied());
            assert!(lo.is_finite() && hi.is_finite() && (hi - lo).is_finite() && hi > lo, "{values:?}");
        }
        let avg = moving_average(&[f64::MAX, f64::MAX, 1.0, 1.0, 1.0], 2);
        assert!(avg.iter().all(|v| v.is_finite()), "{avg:?}");
    }

    #[test]
    fn validation_is_drawn_at_each_epochs_last_step() {
        let step = |epoch, step| StepPoint { epoch, step, loss: 1.0, lr: None };
        let m = Metrics { steps: vec![step(1, 1), step(1, 2), step(2, 3)], epochs: vec![] };
        assert_eq!((m.last_step_of(1), m.last_step_of(2), m.last_step_of(3)), (Some(2), Some(3), None));
    }
}
