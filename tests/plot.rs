//! `bertfit plot`: a metrics.jsonl becomes a PNG of the expected size; a malformed log is refused
//! naming its line.
use super::common::{assert_refused, run_bertfit, temp_dir};

/// A log as the trainer writes it: 3 epochs of 20 steps with a learning rate, validation per epoch.
fn write_log(dir: &std::path::Path) {
    let mut s = String::new();
    for epoch in 1..=3u32 {
        for k in 1..=20u32 {
            let step = (epoch - 1) * 20 + k;
            let loss = 1.0 / (1.0 + step as f64 / 10.0) + 0.05 * ((step * 7 % 5) as f64);
            let lr = 2e-5 * (1.0 - step as f64 / 60.0);
            s.push_str(&format!(
                "{{\"kind\":\"step\",\"epoch\":{epoch},\"step\":{step},\"loss\":{loss},\"rows\":[1,2],\"lr\":{lr}}}\n"
            ));
        }
        s.push_str(&format!(
            "{{\"kind\":\"epoch\",\"epoch\":{epoch},\"loss\":0.5,\"val_accuracy\":{},\"val_loss\":{},\"train_seconds\":1.0}}\n",
            70.0 + 5.0 * epoch as f64,
            0.6 - 0.1 * epoch as f64
        ));
    }
    std::fs::write(dir.join("metrics.jsonl"), s).unwrap();
}

#[test]
fn plot_writes_a_png_with_one_panel_per_quantity() {
    let dir = temp_dir("plot_png");
    write_log(&dir);
    let (code, stdout, stderr) = run_bertfit(&["plot", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let png = dir.join("training.png");
    assert!(stdout.contains(png.to_str().unwrap()), "{stdout}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    // IHDR: width and height, big-endian, at bytes 16..24. Four panels of 320 px: loss, learning
    // rate, loss per epoch, validation accuracy.
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1000, 1280));
    assert!(bytes.len() > 20_000, "a PNG of {} bytes has no plot in it", bytes.len());

    let other = dir.join("custom.png");
    let (code, _, stderr) =
        run_bertfit(&["plot", dir.to_str().unwrap(), "--output", other.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(other.exists());
}

#[test]
fn a_malformed_or_missing_log_is_refused_naming_the_file_and_line() {
    let dir = temp_dir("plot_bad");
    let log = dir.join("metrics.jsonl");
    assert_refused(&["plot", dir.to_str().unwrap()], &[log.to_str().unwrap()]);
    std::fs::write(
        &log,
        "{\"kind\":\"step\",\"epoch\":1,\"step\":1,\"loss\":0.7}\n\n{\"kind\":\"step\",\"epoch\":1,\n",
    )
    .unwrap();
    assert_refused(&["plot", dir.to_str().unwrap()], &[log.to_str().unwrap(), "line 3", "not JSON"]);
    std::fs::write(&log, "{\"kind\":\"step\",\"epoch\":1,\"step\":1,\"loss\":\"high\"}\n").unwrap();
    assert_refused(&["plot", dir.to_str().unwrap()], &["line 1", "'loss'"]);
    assert!(!dir.join("training.png").exists());
}
